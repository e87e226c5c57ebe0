package e2e

import (
	"bufio"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecurity_BadClientCertificatesRefusedOnTLSAndWSS offers tls and wss
// listeners that require client certificates every kind of bad certificate,
// and a good certificate with another client id. It then revokes a
// certificate with `starling certs revoke` while the node runs: new
// handshakes with it fail within the reload interval, and a ban through
// `starling ctl` disconnects the client that was already connected.
func TestSecurity_BadClientCertificatesRefusedOnTLSAndWSS(t *testing.T) {
	n := startSecNode(t, secNodeSpec{listeners: map[string]string{"mtls": "tls", "mwss": "wss"}, users: fleetUsers, config: fleetConfig})
	ca, caKey := filepath.Join(n.certs, "ca.pem"), filepath.Join(n.certs, "ca-key.pem")
	now := time.Now()
	bad := map[string]*tls.Certificate{
		"none":          nil,
		"expired":       issueCert(t, ca, caKey, "dev-1", now.Add(-48*time.Hour), now.Add(-24*time.Hour)),
		"not-yet-valid": issueCert(t, ca, caKey, "dev-1", now.Add(24*time.Hour), now.Add(48*time.Hour)),
		"untrusted":     issueCert(t, "", "", "dev-1", now.Add(-time.Hour), now.Add(time.Hour)),
	}

	// Before the revocation, dev-2 connects on mtls and ops on mwss, each
	// with its certificate.
	holders := map[string]string{"mtls": "dev-2", "mwss": "ops"}
	connected := map[string]*rawClient{}
	for _, l := range []string{"mtls", "mwss"} {
		if refused, err := n.handshakeRefused(l, n.clientCert("dev-1")); refused {
			t.Fatalf("%s: valid certificate of dev-1 refused: %v", l, err)
		}
		for name, cert := range bad {
			if refused, err := n.handshakeRefused(l, cert); !refused {
				t.Errorf("%s: %s certificate accepted: %v", l, name, err)
			}
		}

		// The certificate's name is the user: dev-1 gets the device rules.
		c := n.client(l, "dev-1", n.clientCert("dev-1"))
		if code := c.connect(v5("dev-1", true)).Code; code != 0 {
			t.Fatalf("%s: dev-1 with its certificate: CONNACK %#x, want 0", l, code)
		}
		if got := c.publish("devices/dev-1/telemetry", 1, false, "x"); got != 0 {
			t.Errorf("%s: dev-1 publish to its own topic: %#x, want 0", l, got)
		}
		if got := c.publish("devices/dev-2/telemetry", 1, false, "x"); got != 0x87 {
			t.Errorf("%s: dev-1 publish to dev-2's topic: %#x, want 0x87", l, got)
		}
		c.disconnect()

		// A certificate does not let its holder use another client id or
		// another user's password.
		spoof := n.client(l, "dev-2", n.clientCert("dev-1"))
		if code := spoof.connect(v5("dev-2", true)).Code; code != 0x87 {
			t.Errorf("%s: dev-1's certificate with client id dev-2: CONNACK %#x, want 0x87", l, code)
		}
		other := n.client(l, "dev-1", n.clientCert("dev-1"))
		user, password := "dev-2", "pw-dev-2"
		spec := v5("dev-1", true)
		spec.Username, spec.Password = &user, &password
		if code := other.connect(spec).Code; code != 0x86 {
			t.Errorf("%s: dev-1's certificate with dev-2's password: CONNACK %#x, want 0x86", l, code)
		}

		holder := holders[l]
		hc := n.client(l, holder, n.clientCert(holder))
		if code := hc.connect(v5(holder, true)).Code; code != 0 {
			t.Fatalf("%s: %s before revocation: CONNACK %#x, want 0", l, holder, code)
		}
		connected[l] = hc
	}

	for _, holder := range holders {
		n.starling("certs", "revoke", "--ca-dir", n.certs, filepath.Join(n.certs, "clients", holder+".pem"))
	}
	for _, l := range []string{"mtls", "mwss"} {
		for _, holder := range holders {
			waitFor(t, ioTimeout, func() error {
				if refused, err := n.handshakeRefused(l, n.clientCert(holder)); !refused {
					return fmt.Errorf("%s: revoked certificate of %s still accepted: %v", l, holder, err)
				}
				return nil
			})
		}
		// An open connection keeps the certificate it negotiated.
		connected[l].ping()
	}

	// A ban on the user name disconnects the open connection at once.
	for l, c := range connected {
		n.ctl("ban", "add", "username", holders[l], "--for", "1h", "--reason", "certificate revoked")
		got := c.expectClosed(ioTimeout)
		if len(got) != 1 || got[0].Type != typeDisconnect || disconnectReason(got[0]) != 0x98 {
			t.Errorf("%s: banned client got %v before the close, want DISCONNECT 0x98", l, got)
		}
	}
}

// TestSecurity_JWTForgedExpiredWrongKey offers a node with an HS256 and an
// RS256 key forged, expired, early, re-signed and algorithm-confused tokens.
// Only the well-formed tokens connect, and a token's acl claim grants its
// topics and nothing more.
func TestSecurity_JWTForgedExpiredWrongKey(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("an HS256 secret of at least 32 bytes, for the test only")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsFile, rsFile := filepath.Join(dir, "hs.key"), filepath.Join(dir, "rs.pem")
	if err := os.WriteFile(hsFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rsFile, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	n := startSecNode(t, secNodeSpec{listeners: map[string]string{"l": "tcp"}, config: func(n *secNode) string {
		return fmt.Sprintf(`listeners:
  - {name: l, url: "tcp://%s", allow_anonymous: false}
auth:
  throttle: {free_failures: 100, ban_after: 1000}
  jwt:
    key_files: [{path: %s, id: hs, alg: HS256}, {path: %s, id: rs, alg: RS256}]
`, n.addr["l"], hsFile, rsFile)
	}})

	enc := base64.RawURLEncoding
	part := func(v any) string {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return enc.EncodeToString(raw)
	}
	hs := func(key []byte) func(string) string {
		return func(input string) string {
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte(input))
			return enc.EncodeToString(mac.Sum(nil))
		}
	}
	rs := func(key *rsa.PrivateKey) func(string) string {
		return func(input string) string {
			sum := sha256.Sum256([]byte(input))
			sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
			if err != nil {
				t.Fatal(err)
			}
			return enc.EncodeToString(sig)
		}
	}
	token := func(header, claims map[string]any, sign func(string) string) string {
		input := part(header) + "." + part(claims)
		return input + "." + sign(input)
	}
	claims := func(extra map[string]any) map[string]any {
		c := map[string]any{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
			"acl": []map[string]string{{"action": "publish", "permission": "allow", "topic": "sensors/%u/#"}}}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	hsHeader := map[string]any{"alg": "HS256", "kid": "hs", "typ": "JWT"}
	rsHeader := map[string]any{"alg": "RS256", "kid": "rs", "typ": "JWT"}
	valid := token(hsHeader, claims(nil), hs(secret))
	header, _, _ := strings.Cut(valid, ".")
	_, sig, _ := strings.Cut(valid[len(header)+1:], ".")

	for _, tc := range []struct {
		name, user, token string
		want              byte
	}{
		{"hs256-valid", "alice", valid, 0},
		{"rs256-valid", "alice", token(rsHeader, claims(nil), rs(rsaKey)), 0},
		{"expired", "alice", token(hsHeader, claims(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), hs(secret)), 0x86},
		{"not-yet-valid", "alice", token(hsHeader, claims(map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}), hs(secret)), 0x86},
		{"no-exp", "alice", token(hsHeader, map[string]any{"sub": "alice"}, hs(secret)), 0x86},
		{"wrong-hs256-secret", "alice", token(hsHeader, claims(nil), hs([]byte("another secret of at least 32 bytes long"))), 0x86},
		{"wrong-rsa-key", "alice", token(rsHeader, claims(nil), rs(otherRSA)), 0x86},
		// The claims of a valid token replaced, its signature kept.
		{"forged-claims", "admin", header + "." + part(claims(map[string]any{"sub": "admin"})) + "." + sig, 0x86},
		{"alg-none", "alice", part(map[string]any{"alg": "none", "typ": "JWT"}) + "." + part(claims(nil)) + ".", 0x86},
		// Algorithm confusion: HS256 with the RSA public key as the secret.
		{"hs256-with-rsa-public-key", "alice", token(map[string]any{"alg": "HS256", "kid": "rs"}, claims(nil), hs(pubPEM)), 0x86},
		{"hs256-kid-with-rs256-alg", "alice", token(map[string]any{"alg": "RS256", "kid": "hs"}, claims(nil), rs(rsaKey)), 0x86},
		{"user-name-not-the-subject", "bob", valid, 0x86},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, code := n.login("l", "jwt-"+tc.name, tc.user, tc.token, nil)
			if code != tc.want {
				t.Fatalf("CONNACK %#x, want %#x", code, tc.want)
			}
			if code != 0 {
				return
			}
			if got := c.publish("sensors/alice/t", 1, false, "x"); got != 0 {
				t.Errorf("publish on the token's topic: %#x, want 0", got)
			}
			if got := c.publish("sensors/bob/t", 1, false, "x"); got != 0x87 {
				t.Errorf("publish outside the token's topic: %#x, want 0x87", got)
			}
			if got := c.subscribe("sensors/#", 1); got != 0x87 {
				t.Errorf("subscribe without a subscribe rule: %#x, want 0x87", got)
			}
		})
	}
}

