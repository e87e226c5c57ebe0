package conformance

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/node/packet"
)

// scramMethod is the Authentication Method of SCRAM-SHA-256, the enhanced
// authentication method the node offers.
const scramMethod = "SCRAM-SHA-256"

// The user that enhanced authentication tests log in as.
const (
	scramUser     = "u-alpha"
	scramPassword = "pw-alpha"
)

// scramClient is the client side of one SCRAM-SHA-256 exchange, written
// from RFC 5802 section 3 and RFC 7677 independently of the node's server
// side.
type scramClient struct {
	user, password, nonce string
	clientFirstBare       string
	authMessage           string
	serverKey             []byte
}

// newScramClient returns a client with a fresh random nonce.
func newScramClient(user, password string) *scramClient {
	var b [18]byte
	rand.Read(b[:])
	return &scramClient{user: user, password: password, nonce: base64.RawURLEncoding.EncodeToString(b[:])}
}

// first returns the client-first-message: no channel binding, no
// authorization identity.
func (s *scramClient) first() []byte {
	s.clientFirstBare = "n=" + s.user + ",r=" + s.nonce
	return []byte("n,," + s.clientFirstBare)
}

// final returns the client-final-message with the proof for the
// server-first-message.
func (s *scramClient) final(t testing.TB, serverFirst []byte) []byte {
	t.Helper()
	attrs := map[string]string{}
	for _, kv := range strings.Split(string(serverFirst), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			attrs[k] = v
		}
	}
	if !strings.HasPrefix(attrs["r"], s.nonce) || len(attrs["r"]) == len(s.nonce) {
		t.Fatalf("server nonce %q does not extend the client nonce %q", attrs["r"], s.nonce)
	}
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil {
		t.Fatalf("server-first-message %q: invalid salt: %v", serverFirst, err)
	}
	iterations, err := strconv.Atoi(attrs["i"])
	if err != nil {
		t.Fatalf("server-first-message %q: invalid iteration count: %v", serverFirst, err)
	}
	salted, err := pbkdf2.Key(sha256.New, s.password, salt, iterations, sha256.Size)
	if err != nil {
		t.Fatalf("derive the salted password: %v", err)
	}

	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	s.serverKey = hmacSHA256(salted, "Server Key")
	withoutProof := "c=biws,r=" + attrs["r"] // biws is base64 of the GS2 header "n,,"
	s.authMessage = s.clientFirstBare + "," + string(serverFirst) + "," + withoutProof
	signature := hmacSHA256(storedKey[:], s.authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ signature[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof))
}

