package breakers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestJWT_NoUsersWarningIsWrong configures auth.jwt on a listener with
// allow_anonymous: false and no stored users. The node logs that "every
// client will be refused", yet a client with a valid token connects.
func TestJWT_NoUsersWarningIsWrong(t *testing.T) {
	secret := strings.Repeat("s", 40)
	keyFile := writeFile(t, t.TempDir(), "jwt.key", secret)
	b := newBroker(t)
	b.fileListeners = true
	cfg := writeFile(t, t.TempDir(), "starling.yaml", `listeners:
  - url: tcp://`+b.addr+`
    allow_anonymous: false
auth:
  jwt:
    key_files: [{path: `+keyFile+`, id: k1, alg: HS256}]
`)
	b.args = []string{"--config", cfg}
	b.start()

	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","kid":"k1","typ":"JWT"}`))
	claims := enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":"sensor-1","exp":%d}`, time.Now().Add(time.Hour).Unix())))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(header + "." + claims))
	token := header + "." + claims + "." + enc.EncodeToString(mac.Sum(nil))

	c, ack := connect(t, b.addr, connectOpts{clientID: "sensor-1", clean: true, user: ptr("sensor-1"), pass: &token})
	c.Close()
	if code := connackCode(ack); code != 0 {
		t.Fatalf("client with a valid JWT: CONNACK %#x, expected 0", code)
	}
	if strings.Contains(b.log.String(), "every client will be refused") {
		knownBug(t, "the node warns that every client will be refused, but a JWT client connected")
	}
}