// TestSecurity_PlaceholderInjectionGrantsNothing connects with client ids
// and user names made of "+", "#" and "/", which the %c and %u
// placeholders of the rules must treat as literal text that fills one
// level, never as wildcards or several levels.
func TestSecurity_PlaceholderInjectionGrantsNothing(t *testing.T) {
	var users []secUser
	for _, name := range []string{"dev-1", "+", "#", "a/b", "a"} {
		users = append(users, secUser{name: name, password: "pw", groups: []string{"g"}})
	}
	n := startSecNode(t, secNodeSpec{listeners: map[string]string{"l": "tcp"}, users: users, config: func(n *secNode) string {
		return fmt.Sprintf(`listeners:
  - {name: l, url: "tcp://%s", allow_anonymous: false}
auth:
  throttle: {free_failures: 100, ban_after: 1000}
  groups:
    - {name: g, roles: [r]}
  roles:
    - name: r
      rules:
        - {action: all, permission: allow, topic: "devices/%%c/#"}
        - {action: all, permission: allow, topic: "users/%%u/#"}
`, n.addr["l"])
	}})

	type check struct {
		filter  string // subscribed when not empty
		publish string // published when not empty
		want    byte
	}
	for _, tc := range []struct {
		user, clientID string
		checks         []check
	}{
		// The control: plain names get their own subtrees.
		{"dev-1", "dev-1", []check{
			{filter: "devices/dev-1/#", want: 1}, {publish: "devices/dev-1/x", want: 0},
			{filter: "users/dev-1/#", want: 1}, {publish: "users/dev-1/x", want: 0},
			{filter: "devices/+/#", want: 0x87}, {publish: "devices/dev-2/x", want: 0x87},
		}},
		{"dev-1", "+", []check{
			{filter: "devices/+/#", want: 0x87}, {filter: "devices/+", want: 0x87},
			{publish: "devices/dev-2/x", want: 0x87},
		}},
		{"dev-1", "#", []check{{filter: "devices/#", want: 0x87}, {publish: "devices/dev-2/x", want: 0x87}}},
		{"dev-1", "dev-2/x", []check{
			{filter: "devices/dev-2/x/#", want: 0x87}, {publish: "devices/dev-2/x/y", want: 0x87},
		}},
		{"+", "u-plus", []check{
			{filter: "users/+/#", want: 0x87}, {filter: "users/+", want: 0x87},
			{publish: "users/dev-1/x", want: 0x87},
		}},
		{"#", "u-hash", []check{{filter: "users/#", want: 0x87}, {publish: "users/dev-1/x", want: 0x87}}},
		// User "a/b" must not reach into the subtree of user "a".
		{"a/b", "u-slash", []check{
			{filter: "users/a/b/#", want: 0x87}, {publish: "users/a/b/x", want: 0x87}, {publish: "users/a/x", want: 0x87},
		}},
	} {
		name := fmt.Sprintf("user %q client %q", tc.user, tc.clientID)
		c, code := n.login("l", tc.clientID, tc.user, "pw", nil)
		if code != 0 {
			t.Errorf("%s: CONNACK %#x, want 0", name, code)
			continue
		}
		for _, ch := range tc.checks {
			if ch.filter != "" {
				if got := c.subscribe(ch.filter, 1); got != ch.want {
					t.Errorf("%s: SUBSCRIBE %q: %#x, want %#x", name, ch.filter, got, ch.want)
				}
				continue
			}
			if got := c.publish(ch.publish, 1, false, "x"); got != ch.want {
				t.Errorf("%s: PUBLISH %q: %#x, want %#x", name, ch.publish, got, ch.want)
			}
		}
		c.disconnect()
	}
}