// verifyServer reports whether the server-final-message carries the
// server signature, which proves that the server has the user's SCRAM
// credential.
func (s *scramClient) verifyServer(serverFinal []byte) bool {
	want := "v=" + base64.StdEncoding.EncodeToString(hmacSHA256(s.serverKey, s.authMessage))
	return string(serverFinal) == want
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// startScramBroker returns an in-process node with the user scramUser.
func startScramBroker(t testing.TB) *broker {
	t.Helper()
	b := startSecuredBroker(t)
	addUser(t, b, auth.User{Name: scramUser}, scramPassword)
	return b
}

// withScram starts enhanced authentication in the CONNECT: the
// Authentication Method and the client-first-message.
func withScram(sc *scramClient) connectOption {
	return withProps(func(p *packet.Properties) {
		p.AuthMethod, p.AuthData = scramMethod, sc.first()
	})
}

// expectServerFirst returns the server's first AUTH, after checking that it
// continues the exchange with reason code 0x18 [MQTT-4.12.0-2] in the method
// of the CONNECT [MQTT-4.12.0-5].
func (c *client) expectServerFirst() *packet.Auth {
	c.t.Helper()
	a := expectPacket[*packet.Auth](c)
	if !authCodes[a.ReasonCode] {
		c.t.Errorf("%s: AUTH reason code 0x%02X is not an Authenticate reason code [MQTT-3.15.2-1]", c.id, byte(a.ReasonCode))
	}
	if a.ReasonCode != packet.ReasonContinueAuthentication {
		c.t.Fatalf("%s: server AUTH reason code 0x%02X, want 0x18 (Continue authentication) [MQTT-4.12.0-2]", c.id, byte(a.ReasonCode))
	}
	if a.Properties.AuthMethod != scramMethod {
		c.t.Fatalf("%s: server AUTH method %q, want %q as in CONNECT [MQTT-4.12.0-5]", c.id, a.Properties.AuthMethod, scramMethod)
	}
	return a
}

// scramConnect runs a SCRAM-SHA-256 exchange on a new connection and
// returns the client and its CONNACK, whatever its code.
func scramConnect(t testing.TB, b *broker, sc *scramClient, opts ...connectOption) (*client, *packet.Connack) {
	t.Helper()
	c := dial(t, b, v5)
	c.id = b.clientID("scram")
	c.send(c.connectPacket(append(opts, withScram(sc))...))
	first := c.expectServerFirst()
	c.send(&packet.Auth{ReasonCode: packet.ReasonContinueAuthentication,
		Properties: packet.Properties{AuthMethod: scramMethod, AuthData: sc.final(t, first.Properties.AuthData)}})
	return c, expectPacket[*packet.Connack](c)
}

// [MQTT-4.12.0-2] [MQTT-4.12.0-5] [MQTT-3.15.2-1] v5
func TestV5_EnhancedAuthSucceeds(t *testing.T) {
	t.Parallel()
	b := startScramBroker(t)
	sc := newScramClient(scramUser, scramPassword)
	c, ack := scramConnect(t, b, sc)
	if ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("CONNACK 0x%02X %q after a correct SCRAM exchange, want 0x00", byte(ack.ReasonCode), ack.Properties.ReasonString)
	}
	if ack.Properties.AuthMethod != scramMethod {
		t.Errorf("CONNACK Authentication Method %q, want %q as in CONNECT [MQTT-4.12.0-5]", ack.Properties.AuthMethod, scramMethod)
	}
	if !sc.verifyServer(ack.Properties.AuthData) {
		t.Errorf("CONNACK Authentication Data %q is not the server signature", ack.Properties.AuthData)
	}

	// The authenticated connection works like any other.
	topic := b.topic("t")
	c.mustSubscribe(topic, 1)
	c.publish(topic, "x", 1, false)
	c.expectMessage(topic, "x")
}

// [MQTT-4.12.0-4] v5
func TestV5_EnhancedAuthRejected(t *testing.T) {
	t.Parallel()
	b := startScramBroker(t)
	cases := map[string]*scramClient{
		"wrong-password": newScramClient(scramUser, "wrong"),
		"unknown-user":   newScramClient("u-nobody", scramPassword),
	}
	for name, sc := range cases {
		t.Run(name, func(t *testing.T) {
			c := dial(t, b, v5)
			c.id = b.clientID("scram")
			c.send(c.connectPacket(withScram(sc)))

			// The server may reject at the first step or after the proof.
			f, ok := c.nextFrame(ioTimeout)
			if !ok {
				t.Logf("the broker closed after the client-first-message (%s)", c.closeReason())
				return
			}
			if f.err != nil {
				t.Fatalf("malformed packet % x: %v", truncate(f.raw), f.err)
			}
			if first, isAuth := f.p.(*packet.Auth); isAuth {
				if first.ReasonCode != packet.ReasonContinueAuthentication {
					t.Fatalf("server AUTH reason code 0x%02X, want 0x18 [MQTT-4.12.0-2]", byte(first.ReasonCode))
				}
				c.send(&packet.Auth{ReasonCode: packet.ReasonContinueAuthentication,
					Properties: packet.Properties{AuthMethod: scramMethod, AuthData: sc.final(t, first.Properties.AuthData)}})
			} else {
				c.pending = append(c.pending, f)
			}
			code := c.expectConnectRejected(true)
			t.Logf("rejected with CONNACK code %d (-1: closed without CONNACK)", code)
			if code >= 0 && code < 0x80 {
				t.Errorf("refusing CONNACK code 0x%02X, want 0x80 or above [MQTT-4.12.0-4]", code)
			}
		})
	}
}

