package transport

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/starling-mqtt/starling/internal/tlsutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait of these tests.
const waitTimeout = 10 * time.Second

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startListener listens on cfg and closes the listener when the test ends.
func startListener(t *testing.T, cfg Config) *Listener {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	l, err := Listen(cfg)
	if err != nil {
		t.Fatalf("Listen(%s): %v", cfg.URL, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// acceptConn waits for the next connection of l and closes it when the test
// ends.
func acceptConn(t *testing.T, l *Listener) *Conn {
	t.Helper()
	type result struct {
		c   *Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.AcceptConn()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(waitTimeout):
		// The goroutine returns when the cleanup closes the listener.
		t.Fatalf("Accept returned nothing within %v", waitTimeout)
		return nil
	}
}

// checkFor polls cond until it holds or the wait times out.
func checkFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitRejected waits until l has rejected n connections for r.
func waitRejected(t *testing.T, l *Listener, r Reason, n uint64) {
	t.Helper()
	checkFor(t, "rejections for "+r.String(), func() bool { return l.Stats().Rejected[r] >= n })
	if got := l.Stats().Rejected[r]; got != n {
		t.Fatalf("Rejected[%s] = %d, want %d", r, got, n)
	}
}

// dialTCP opens a plain TCP connection to l, closed when the test ends.
func dialTCP(t *testing.T, l *Listener) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr().String(), waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", l.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialWS opens a WebSocket client connection offering "mqtt".
func dialWS(t *testing.T, l *Listener, scheme string, tlsCfg *tls.Config) (*websocket.Conn, error) {
	t.Helper()
	d := websocket.Dialer{
		Subprotocols:     []string{"mqtt"},
		TLSClientConfig:  tlsCfg,
		HandshakeTimeout: waitTimeout,
	}
	ws, resp, err := d.Dial(scheme+"://"+l.Addr().String()+"/mqtt", nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { ws.Close() })
	return ws, nil
}

// dialRejected opens a TCP connection that the listener is expected to
// reject. It returns nil when the listener's reset arrived before the dial
// returned, which happens on loopback.
func dialRejected(t *testing.T, l *Listener) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr().String(), waitTimeout)
	if errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	if err != nil {
		t.Fatalf("dial %s: %v", l.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expectClosed checks that the server closed c without sending anything. A
// nil c was reset while it connected.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	if c == nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	n, err := c.Read(make([]byte, 1))
	if err == nil {
		t.Fatalf("read %d bytes from a rejected connection, want EOF or reset", n)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("rejected connection stayed open: %v", err)
	}
}

// echoRoundTrip writes msg on the client side and checks that c reads it,
// then writes a reply on c and checks the client reads it.
func echoRoundTrip(t *testing.T, c *Conn, write func([]byte), read func(int) []byte) {
	t.Helper()
	msg := []byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
	write(msg)
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("server read: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("server read %x, want %x", got, msg)
	}

	reply := []byte{0x20, 0x02, 0x00, 0x00}
	if _, err := c.Write(reply); err != nil {
		t.Fatalf("server write: %v", err)
	}
	if back := read(len(reply)); !bytes.Equal(back, reply) {
		t.Fatalf("client read %x, want %x", back, reply)
	}
}

func streamIO(t *testing.T, nc net.Conn) (func([]byte), func(int) []byte) {
	write := func(p []byte) {
		if _, err := nc.Write(p); err != nil {
			t.Fatalf("client write: %v", err)
		}
	}
	read := func(n int) []byte {
		b := make([]byte, n)
		nc.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := io.ReadFull(nc, b); err != nil {
			t.Fatalf("client read: %v", err)
		}
		return b
	}
	return write, read
}

func wsIO(t *testing.T, ws *websocket.Conn) (func([]byte), func(int) []byte) {
	write := func(p []byte) {
		if err := ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
			t.Fatalf("client write: %v", err)
		}
	}
	read := func(int) []byte {
		ws.SetReadDeadline(time.Now().Add(waitTimeout))
		typ, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("client read: %v", err)
		}
		if typ != websocket.BinaryMessage {
			t.Fatalf("client read message type %d, want binary", typ)
		}
		return b
	}
	return write, read
}

func TestListener_RoundTrip(t *testing.T) {
	pki := newTestPKI(t)

	t.Run("tcp", func(t *testing.T) {
		l := startListener(t, Config{URL: "tcp://127.0.0.1:0"})
		nc := dialTCP(t, l)
		c := acceptConn(t, l)
		w, r := streamIO(t, nc)
		echoRoundTrip(t, c, w, r)
		checkConn(t, c, TransportTCP, nc.LocalAddr().String())
	})

	t.Run("tls", func(t *testing.T) {
		l := startListener(t, Config{URL: "tls://127.0.0.1:0", TLS: pki.serverOptions(tlsutil.ClientAuthRequired)})
		nc, err := tls.Dial("tcp", l.Addr().String(), pki.clientConfig(&pki.client))
		if err != nil {
			t.Fatalf("tls dial: %v", err)
		}
		t.Cleanup(func() { nc.Close() })
		c := acceptConn(t, l)
		w, r := streamIO(t, nc)
		echoRoundTrip(t, c, w, r)
		checkConn(t, c, TransportTLS, nc.LocalAddr().String())
		if certs := c.PeerCertificates(); len(certs) != 2 || certs[0].Subject.CommonName != "good client" {
			t.Fatalf("PeerCertificates = %v, want the client leaf and the CA", certs)
		}
	})

	t.Run("ws", func(t *testing.T) {
		l := startListener(t, Config{URL: "ws://127.0.0.1:0"})
		ws, err := dialWS(t, l, "ws", nil)
		if err != nil {
			t.Fatalf("ws dial: %v", err)
		}
		if ws.Subprotocol() != "mqtt" {
			t.Fatalf("subprotocol = %q, want mqtt", ws.Subprotocol())
		}
		c := acceptConn(t, l)
		w, r := wsIO(t, ws)
		echoRoundTrip(t, c, w, r)
		checkConn(t, c, TransportWS, ws.LocalAddr().String())
	})

	t.Run("wss", func(t *testing.T) {
		l := startListener(t, Config{URL: "wss://127.0.0.1:0", TLS: pki.serverOptions(tlsutil.ClientAuthRequired)})
		ws, err := dialWS(t, l, "wss", pki.clientConfig(&pki.client))
		if err != nil {
			t.Fatalf("wss dial: %v", err)
		}
		c := acceptConn(t, l)
		w, r := wsIO(t, ws)
		echoRoundTrip(t, c, w, r)
		checkConn(t, c, TransportWSS, ws.LocalAddr().String())
		if certs := c.PeerCertificates(); len(certs) == 0 || certs[0].Subject.CommonName != "good client" {
			t.Fatalf("PeerCertificates = %v, want the good client's chain", certs)
		}
	})
}

func checkConn(t *testing.T, c *Conn, transport, clientAddr string) {
	t.Helper()
	if c.Transport() != transport {
		t.Errorf("Transport = %q, want %q", c.Transport(), transport)
	}
	if c.RemoteAddr().String() != clientAddr {
		t.Errorf("RemoteAddr = %s, want %s", c.RemoteAddr(), clientAddr)
	}
	if c.ProxyAddr() != nil {
		t.Errorf("ProxyAddr = %v, want nil", c.ProxyAddr())
	}
	if !strings.HasPrefix(c.Listener(), transport+"://") {
		t.Errorf("Listener = %q, want the URL", c.Listener())
	}
	if transport == TransportTCP || transport == TransportWS {
		if c.PeerCertificates() != nil {
			t.Errorf("PeerCertificates = %v on %s, want nil", c.PeerCertificates(), transport)
		}
	}
}

func TestListener_WSSRejectsBadClientCerts(t *testing.T) {
	pki := newTestPKI(t)
	other := newAuthority(t, "other CA")
	expired := pki.ca.issue(t, "expired client", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	untrusted := other.valid(t, "untrusted client")

	for _, transport := range []string{TransportTLS, TransportWSS} {
		for _, tc := range []struct {
			name string
			cert *issued
		}{
			{"revoked", &pki.revoked},
			{"expired", &expired},
			{"untrusted", &untrusted},
			{"none", nil},
		} {
			t.Run(transport+"/"+tc.name, func(t *testing.T) {
				l := startListener(t, Config{URL: transport + "://127.0.0.1:0", TLS: pki.serverOptions(tlsutil.ClientAuthRequired)})
				cfg := pki.clientConfig(tc.cert)
				if transport == TransportWSS {
					if _, err := dialWS(t, l, "wss", cfg); err == nil {
						t.Fatal("wss dial succeeded, want a failed handshake")
					}
				} else {
					// In TLS 1.3 the client learns of the rejection on its
					// first read, after its handshake has returned.
					nc, err := tls.Dial("tcp", l.Addr().String(), cfg)
					if err == nil {
						t.Cleanup(func() { nc.Close() })
						nc.SetReadDeadline(time.Now().Add(waitTimeout))
						if _, err := nc.Read(make([]byte, 1)); err == nil {
							t.Fatal("read succeeded on a rejected TLS connection")
						}
					}
				}
				waitRejected(t, l, ReasonTLSHandshake, 1)
				if s := l.Stats(); s.Current != 0 || s.Accepted != 0 {
					t.Fatalf("Stats = %+v, want no connection", s)
				}
			})
		}
	}
}

func TestListener_SlowTLSHandshakeDoesNotBlockAccept(t *testing.T) {
	pki := newTestPKI(t)
	l := startListener(t, Config{
		URL:                 "tls://127.0.0.1:0",
		TLS:                 pki.serverOptions(tlsutil.ClientAuthNone),
		TLSHandshakeTimeout: 500 * time.Millisecond,
	})

	// These never send a ClientHello, or only half of one.
	silent := dialTCP(t, l)
	partial := dialTCP(t, l)
	if _, err := partial.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}); err != nil {
		t.Fatalf("write partial ClientHello: %v", err)
	}

	start := time.Now()
	nc, err := tls.Dial("tcp", l.Addr().String(), pki.clientConfig(nil))
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	acceptConn(t, l)
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Fatalf("Accept took %v behind two stalled handshakes", d)
	}

	waitRejected(t, l, ReasonTLSHandshake, 2)
	expectClosed(t, silent)
	expectClosed(t, partial)
}

