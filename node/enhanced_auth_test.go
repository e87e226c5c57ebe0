package node

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"

	"github.com/starling-mqtt/starling/node/packet"
)

// scramClient is the client side of SCRAM-SHA-256, written from RFC 5802
// section 3 and RFC 7677, independent of the server code under test.
type scramClient struct {
	user, password, nonce string
	clientFirstBare       string
	authMessage           string
	serverKey             []byte
}

func (s *scramClient) first() []byte {
	s.clientFirstBare = "n=" + s.user + ",r=" + s.nonce
	return []byte("n,," + s.clientFirstBare)
}

func (s *scramClient) final(t *testing.T, serverFirst []byte) []byte {
	t.Helper()
	attrs := map[string]string{}
	for _, kv := range strings.Split(string(serverFirst), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			attrs[k] = v
		}
	}
	if !strings.HasPrefix(attrs["r"], s.nonce) {
		t.Fatalf("server nonce %q does not extend the client nonce", attrs["r"])
	}
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil {
		t.Fatalf("salt: %v", err)
	}
	iter, err := strconv.Atoi(attrs["i"])
	if err != nil {
		t.Fatalf("iterations: %v", err)
	}
	salted, err := pbkdf2.Key(sha256.New, s.password, salt, iter, 32)
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	s.serverKey = mac(salted, "Server Key")
	withoutProof := "c=biws,r=" + attrs["r"]
	s.authMessage = s.clientFirstBare + "," + string(serverFirst) + "," + withoutProof
	sig := mac(stored[:], s.authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof))
}

func (s *scramClient) verifyServer(serverFinal []byte) bool {
	h := hmac.New(sha256.New, s.serverKey)
	h.Write([]byte(s.authMessage))
	return string(serverFinal) == "v="+base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func scramConnect(t *testing.T, srv *Server, password string) (*rawClient, *packet.Connack, *scramClient) {
	t.Helper()
	sc := &scramClient{user: "dev-1", password: password, nonce: "fyko+d2lbbFgONRv9qkxdawL"}
	c := dialRaw(t, srv, packet.Version5)
	c.send(&packet.Connect{ProtocolName: "MQTT", ProtocolVersion: packet.Version5, ClientID: "dev-1", CleanStart: true,
		Properties: packet.Properties{AuthMethod: scramMethod, AuthData: sc.first()}})
	p := c.read()
	a, ok := p.(*packet.Auth)
	if !ok {
		ack, _ := p.(*packet.Connack)
		return c, ack, sc
	}
	// [MQTT-4.12.0-2] The server continues with AUTH 0x18 in the same method.
	if a.ReasonCode != packet.ReasonContinueAuthentication || a.Properties.AuthMethod != scramMethod {
		t.Fatalf("server AUTH reason 0x%02X method %q", byte(a.ReasonCode), a.Properties.AuthMethod)
	}
	c.send(&packet.Auth{ReasonCode: packet.ReasonContinueAuthentication,
		Properties: packet.Properties{AuthMethod: scramMethod, AuthData: sc.final(t, a.Properties.AuthData)}})
	ack, ok := c.read().(*packet.Connack)
	if !ok {
		t.Fatal("expected CONNACK after the client-final-message")
	}
	return c, ack, sc
}

func TestEnhancedAuth_ScramSucceeds(t *testing.T) {
	srv := securedServer(t, nil)
	_, ack, sc := scramConnect(t, srv, "pw")
	if ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("CONNACK 0x%02X, want success", byte(ack.ReasonCode))
	}
	if ack.Properties.AuthMethod != scramMethod || !sc.verifyServer(ack.Properties.AuthData) {
		t.Fatalf("CONNACK method %q; server signature verified: %v", ack.Properties.AuthMethod, sc.verifyServer(ack.Properties.AuthData))
	}
}

func TestEnhancedAuth_WrongPasswordRefused(t *testing.T) {
	srv := securedServer(t, nil)
	_, ack, _ := scramConnect(t, srv, "wrong")
	if ack == nil || ack.ReasonCode != packet.ReasonBadUsernameOrPassword {
		t.Fatalf("CONNACK %+v, want 0x86", ack)
	}
}

func TestEnhancedAuth_UnknownMethodRefused(t *testing.T) {
	srv := securedServer(t, nil)
	c := dialRaw(t, srv, packet.Version5)
	ack := c.connect(&packet.Connect{ClientID: "x", CleanStart: true, Properties: packet.Properties{AuthMethod: "KERBEROS"}})
	if ack.ReasonCode != packet.ReasonBadAuthenticationMethod {
		t.Fatalf("CONNACK 0x%02X, want 0x8C", byte(ack.ReasonCode))
	}
}