// [MQTT-3.15.2-2] [MQTT-3.15.2-3] v5
func TestV5_AuthFitsClientMaximum(t *testing.T) {
	t.Parallel()
	b := startScramBroker(t)

	// A first exchange without a limit measures the AUTH and CONNACK the
	// broker sends. SCRAM messages have a fixed length for a given user.
	// The second exchange sets the Maximum Packet Size to the larger of the
	// two sizes, which leaves no room for a Reason String or User Property
	// that the broker may have added the first time.
	measure := newScramClient(scramUser, scramPassword)
	free := dial(t, b, v5)
	free.id = b.clientID("free")
	free.send(free.connectPacket(withScram(measure)))
	authFrame, ok := free.nextFrame(ioTimeout)
	if !ok {
		t.Fatalf("expected AUTH, but %s", free.closeReason())
	}
	first, isAuth := authFrame.p.(*packet.Auth)
	if !isAuth {
		t.Fatalf("expected AUTH, got % x", truncate(authFrame.raw))
	}
	free.send(&packet.Auth{ReasonCode: packet.ReasonContinueAuthentication,
		Properties: packet.Properties{AuthMethod: scramMethod, AuthData: measure.final(t, first.Properties.AuthData)}})
	ackFrame, ok := free.nextFrame(ioTimeout)
	if !ok {
		t.Fatalf("expected CONNACK, but %s", free.closeReason())
	}
	limit := uint32(max(len(authFrame.raw), len(ackFrame.raw)))
	withoutExtras := len(first.Properties.ReasonString) == 0 && len(first.Properties.UserProperties) == 0
	t.Logf("unlimited: AUTH %d bytes (no Reason String or User Property: %v), CONNACK %d bytes", len(authFrame.raw), withoutExtras, len(ackFrame.raw))

	sc := newScramClient(scramUser, scramPassword)
	c := dial(t, b, v5)
	c.id = b.clientID("tight")
	c.send(c.connectPacket(withScram(sc), withProps(func(p *packet.Properties) {
		p.MaximumPacketSize, p.HasMaximumPacketSize = limit, true
	})))
	f, ok := c.nextFrame(ioTimeout)
	if !ok {
		t.Fatalf("expected AUTH within Maximum Packet Size %d, but %s", limit, c.closeReason())
	}
	if len(f.raw) > int(limit) {
		t.Fatalf("%d-byte AUTH % x to a client with Maximum Packet Size %d", len(f.raw), truncate(f.raw), limit)
	}
	a, isAuth := f.p.(*packet.Auth)
	if !isAuth {
		t.Fatalf("expected AUTH, got % x", truncate(f.raw))
	}
	c.send(&packet.Auth{ReasonCode: packet.ReasonContinueAuthentication,
		Properties: packet.Properties{AuthMethod: scramMethod, AuthData: sc.final(t, a.Properties.AuthData)}})
	ack := expectPacket[*packet.Connack](c)
	if ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("CONNACK 0x%02X, want 0x00", byte(ack.ReasonCode))
	}
}

// authAbortCase breaks the SCRAM exchange after the server's first AUTH.
type authAbortCase struct {
	name  string
	abort func(t testing.TB, b *broker, c *client, sc *scramClient, first *packet.Auth)
}

