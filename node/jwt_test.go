package node

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/node/packet"
)

// hs256Token builds a signed token from the claims, independently of the
// authenticator under test.
func hs256Token(t *testing.T, secret []byte, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." + enc(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func TestJWT_TokenInPasswordField(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	no := false
	srv := testServer(t, "", func(c *Config) {
		c.Listeners[0].AllowAnonymous = &no
		jc := auth.DefaultJWTConfig()
		jc.Keys = []auth.Key{{Alg: auth.AlgHS256, Secret: secret}}
		c.Auth.JWT = &jc
	})
	good := hs256Token(t, secret, map[string]any{
		"sub": "sensor-1", "exp": time.Now().Add(time.Hour).Unix(),
		"acl": []map[string]string{{"action": "publish", "permission": "allow", "topic": "sensors/%u/#"}},
	})
	expired := hs256Token(t, secret, map[string]any{"sub": "sensor-1", "exp": time.Now().Add(-time.Hour).Unix()})
	forged := hs256Token(t, []byte("another-secret-another-secret-12"), map[string]any{"sub": "sensor-1", "exp": time.Now().Add(time.Hour).Unix()})

	for _, tc := range []struct {
		name  string
		token string
		want  packet.ReasonCode
	}{
		{"valid", good, packet.ReasonSuccess},
		{"expired", expired, packet.ReasonBadUsernameOrPassword},
		{"wrong-key", forged, packet.ReasonBadUsernameOrPassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, srv, packet.Version5)
			ack := c.connect(&packet.Connect{ClientID: "s-" + tc.name, CleanStart: true, PasswordFlag: true, Password: []byte(tc.token)})
			if ack.ReasonCode != tc.want {
				t.Fatalf("CONNACK 0x%02X, want 0x%02X", byte(ack.ReasonCode), byte(tc.want))
			}
			if tc.want != packet.ReasonSuccess {
				return
			}
			// The token's own rule applies: its topic only.
			c.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "sensors/sensor-1/t", Payload: []byte("x")})
			if ack, ok := c.read().(*packet.Puback); !ok || ack.ReasonCode != packet.ReasonSuccess {
				t.Fatalf("own topic: %+v", ack)
			}
			c.send(&packet.Publish{QoS: 1, PacketID: 2, Topic: "sensors/sensor-2/t", Payload: []byte("x")})
			if ack, ok := c.read().(*packet.Puback); !ok || ack.ReasonCode != packet.ReasonNotAuthorized {
				t.Fatalf("other topic: %+v, want 0x87", ack)
			}
		})
	}
}

// TestJWT_ExpiredTokenLosesAccess keeps a client connected past its token's
// exp: from then on its publishes and subscriptions are refused, messages
// stop reaching it, and its will is not published.
func TestJWT_ExpiredTokenLosesAccess(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	no := false
	srv := testServer(t, "", func(c *Config) {
		c.Listeners[0].AllowAnonymous = &no
		jc := auth.DefaultJWTConfig()
		jc.Keys = []auth.Key{{Alg: auth.AlgHS256, Secret: secret}}
		jc.Leeway = time.Millisecond
		c.Auth.JWT = &jc
	})
	rules := []map[string]string{{"action": "all", "permission": "allow", "topic": "t/#"}}
	expiresAt := time.Now().Add(time.Second)
	expiring := hs256Token(t, secret, map[string]any{"sub": "short", "exp": float64(expiresAt.UnixMilli()) / 1000, "acl": rules})
	lasting := hs256Token(t, secret, map[string]any{"sub": "long", "exp": time.Now().Add(time.Hour).Unix(), "acl": rules})
	sub := func(filter string) packet.Subscription { return packet.Subscription{Filter: filter, QoS: 1} }

	short := dialRaw(t, srv, packet.Version5)
	will := &packet.Will{Topic: "t/will", Payload: []byte("gone"), QoS: 1}
	if ack := short.connect(&packet.Connect{ClientID: "short", CleanStart: true, PasswordFlag: true, Password: []byte(expiring), Will: will}); ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("short-lived token: CONNACK 0x%02X", byte(ack.ReasonCode))
	}
	if codes := short.subscribe(1, sub("t/a")); codes[0] != 1 {
		t.Fatalf("subscribe before exp: 0x%02X", byte(codes[0]))
	}
	long := dialRaw(t, srv, packet.Version5)
	if ack := long.connect(&packet.Connect{ClientID: "long", CleanStart: true, PasswordFlag: true, Password: []byte(lasting)}); ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("long-lived token: CONNACK 0x%02X", byte(ack.ReasonCode))
	}
	if codes := long.subscribe(1, sub("t/#")); codes[0] != 1 {
		t.Fatalf("subscribe: 0x%02X", byte(codes[0]))
	}

	time.Sleep(time.Until(expiresAt) + 50*time.Millisecond)
	short.send(&packet.Publish{QoS: 1, PacketID: 2, Topic: "t/a", Payload: []byte("late")})
	if ack, ok := short.read().(*packet.Puback); !ok || ack.ReasonCode != packet.ReasonNotAuthorized {
		t.Fatalf("publish after exp: %+v, want PUBACK 0x87", ack)
	}
	if codes := short.subscribe(3, sub("t/b")); codes[0] != packet.ReasonNotAuthorized {
		t.Fatalf("subscribe after exp: 0x%02X, want 0x87", byte(codes[0]))
	}

	// The message reaches the client with a valid token, not the expired one.
	// long is subscribed too, so its PUBACK and the delivery to it come in
	// either order.
	long.send(&packet.Publish{QoS: 1, PacketID: 2, Topic: "t/a", Payload: []byte("for both")})
	for range 2 {
		switch p := long.read().(type) {
		case *packet.Puback:
			if p.ReasonCode != packet.ReasonSuccess {
				t.Fatalf("publish with a valid token: PUBACK 0x%02X", byte(p.ReasonCode))
			}
		case *packet.Publish:
			long.ack(p)
		default:
			t.Fatalf("long received %T %+v", p, p)
		}
	}
	short.expectNothing(300 * time.Millisecond)

	short.nc.Close()
	long.expectNothing(500 * time.Millisecond)
}
