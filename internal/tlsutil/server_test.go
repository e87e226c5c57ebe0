package tlsutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects log output for assertions; slog handlers may write
// from the poller and the test at once.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// pki is the certificate set of most server tests: one CA issues the server
// certificate and the client certificates, as `starling certs init` does.
type pki struct {
	dir      string
	ca       *testCA
	caFile   string
	crlFile  string
	certFile string
	keyFile  string
	server   testLeaf
	client   testLeaf
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), ca: newTestCA(t, "test client CA")}
	p.caFile = writeFile(t, p.dir, "ca.pem", p.ca.pem)
	p.crlFile = writeFile(t, p.dir, "ca.crl", p.ca.crl(t))
	p.server = p.ca.issue(t, leafSpec{cn: "server", dns: []string{"localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1)}})
	p.certFile, p.keyFile = writeLeaf(t, p.dir, "server", p.server)
	p.client = p.ca.issue(t, leafSpec{cn: "c1", usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return p
}

func (p *pki) options(auth ClientAuth) ServerOptions {
	o := ServerOptions{
		CertFile:       p.certFile,
		KeyFile:        p.keyFile,
		ClientAuth:     auth,
		ReloadInterval: -1,
		Logger:         slog.New(slog.DiscardHandler),
	}
	if auth != ClientAuthNone {
		o.ClientCAFile = p.caFile
		o.CRLFiles = []string{p.crlFile}
	}
	return o
}

// clientConfig trusts p's CA for the server and presents leaf when not nil.
// It sends leaf even when the server's list of acceptable CAs does not
// include its issuer, which a client with Certificates alone would not do,
// so that the server's own checks are what the tests exercise.
func (p *pki) clientConfig(t *testing.T, leaf *testLeaf) *tls.Config {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.cert)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if leaf != nil {
		cert := leaf.tlsCert(t)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return cfg
}

// startServer builds a server Config from opts and serves it on 127.0.0.1.
func startServer(t *testing.T, opts ServerOptions) (string, <-chan error, *Reloader) {
	t.Helper()
	cfg, r, err := ServerConfig(opts)
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	addr, results := serveTLS(t, cfg)
	return addr, results, r
}

func TestServerConfig_Handshake(t *testing.T) {
	p := newPKI(t)
	addr, results, _ := startServer(t, p.options(ClientAuthRequired))

	cs, err := dialTLS(t, addr, p.clientConfig(t, &p.client))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if err := result(t, results); err != nil {
		t.Fatalf("server: %v", err)
	}
	if got := cs.PeerCertificates[0].SerialNumber; got.Cmp(p.server.cert.SerialNumber) != 0 {
		t.Errorf("server presented serial %x, want %x", got, p.server.cert.SerialNumber)
	}
}

func TestServerConfig_RejectsClientCert(t *testing.T) {
	p := newPKI(t)
	other := newTestCA(t, "untrusted CA")
	clientAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	revoked := p.ca.issue(t, leafSpec{cn: "revoked", usages: clientAuth})
	writeFile(t, p.dir, "ca.crl", p.ca.crl(t, revoked.cert))

	tests := []struct {
		name    string
		leaf    *testLeaf
		wantErr error  // checked with errors.Is when set
		want    string // part of the server's error, from crypto/tls or this package
	}{
		{name: "expired", leaf: ptr(p.ca.issue(t, leafSpec{cn: "old", usages: clientAuth,
			notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})), want: "expired"},
		{name: "not-yet-valid", leaf: ptr(p.ca.issue(t, leafSpec{cn: "early", usages: clientAuth,
			notBefore: time.Now().Add(time.Hour), notAfter: time.Now().Add(48 * time.Hour)})), want: "not yet valid"},
		{name: "untrusted", leaf: ptr(other.issue(t, leafSpec{cn: "stranger", usages: clientAuth})), want: "unknown authority"},
		{name: "revoked", leaf: &revoked, wantErr: ErrRevoked, want: "CN=revoked"},
		{name: "server-auth-only", leaf: ptr(p.ca.issue(t, leafSpec{cn: "srv",
			usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})), want: "key usage"},
		{name: "no-certificate", leaf: nil, want: "certificate"},
	}
	addr, results, _ := startServer(t, p.options(ClientAuthRequired))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := dialTLS(t, addr, p.clientConfig(t, tt.leaf)); err == nil {
				t.Error("client: handshake succeeded, want rejection")
			}
			serverErr := result(t, results)
			if serverErr == nil {
				t.Fatal("server: handshake succeeded, want rejection")
			}
			if tt.wantErr != nil && !errors.Is(serverErr, tt.wantErr) {
				t.Errorf("server error = %v, want %v", serverErr, tt.wantErr)
			}
			if !strings.Contains(serverErr.Error(), tt.want) {
				t.Errorf("server error = %v, want it to contain %q", serverErr, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestServerConfig_OptionalClientAuth(t *testing.T) {
	p := newPKI(t)
	other := newTestCA(t, "untrusted CA")
	addr, results, _ := startServer(t, p.options(ClientAuthOptional))

	if _, err := dialTLS(t, addr, p.clientConfig(t, nil)); err != nil {
		t.Errorf("no certificate: client: %v", err)
	}
	if err := result(t, results); err != nil {
		t.Errorf("no certificate: server: %v", err)
	}

	if _, err := dialTLS(t, addr, p.clientConfig(t, &p.client)); err != nil {
		t.Errorf("valid certificate: client: %v", err)
	}
	if err := result(t, results); err != nil {
		t.Errorf("valid certificate: server: %v", err)
	}

	stranger := other.issue(t, leafSpec{cn: "stranger", usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if _, err := dialTLS(t, addr, p.clientConfig(t, &stranger)); err == nil {
		t.Error("untrusted certificate: client: handshake succeeded, want rejection")
	}
	if err := result(t, results); err == nil {
		t.Error("untrusted certificate: server: handshake succeeded, want rejection")
	}
}

func TestServerConfig_RejectsTLS11(t *testing.T) {
	p := newPKI(t)
	addr, results, _ := startServer(t, p.options(ClientAuthNone))

	cfg := p.clientConfig(t, nil)
	cfg.MinVersion = tls.VersionTLS10
	cfg.MaxVersion = tls.VersionTLS11
	if _, err := dialTLS(t, addr, cfg); err == nil {
		t.Error("client: TLS 1.1 handshake succeeded")
	}
	if err := result(t, results); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("server error = %v, want a protocol version error", err)
	}
}

func TestServerConfig_TLS12Suites(t *testing.T) {
	p := newPKI(t)
	addr, results, _ := startServer(t, p.options(ClientAuthNone))

	cfg := p.clientConfig(t, nil)
	cfg.MaxVersion = tls.VersionTLS12
	cs, err := dialTLS(t, addr, cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if err := result(t, results); err != nil {
		t.Fatalf("server: %v", err)
	}
	if cs.Version != tls.VersionTLS12 {
		t.Errorf("version = %x, want TLS 1.2", cs.Version)
	}
	if !strings.Contains(tls.CipherSuiteName(cs.CipherSuite), "ECDHE_ECDSA") {
		t.Errorf("cipher suite = %s, want an ECDHE_ECDSA suite", tls.CipherSuiteName(cs.CipherSuite))
	}

	// A client offering only CBC suites finds nothing in common.
	cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	if _, err := dialTLS(t, addr, cfg); err == nil {
		t.Error("client: CBC-only handshake succeeded")
	}
	if err := result(t, results); err == nil {
		t.Error("server: CBC-only handshake succeeded")
	}
}

func TestServerConfig_ALPN(t *testing.T) {
	p := newPKI(t)
	opts := p.options(ClientAuthNone)
	opts.NextProtos = []string{"h2"}
	addr, results, _ := startServer(t, opts)

	cfg := p.clientConfig(t, nil)
	cfg.NextProtos = []string{"h2"}
	cs, err := dialTLS(t, addr, cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if err := result(t, results); err != nil {
		t.Fatalf("server: %v", err)
	}
	if cs.NegotiatedProtocol != "h2" {
		t.Errorf("negotiated protocol = %q, want h2", cs.NegotiatedProtocol)
	}
}

func TestServerConfig_VerifyIdentity(t *testing.T) {
	p := newPKI(t)
	opts := p.options(ClientAuthRequired)
	opts.VerifyIdentity = func(leaf *x509.Certificate) error { return VerifyPeerName(leaf, "n1") }
	addr, results, _ := startServer(t, opts)

	n1 := p.ca.issue(t, leafSpec{cn: "n1", dns: []string{"n1"}})
	if _, err := dialTLS(t, addr, p.clientConfig(t, &n1)); err != nil {
		t.Errorf("n1: client: %v", err)
	}
	if err := result(t, results); err != nil {
		t.Errorf("n1: server: %v", err)
	}

	n2 := p.ca.issue(t, leafSpec{cn: "n1", dns: []string{"n2"}})
	if _, err := dialTLS(t, addr, p.clientConfig(t, &n2)); err == nil {
		t.Error("n2: client: handshake succeeded, want rejection")
	}
	if err := result(t, results); !errors.Is(err, ErrPeerName) {
		t.Errorf("n2: server error = %v, want ErrPeerName", err)
	}
}

// TestServerConfig_HTTPSRejectsRevoked serves the Config through net/http,
// as a wss listener does, and checks that a revoked client certificate is
// rejected there exactly as on a plain tls listener.
func TestServerConfig_HTTPSRejectsRevoked(t *testing.T) {
	p := newPKI(t)
	revoked := p.ca.issue(t, leafSpec{cn: "revoked", usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	writeFile(t, p.dir, "ca.crl", p.ca.crl(t, revoked.cert))
	opts := p.options(ClientAuthRequired)
	opts.NextProtos = []string{"http/1.1"}
	cfg, r, err := ServerConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:      http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }),
		TLSConfig:    cfg,
		ErrorLog:     slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})

	get := func(leaf *testLeaf) error {
		tr := &http.Transport{TLSClientConfig: p.clientConfig(t, leaf)}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		resp, err := c.Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get(&p.client); err != nil {
		t.Errorf("valid certificate: %v", err)
	}
	if err := get(&revoked); err == nil {
		t.Error("revoked certificate: request succeeded, want rejection")
	}
}

func TestServerConfig_InvalidOptions(t *testing.T) {
	tests := []struct {
		name string
		opts ServerOptions
		want string
	}{
		{name: "no-cert", opts: ServerOptions{KeyFile: "k"}, want: "CertFile"},
		{name: "no-key", opts: ServerOptions{CertFile: "c"}, want: "KeyFile"},
		{name: "required-without-ca", opts: ServerOptions{CertFile: "c", KeyFile: "k", ClientAuth: ClientAuthRequired}, want: "ClientCAFile"},
		{name: "crl-without-auth", opts: ServerOptions{CertFile: "c", KeyFile: "k", CRLFiles: []string{"x"}}, want: "CRLFiles"},
		{name: "bad-auth", opts: ServerOptions{CertFile: "c", KeyFile: "k", ClientAuth: 7}, want: "ClientAuth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ServerConfig(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestServerConfig_LoadErrors(t *testing.T) {
	p := newPKI(t)
	other := newTestCA(t, "other CA")
	wrongKey := p.ca.issue(t, leafSpec{cn: "x"})
	expired := p.ca.issue(t, leafSpec{cn: "old", notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})

	tests := []struct {
		name   string
		mutate func(o *ServerOptions)
		want   string
	}{
		{name: "missing-cert", mutate: func(o *ServerOptions) { o.CertFile = p.dir + "/nope.pem" }, want: "nope.pem"},
		{name: "key-mismatch", mutate: func(o *ServerOptions) { o.KeyFile = writeFile(t, p.dir, "wrong-key.pem", wrongKey.keyPEM) }, want: "key belongs"},
		{name: "expired-cert", mutate: func(o *ServerOptions) { o.CertFile, o.KeyFile = writeLeaf(t, p.dir, "old", expired) }, want: "expired"},
		{name: "empty-ca", mutate: func(o *ServerOptions) { o.ClientCAFile = writeFile(t, p.dir, "empty.pem", nil) }, want: "no PEM CERTIFICATE"},
		{name: "crl-foreign-issuer", mutate: func(o *ServerOptions) { o.CRLFiles = []string{writeFile(t, p.dir, "other.crl", other.crl(t))} }, want: "not signed by any CA"},
		{name: "crl-garbage", mutate: func(o *ServerOptions) { o.CRLFiles = []string{writeFile(t, p.dir, "bad.crl", []byte("garbage"))} }, want: "parse CRL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := p.options(ClientAuthRequired)
			tt.mutate(&opts)
			_, r, err := ServerConfig(opts)
			if err == nil {
				r.Close()
				t.Fatal("ServerConfig succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestServerConfig_DERCRL(t *testing.T) {
	p := newPKI(t)
	revoked := p.ca.issue(t, leafSpec{cn: "revoked", usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	block := p.ca.crl(t, revoked.cert)
	der := pemToDER(t, block)
	opts := p.options(ClientAuthRequired)
	opts.CRLFiles = []string{writeFile(t, p.dir, "ca.der.crl", der)}
	addr, results, _ := startServer(t, opts)

	if _, err := dialTLS(t, addr, p.clientConfig(t, &revoked)); err == nil {
		t.Error("client: handshake succeeded, want rejection")
	}
	if err := result(t, results); !errors.Is(err, ErrRevoked) {
		t.Errorf("server error = %v, want ErrRevoked", err)
	}
}

func TestServerConfig_StaleCRLWarns(t *testing.T) {
	p := newPKI(t)
	revoked := p.ca.issue(t, leafSpec{cn: "revoked", usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	writeFile(t, p.dir, "ca.crl", p.ca.crlUntil(t, time.Now().Add(-time.Hour), revoked.cert))
	logs := &logBuffer{}
	opts := p.options(ClientAuthRequired)
	opts.Logger = logs.logger()
	addr, results, _ := startServer(t, opts)

	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "ca.crl") {
		t.Errorf("log has no warning naming ca.crl:\n%s", logs)
	}
	if _, err := dialTLS(t, addr, p.clientConfig(t, &revoked)); err == nil {
		t.Error("client: handshake succeeded, want rejection by the stale CRL")
	}
	if err := result(t, results); !errors.Is(err, ErrRevoked) {
		t.Errorf("server error = %v, want ErrRevoked", err)
	}
}

func TestParseClientAuth(t *testing.T) {
	for _, want := range []ClientAuth{ClientAuthNone, ClientAuthOptional, ClientAuthRequired} {
		got, err := ParseClientAuth(want.String())
		if err != nil || got != want {
			t.Errorf("ParseClientAuth(%q) = %v, %v; want %v", want.String(), got, err, want)
		}
	}
	if got, err := ParseClientAuth(""); err != nil || got != ClientAuthNone {
		t.Errorf(`ParseClientAuth("") = %v, %v; want none`, got, err)
	}
	if _, err := ParseClientAuth("yes"); err == nil {
		t.Error(`ParseClientAuth("yes") succeeded, want an error`)
	}
}