func TestListener_CloseStopsEverything(t *testing.T) {
	pki := newTestPKI(t)
	l, err := Listen(Config{URL: "wss://127.0.0.1:0", TLS: pki.serverOptions(tlsutil.ClientAuthNone), Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}

	// One socket stuck in the handshake, one prepared but never accepted.
	stuck := dialTCP(t, l)
	ws, err := dialWS(t, l, "wss", pki.clientConfig(nil))
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	checkFor(t, "two connections", func() bool { return l.Stats().Current == 2 })

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if cur := l.Stats().Current; cur != 0 {
		t.Fatalf("Current after Close = %d, want 0", cur)
	}
	expectClosed(t, stuck)
	ws.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("queued wss connection is still open after Close")
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("dial succeeded after Close")
	}
}

func TestListener_CloseUnblocksAccept(t *testing.T) {
	l, err := Listen(Config{URL: "tcp://127.0.0.1:0", Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	acceptErr := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		acceptErr <- err
	}()
	time.Sleep(20 * time.Millisecond) // let Accept block; the test passes either way

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-acceptErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked Accept returned %v, want net.ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Accept still blocked after Close")
	}
}

func TestListener_AcceptedConnOutlivesClose(t *testing.T) {
	l, err := Listen(Config{URL: "tcp://127.0.0.1:0", Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	nc := dialTCP(t, l)
	c := acceptConn(t, l)
	l.Close()

	w, r := streamIO(t, nc)
	echoRoundTrip(t, c, w, r)
	if cur := l.Stats().Current; cur != 1 {
		t.Fatalf("Current = %d, want 1 until the Conn closes", cur)
	}
	c.Close()
	c.Close()
	if cur := l.Stats().Current; cur != 0 {
		t.Fatalf("Current after two Conn.Close = %d, want 0", cur)
	}
}

func TestListener_AllowDeny(t *testing.T) {
	for _, tc := range []struct {
		name   string
		allow  []string
		deny   []string
		reason Reason // reasonNone: accepted
	}{
		{"no-lists", nil, nil, reasonNone},
		{"allowed", []string{"127.0.0.0/8"}, nil, reasonNone},
		{"allowed-single-address", []string{"127.0.0.1"}, nil, reasonNone},
		{"outside-allow", []string{"10.0.0.0/8", "192.0.2.0/24"}, nil, ReasonAllow},
		{"denied", nil, []string{"127.0.0.1/32"}, ReasonDeny},
		{"deny-wins", []string{"127.0.0.0/8"}, []string{"127.0.0.0/24"}, ReasonDeny},
		{"deny-other", nil, []string{"10.0.0.0/8"}, reasonNone},
		{"mapped-range", nil, []string{"::ffff:127.0.0.0/104"}, ReasonDeny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startListener(t, Config{URL: "tcp://127.0.0.1:0", Allow: tc.allow, Deny: tc.deny})
			if tc.reason == reasonNone {
				dialTCP(t, l)
				acceptConn(t, l)
				return
			}
			nc := dialRejected(t, l)
			waitRejected(t, l, tc.reason, 1)
			expectClosed(t, nc)
			if s := l.Stats(); s.Accepted != 0 || s.Current != 0 {
				t.Fatalf("Stats = %+v, want nothing accepted", s)
			}
		})
	}
}

func TestListener_AllowDenyBySourceAddress(t *testing.T) {
	// Linux routes all of 127.0.0.0/8 to loopback, so a client can bind
	// another source address there.
	l := startListener(t, Config{URL: "tcp://127.0.0.1:0", Deny: []string{"127.0.0.3"}})
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitTimeout}
		c, err := d.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Skipf("cannot dial from %s on this host: %v", src, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: waitTimeout}
	denied, err := d.Dial("tcp", l.Addr().String())
	if err == nil {
		t.Cleanup(func() { denied.Close() })
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Skipf("cannot dial from 127.0.0.3 on this host: %v", err)
	}
	waitRejected(t, l, ReasonDeny, 1)
	expectClosed(t, denied)

	dial("127.0.0.2")
	c := acceptConn(t, l)
	if got := c.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
		t.Fatalf("RemoteAddr = %s, want 127.0.0.2", got)
	}
}