func authAbortCases() []authAbortCase {
	return []authAbortCase{
		// A client that named an Authentication Method sends only AUTH or
		// DISCONNECT before CONNACK [MQTT-3.1.2-30].
		{"publish", func(t testing.TB, b *broker, c *client, _ *scramClient, _ *packet.Auth) {
			c.send(&packet.Publish{Topic: b.topic("early"), Payload: []byte("x")})
		}},
		{"pingreq", func(t testing.TB, b *broker, c *client, _ *scramClient, _ *packet.Auth) {
			c.send(&packet.Pingreq{})
		}},
		// A DISCONNECT is allowed and ends the attempt.
		{"disconnect", func(t testing.TB, b *broker, c *client, _ *scramClient, _ *packet.Auth) {
			c.send(&packet.Disconnect{})
		}},
		// Every AUTH repeats the method of the CONNECT [MQTT-4.12.0-5].
		{"other-method", func(t testing.TB, b *broker, c *client, sc *scramClient, first *packet.Auth) {
			c.send(&packet.Auth{ReasonCode: packet.ReasonContinueAuthentication,
				Properties: packet.Properties{AuthMethod: "x-conformance-other", AuthData: sc.final(t, first.Properties.AuthData)}})
		}},
		// 0x87 is no Authenticate reason code [MQTT-3.15.2-1]. node/packet
		// refuses to encode it, so the bytes are built here.
		{"invalid-reason-code", func(t testing.TB, b *broker, c *client, sc *scramClient, first *packet.Auth) {
			data := sc.final(t, first.Properties.AuthData)
			props := append([]byte{0x15}, mqttString(scramMethod)...)
			props = append(props, 0x16)
			props = append(props, u16(uint16(len(data)))...)
			props = append(props, data...)
			c.write(rawPacket(0xF0, []byte{0x87}, varInt(len(props)), props))
		}},
	}
}

// varInt returns n as an MQTT Variable Byte Integer.
func varInt(n int) []byte {
	var out []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			return out
		}
	}
}

// abortAuth starts a SCRAM exchange, breaks it off as the case does after
// the server's first AUTH, and returns every packet the broker sends until
// it closes the connection, which must happen within closeTimeout.
func abortAuth(t testing.TB, b *broker, tc authAbortCase) []frame {
	t.Helper()
	sc := newScramClient(scramUser, scramPassword)
	c := dial(t, b, v5)
	c.id = b.clientID("scram")
	c.send(c.connectPacket(withScram(sc)))
	first := c.expectServerFirst()
	tc.abort(t, b, c, sc, first)
	return collectUntilClosed(t, c)
}

// [MQTT-3.1.2-30] [MQTT-3.15.2-1] [MQTT-4.12.0-5] v5
func TestV5_EnhancedAuthAbortCloses(t *testing.T) {
	t.Parallel()
	b := startScramBroker(t)
	for _, tc := range authAbortCases() {
		t.Run(tc.name, func(t *testing.T) {
			// Before the close the broker may send a CONNACK of 0x80 or
			// above. TestV5_AuthAbortSendsNoDisconnect checks for a
			// DISCONNECT.
			for _, f := range abortAuth(t, b, tc) {
				switch p := f.p.(type) {
				case *packet.Connack:
					if p.ReasonCode < 0x80 {
						t.Errorf("CONNACK % x accepts a connection whose AUTH exchange broke off", f.raw)
					}
				case *packet.Disconnect:
				default:
					t.Errorf("expected at most a refusing CONNACK before the close, got % x", truncate(f.raw))
				}
			}
		})
	}
}

// [MQTT-3.14.0-1] [MQTT-3.2.0-1] v5
func TestV5_AuthAbortSendsNoDisconnect(t *testing.T) {
	t.Parallel()
	b := startScramBroker(t)
	for _, tc := range authAbortCases() {
		t.Run(tc.name, func(t *testing.T) {
			var tb testing.TB = t
			for _, f := range abortAuth(tb, b, tc) {
				if _, isDisc := f.p.(*packet.Disconnect); isDisc {
					tb.Errorf("DISCONNECT % x before any CONNACK [MQTT-3.14.0-1] [MQTT-3.2.0-1]", f.raw)
				}
			}
		})
	}
}

