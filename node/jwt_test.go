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