func TestListener_RateLimit(t *testing.T) {
	// A rate this low adds no token during the test.
	l := startListener(t, Config{URL: "tcp://127.0.0.1:0", MaxConnRate: 0.001, MaxConnBurst: 2})
	for range 2 {
		dialTCP(t, l)
		acceptConn(t, l)
	}
	var rejected []net.Conn
	for range 3 {
		rejected = append(rejected, dialRejected(t, l))
	}
	waitRejected(t, l, ReasonRate, 3)
	for _, nc := range rejected {
		expectClosed(t, nc)
	}
	if s := l.Stats(); s.Accepted != 2 {
		t.Fatalf("Accepted = %d, want 2", s.Accepted)
	}
}

func TestListener_MaxConnections(t *testing.T) {
	l := startListener(t, Config{URL: "tcp://127.0.0.1:0", MaxConnections: 2})
	dialTCP(t, l)
	first := acceptConn(t, l)
	dialTCP(t, l)
	acceptConn(t, l)

	over := dialRejected(t, l)
	waitRejected(t, l, ReasonMaxConnections, 1)
	expectClosed(t, over)

	first.Close()
	if cur := l.Stats().Current; cur != 1 {
		t.Fatalf("Current after one Close = %d, want 1", cur)
	}
	dialTCP(t, l)
	acceptConn(t, l)
	if s := l.Stats(); s.Current != 2 || s.Accepted != 3 {
		t.Fatalf("Stats = %+v, want 2 current and 3 accepted", s)
	}
}