// TestSecurity_BruteForceThrottledPerAddress guesses a password from one
// address. After free_failures the responses slow down. After ban_after the
// address is refused even with the right password, while the same user from
// another address still logs in.
func TestSecurity_BruteForceThrottledPerAddress(t *testing.T) {
	n := startSecNode(t, secNodeSpec{listeners: map[string]string{"l": "tcp"}, users: fleetUsers, config: func(n *secNode) string {
		return fmt.Sprintf(`listeners:
  - {name: l, url: "tcp://%s", allow_anonymous: false}
auth:
  throttle: {free_failures: 2, max_delay: 2s, ban_after: 6, ban_for: 1m}
`, n.addr["l"])
	}})
	login := func(from, password string) (byte, time.Duration) {
		t.Helper()
		d := net.Dialer{Timeout: ioTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		conn, err := d.Dial("tcp", n.addr["l"])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c := &rawClient{t: t, name: "guess from " + from, version: 5, conn: conn, r: bufio.NewReader(conn)}
		user := "dev-1"
		spec := v5("", true)
		spec.Username, spec.Password = &user, &password
		start := time.Now()
		code := c.connect(spec).Code
		return code, time.Since(start)
	}

	const attacker, device = "127.0.0.201", "127.0.0.202"
	// Guesses 1 and 2 are checked at once. Guesses 3 to 6 wait 100, 200,
	// 400 and 800 ms before the check, and from guess 7 on the address is
	// banned.
	var slowest time.Duration
	for i := 1; i <= 6; i++ {
		code, took := login(attacker, fmt.Sprintf("guess-%d", i))
		if code != 0x86 {
			t.Fatalf("guess %d: CONNACK %#x, want 0x86", i, code)
		}
		if i == 6 {
			slowest = took
		}
	}
	if slowest < 700*time.Millisecond {
		t.Errorf("guess 6 took %v, want at least the 800 ms delay", slowest)
	}
	if code, took := login(attacker, "pw-dev-1"); code != 0x87 || took > time.Second {
		t.Errorf("right password from the banned address: CONNACK %#x after %v, want 0x87 at once", code, took)
	}
	if code, _ := login(device, "pw-dev-1"); code != 0 {
		t.Errorf("right password from another address: CONNACK %#x, want 0", code)
	}
}

// TestSecurity_ProxyHeadersAndBans checks the PROXY protocol trust model
// and run-time bans. A header from an address outside trusted_proxies, or on
// a listener without PROXY protocol, is refused. A trusted proxy's header
// sets the client address that the deny list and address bans check. Bans on
// addresses, client ids and user names disconnect connected clients and
// refuse new ones with 0x8A.
func TestSecurity_ProxyHeadersAndBans(t *testing.T) {
	n := startSecNode(t, secNodeSpec{listeners: map[string]string{"untrusted": "tcp", "trusted": "tcp", "plain": "tcp"}, users: fleetUsers,
		config: func(n *secNode) string {
			return fmt.Sprintf(`listeners:
  - {name: untrusted, url: "tcp://%s", proxy_protocol: true, trusted_proxies: [10.0.0.0/8]}
  - {name: trusted, url: "tcp://%s", proxy_protocol: true, trusted_proxies: [127.0.0.0/8], deny: [192.0.2.0/24]}
  - {name: plain, url: "tcp://%s", allow_anonymous: false}
auth:
  throttle: {free_failures: 100, ban_after: 1000}
  roles:
    - name: operator
      rules:
        - {action: subscribe, permission: allow, topic: "devices/+/state"}
`, n.addr["untrusted"], n.addr["trusted"], n.addr["plain"])
		}})
	// viaProxy connects to a listener, sends a PROXY v1 header that claims
	// the client address from, then a CONNECT as ops.
	viaProxy := func(listener, from, clientID string) (*rawClient, *connack) {
		t.Helper()
		c := n.client(listener, clientID, nil)
		if from != "" {
			_, port, _ := net.SplitHostPort(n.addr[listener])
			c.send([]byte(fmt.Sprintf("PROXY TCP4 %s 127.0.0.1 40000 %s\r\n", from, port)))
		}
		user, password := "ops", "pw-ops"
		spec := v5(clientID, true)
		spec.Username, spec.Password = &user, &password
		c.send(spec.encode())
		p, err := c.next(ioTimeout)
		switch {
		case err == nil && p.Type == typeConnack:
			ca, err := decodeConnack(5, p)
			if err != nil {
				t.Fatal(err)
			}
			return c, &ca
		case err == nil:
			t.Fatalf("%s: %v before CONNACK", listener, p)
		case isTimeout(err):
			t.Fatalf("%s: neither CONNACK nor close within %v", listener, ioTimeout)
		}
		return c, nil
	}

	if _, ca := viaProxy("untrusted", "198.51.100.9", "p1"); ca != nil {
		t.Errorf("PROXY header from 127.0.0.1, outside trusted_proxies: CONNACK %#x, want a close", ca.Code)
	}
	if _, ca := viaProxy("untrusted", "", "p2"); ca == nil || ca.Code != 0 {
		t.Errorf("direct client without a header on a PROXY listener: %+v, want CONNACK 0", ca)
	}
	if _, ca := viaProxy("plain", "198.51.100.9", "p3"); ca != nil {
		t.Errorf("PROXY header on a listener without PROXY protocol: CONNACK %#x, want a close", ca.Code)
	}
	if _, ca := viaProxy("trusted", "192.0.2.7", "p4"); ca != nil {
		t.Errorf("trusted header claiming a denied address: CONNACK %#x, want a close", ca.Code)
	}
	if _, ca := viaProxy("trusted", "", "p5"); ca != nil {
		t.Errorf("trusted proxy without a header: CONNACK %#x, want a close", ca.Code)
	}

	// Bans: each disconnects a connected client and refuses it again.
	for _, tc := range []struct {
		kind, value, from, clientID string
	}{
		{"address", "198.51.100.0/24", "198.51.100.9", "b1"},
		{"client_id", "b2", "203.0.113.2", "b2"},
		{"username", "ops", "203.0.113.3", "b3"},
	} {
		c, ca := viaProxy("trusted", tc.from, tc.clientID)
		if ca == nil || ca.Code != 0 {
			t.Fatalf("%s ban: client %s via the trusted proxy before the ban: %+v, want CONNACK 0", tc.kind, tc.clientID, ca)
		}
		n.ctl("ban", "add", tc.kind, tc.value, "--for", "10m")
		got := c.expectClosed(ioTimeout)
		if len(got) != 1 || got[0].Type != typeDisconnect || disconnectReason(got[0]) != 0x98 {
			t.Errorf("%s ban: connected client got %v, want DISCONNECT 0x98", tc.kind, got)
		}
		if _, ca := viaProxy("trusted", tc.from, tc.clientID); ca == nil || ca.Code != 0x8A {
			t.Errorf("%s ban: new connection got %+v, want CONNACK 0x8A", tc.kind, ca)
		}
		n.ctl("ban", "remove", tc.kind, tc.value)
	}
	if _, ca := viaProxy("trusted", "198.51.100.9", "after"); ca == nil || ca.Code != 0 {
		t.Errorf("after the bans were removed: %+v, want CONNACK 0", ca)
	}

	// A ban with --for ends by itself.
	n.ctl("ban", "add", "client_id", "brief", "--for", "1s")
	if _, ca := viaProxy("trusted", "203.0.113.4", "brief"); ca == nil || ca.Code != 0x8A {
		t.Errorf("during a 1 s ban: %+v, want CONNACK 0x8A", ca)
	}
	time.Sleep(1200 * time.Millisecond)
	if _, ca := viaProxy("trusted", "203.0.113.4", "brief"); ca == nil || ca.Code != 0 {
		t.Errorf("after a 1 s ban ended: %+v, want CONNACK 0", ca)
	}
	if out := n.ctl("ban", "list"); strings.Contains(out, "brief") {
		t.Errorf("expired ban still listed:\n%s", out)
	}
}