// collectUntilClosed returns every packet the broker sends until it closes
// the connection, and fails the test unless that happens within
// closeTimeout or a packet is malformed.
func collectUntilClosed(t testing.TB, c *client) []frame {
	t.Helper()
	var frames []frame
	deadline := time.Now().Add(closeTimeout)
	for {
		f, ok := c.nextFrame(time.Until(deadline))
		if !ok && c.closed {
			return frames
		}
		if !ok {
			t.Fatalf("%s: expected the broker to close the connection within %v, it is still open", c.id, closeTimeout)
		}
		if f.err != nil {
			t.Fatalf("%s: malformed packet % x: %v", c.id, truncate(f.raw), f.err)
		}
		frames = append(frames, f)
	}
}

// [MQTT-4.12.1-1] [MQTT-4.12.1-2] v5
func TestV5_Reauthentication(t *testing.T) {
	t.Parallel()
	b := startScramBroker(t)

	t.Run("same-method-succeeds", func(t *testing.T) {
		var tb testing.TB = t
		c := scramConnected(tb, b)
		again := newScramClient(scramUser, scramPassword)
		c.send(&packet.Auth{ReasonCode: packet.ReasonReAuthenticate,
			Properties: packet.Properties{AuthMethod: scramMethod, AuthData: again.first()}})
		first := c.expectServerFirst()
		c.send(&packet.Auth{ReasonCode: packet.ReasonContinueAuthentication,
			Properties: packet.Properties{AuthMethod: scramMethod, AuthData: again.final(tb, first.Properties.AuthData)}})
		done := expectPacket[*packet.Auth](c)
		if done.ReasonCode != packet.ReasonSuccess || done.Properties.AuthMethod != scramMethod {
			tb.Fatalf("final AUTH reason 0x%02X method %q, want 0x00 and %q [MQTT-4.12.0-5]", byte(done.ReasonCode), done.Properties.AuthMethod, scramMethod)
		}
		if !again.verifyServer(done.Properties.AuthData) {
			tb.Errorf("final AUTH data %q is not the server signature", done.Properties.AuthData)
		}
		c.ping()
	})

	// A failed re-authentication closes the connection, after a DISCONNECT
	// if the broker sends one [MQTT-4.12.1-2].
	t.Run("wrong-password-closes", func(t *testing.T) {
		var tb testing.TB = t
		c := scramConnected(tb, b)
		wrong := newScramClient(scramUser, "wrong")
		c.send(&packet.Auth{ReasonCode: packet.ReasonReAuthenticate,
			Properties: packet.Properties{AuthMethod: scramMethod, AuthData: wrong.first()}})
		first := c.expectServerFirst()
		c.send(&packet.Auth{ReasonCode: packet.ReasonContinueAuthentication,
			Properties: packet.Properties{AuthMethod: scramMethod, AuthData: wrong.final(tb, first.Properties.AuthData)}})
		c.expectClosedWithCode()
	})

	// Re-authentication keeps the method that authenticated the connection
	// [MQTT-4.12.1-1], so another method is a protocol error. The node
	// closes here for any re-authentication, so this case passes without
	// support for it.
	t.Run("other-method-closes", func(t *testing.T) {
		c := scramConnected(t, b)
		c.send(&packet.Auth{ReasonCode: packet.ReasonReAuthenticate,
			Properties: packet.Properties{AuthMethod: "x-conformance-other"}})
		c.expectClosedWithCode(packet.ReasonProtocolError, packet.ReasonBadAuthenticationMethod)
	})
}

// scramConnected returns a client connected through a successful SCRAM
// exchange.
func scramConnected(t testing.TB, b *broker) *client {
	t.Helper()
	c, ack := scramConnect(t, b, newScramClient(scramUser, scramPassword))
	if ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("CONNACK 0x%02X %q after a correct SCRAM exchange, want 0x00", byte(ack.ReasonCode), ack.Properties.ReasonString)
	}
	return c
}
