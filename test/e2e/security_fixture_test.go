package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// secUser is a user that startSecNode adds with `starling user add` before
// the node starts.
type secUser struct {
	name, password string
	groups, roles  []string
}

// secNodeSpec describes a node for the security tests.
type secNodeSpec struct {
	// listeners maps a listener name to its scheme (tcp, tls, ws or wss).
	// Each gets a free loopback address, which is also in the server
	// certificate.
	listeners map[string]string
	users     []secUser
	// config returns the YAML configuration, given the node's addresses
	// and certificate directory.
	config func(n *secNode) string
}

// secNode is a starling process started from a configuration file, with
// certificates from `starling certs init` (clients dev-1, dev-2 and ops)
// and its admin API on a loopback address for `starling ctl`.
type secNode struct {
	t      *testing.T
	dir    string
	certs  string
	addr   map[string]string // listener name to host:port
	scheme map[string]string // listener name to scheme
	http   string
	log    *syncBuffer
}

// startSecNode starts a node for spec and stops it when the test ends.
func startSecNode(t *testing.T, spec secNodeSpec) *secNode {
	t.Helper()
	if !isStarling() {
		t.Skip("Starling-only: users, rules and listeners from the configuration file")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	dir := t.TempDir()
	n := &secNode{t: t, dir: dir, certs: filepath.Join(dir, "certs"), addr: map[string]string{},
		scheme: map[string]string{}, http: freeLoopbackAddr(t), log: new(syncBuffer)}
	hosts := []string{"localhost"}
	for name, scheme := range spec.listeners {
		n.addr[name] = freeLoopbackAddr(t)
		n.scheme[name] = scheme
		host, _, _ := net.SplitHostPort(n.addr[name])
		hosts = append(hosts, host)
	}
	n.starling("certs", "init", n.certs, "--hosts", strings.Join(hosts, ","), "--clients", "dev-1,dev-2,ops")

	data := filepath.Join(dir, "data")
	for _, u := range spec.users {
		args := []string{"user", "add", u.name, "--data-dir", data, "--password-stdin"}
		for _, g := range u.groups {
			args = append(args, "--group", g)
		}
		for _, r := range u.roles {
			args = append(args, "--role", r)
		}
		cmd := exec.Command(starlingBin, args...)
		cmd.Stdin = strings.NewReader(u.password + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("starling user add %s: %v\n%s", u.name, err, out)
		}
	}

	cfg := filepath.Join(dir, "starling.yaml")
	if err := os.WriteFile(cfg, []byte(spec.config(n)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(starlingBin, "serve", "--config", cfg, "--data-dir", data, "--http", n.http)
	cmd.Stderr = n.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("broker log:\n%s", tail(n.log.String(), 60))
		}
	})
	waitFor(t, startTimeout, func() error {
		if !strings.Contains(n.log.String(), "starling started") {
			return fmt.Errorf("not started yet:\n%s", tail(n.log.String(), 10))
		}
		return nil
	})
	return n
}