func TestListener_MaxConnectionsCountsHandshakes(t *testing.T) {
	pki := newTestPKI(t)
	l := startListener(t, Config{URL: "tls://127.0.0.1:0", TLS: pki.serverOptions(tlsutil.ClientAuthNone), MaxConnections: 1})
	dialTCP(t, l) // holds the slot in its handshake
	checkFor(t, "the stalled handshake", func() bool { return l.Stats().Current == 1 })

	over := dialRejected(t, l)
	waitRejected(t, l, ReasonMaxConnections, 1)
	expectClosed(t, over)
}

func TestListener_Loopback(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want bool
	}{
		{"ipv4-loopback", Config{URL: "tcp://127.0.0.1:0"}, true},
		{"localhost", Config{URL: "tcp://localhost:0"}, true},
		{"all-interfaces", Config{URL: "tcp://:0"}, false},
		{"proxy-protocol", Config{URL: "tcp://127.0.0.1:0", ProxyProtocol: true, TrustedProxies: []string{"127.0.0.1"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startListener(t, tc.cfg)
			if got := l.Loopback(); got != tc.want {
				t.Fatalf("Loopback() = %v for %s bound at %s, want %v", got, tc.cfg.URL, l.Addr(), tc.want)
			}
		})
	}
}

func TestListener_ListenErrors(t *testing.T) {
	pki := newTestPKI(t)
	busy := startListener(t, Config{URL: "tcp://127.0.0.1:0"})

	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"port-in-use", Config{URL: "tcp://" + busy.Addr().String()}, "listen on"},
		{"missing-cert-file", Config{URL: "tls://127.0.0.1:0", TLS: &tlsutil.ServerOptions{CertFile: pki.dir + "/none.pem", KeyFile: pki.dir + "/none-key.pem"}}, "none.pem"},
		{"invalid-config", Config{URL: "udp://127.0.0.1:0"}, "Config.URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = quietLogger()
			l, err := Listen(tc.cfg)
			if err == nil {
				l.Close()
				t.Fatal("Listen succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Listen error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestListener_WSSOffersHTTP11(t *testing.T) {
	pki := newTestPKI(t)
	l := startListener(t, Config{URL: "wss://127.0.0.1:0", TLS: pki.serverOptions(tlsutil.ClientAuthNone)})
	cfg := pki.clientConfig(nil)
	cfg.NextProtos = []string{"http/1.1"}
	nc, err := tls.Dial("tcp", l.Addr().String(), cfg)
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	defer nc.Close()
	if p := nc.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("ALPN = %q, want http/1.1", p)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://"+l.Addr().String()+"/mqtt", nil)
	if err := req.Write(nc); err != nil {
		t.Fatalf("write request: %v", err)
	}
	waitRejected(t, l, ReasonWSUpgrade, 1)
}