// starling runs a starling command and returns its output. It fails the
// test if the command fails.
func (n *secNode) starling(args ...string) string {
	n.t.Helper()
	out, err := exec.Command(starlingBin, args...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("starling %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ctl runs `starling ctl` against the node's admin API.
func (n *secNode) ctl(args ...string) string {
	n.t.Helper()
	return n.starling(append(append([]string{"ctl"}, args...), "--http", n.http)...)
}

// tlsConfig trusts the node's CA and presents the client certificate cert,
// if not nil.
func (n *secNode) tlsConfig(cert *tls.Certificate) *tls.Config {
	n.t.Helper()
	pem, err := os.ReadFile(filepath.Join(n.certs, "ca.pem"))
	if err != nil {
		n.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// clientCert loads a client certificate that `certs init` wrote.
func (n *secNode) clientCert(name string) *tls.Certificate {
	n.t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(n.certs, "clients", name+".pem"), filepath.Join(n.certs, "clients", name+"-key.pem"))
	if err != nil {
		n.t.Fatal(err)
	}
	return &pair
}

// dial opens a connection to a listener in its own transport: TCP, TLS, or
// MQTT in binary WebSocket messages (subprotocol mqtt, path /mqtt) over TCP
// or TLS. cert is the client certificate, nil for none.
func (n *secNode) dial(listener string, cert *tls.Certificate) (net.Conn, error) {
	n.t.Helper()
	addr := n.addr[listener]
	switch n.scheme[listener] {
	case "tcp":
		return net.DialTimeout("tcp", addr, ioTimeout)
	case "tls":
		return tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", addr, n.tlsConfig(cert))
	case "ws", "wss":
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: ioTimeout, TLSClientConfig: n.tlsConfig(cert)}
		ws, _, err := d.Dial(n.scheme[listener]+"://"+addr+"/mqtt", nil)
		if err != nil {
			return nil, err
		}
		return newWSConn(ws), nil
	}
	n.t.Fatalf("unknown listener %q", listener)
	return nil, nil
}

// client returns a raw MQTT client connected to a listener, before CONNECT.
func (n *secNode) client(listener, name string, cert *tls.Certificate) *rawClient {
	n.t.Helper()
	conn, err := n.dial(listener, cert)
	if err != nil {
		n.t.Fatalf("%s: dial %s: %v", name, listener, err)
	}
	n.t.Cleanup(func() { conn.Close() })
	return &rawClient{t: n.t, name: name, version: 5, conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
}

// handshakeRefused reports whether a listener refuses a client with
// certificate cert in the TLS handshake, and the error the client saw. In
// TLS 1.3 the client's handshake ends before the server has checked the
// client certificate, so the refusal can also come as the answer to the
// CONNECT; any CONNACK means the handshake was accepted.
func (n *secNode) handshakeRefused(listener string, cert *tls.Certificate) (bool, error) {
	n.t.Helper()
	conn, err := n.dial(listener, cert)
	if err != nil {
		return true, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := conn.Write(v5("handshake-probe", true).encode()); err != nil {
		return true, err
	}
	p, err := readPacket(bufio.NewReader(conn))
	if err != nil {
		return true, err
	}
	return false, fmt.Errorf("got %v", p)
}

// login connects a raw MQTT 5.0 client with a user name and password and
// returns it with its CONNACK code.
func (n *secNode) login(listener, clientID, user, password string, will *willSpec) (*rawClient, byte) {
	n.t.Helper()
	c := n.client(listener, clientID, nil)
	spec := v5(clientID, true)
	if user != "" {
		spec.Username, spec.Password = &user, &password
	}
	spec.Will = will
	return c, c.connect(spec).Code
}

// mustLogin is login that requires CONNACK success.
func (n *secNode) mustLogin(listener, clientID, user, password string) *rawClient {
	n.t.Helper()
	c, code := n.login(listener, clientID, user, password, nil)
	if code != 0 {
		n.t.Fatalf("%s as %s on %s: CONNACK %#x, want 0", clientID, user, listener, code)
	}
	return c
}

// wsConn carries an MQTT byte stream in binary WebSocket messages, so that
// rawClient can speak to ws and wss listeners. A read timeout leaves a
// gorilla connection unusable, and rawClient waits with read deadlines, so
// a goroutine reads the messages and Read waits for them with its own
// deadline. The goroutine ends when the connection is closed.
type wsConn struct {
	*websocket.Conn
	msgs chan []byte
	err  error // the read error, valid once msgs is closed
	done chan struct{}
	once sync.Once
	buf  []byte // the rest of the message being read

	mu       sync.Mutex
	deadline time.Time
}

func newWSConn(ws *websocket.Conn) *wsConn {
	c := &wsConn{Conn: ws, msgs: make(chan []byte), done: make(chan struct{})}
	go c.readLoop()
	return c
}

func (c *wsConn) readLoop() {
	defer close(c.msgs)
	for {
		_, data, err := c.Conn.ReadMessage()
		if err != nil {
			c.err = io.EOF
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				c.err = err
			}
			return
		}
		select {
		case c.msgs <- data:
		case <-c.done:
			return
		}
	}
}

func (c *wsConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	deadline := c.deadline
	c.mu.Unlock()
	var expired <-chan time.Time
	if !deadline.IsZero() {
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		expired = timer.C
	}
	// An empty message carries no bytes, so wait for the next one.
	for len(c.buf) == 0 {
		select {
		case data, ok := <-c.msgs:
			if !ok {
				return 0, c.err
			}
			c.buf = data
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

func (c *wsConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// issueCert writes a client certificate for common name cn, valid from
// notBefore to notAfter, signed by the CA in caCert and caKey (PEM files),
// and returns it loaded. With empty caCert it is signed by a new CA that
// the broker does not know.
func issueCert(t *testing.T, caCert, caKey, cn string, notBefore, notAfter time.Time) *tls.Certificate {
	t.Helper()

	var parent *x509.Certificate
	var parentKey any
	if caCert == "" {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rogue CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		if parent, err = x509.ParseCertificate(der); err != nil {
			t.Fatal(err)
		}
		parentKey = key
	} else {
		parent = parseCertFile(t, caCert)
		block := readPEM(t, caKey)
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		parentKey = key
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func readPEM(t *testing.T, path string) *pem.Block {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	return block
}

func parseCertFile(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(readPEM(t, path).Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
