package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// peerPKI is a peer CA with node certificates n1 and n2 written to disk.
type peerPKI struct {
	dir     string
	ca      *testCA
	caFile  string
	crlFile string
	nodes   map[string]testLeaf
}

func newPeerPKI(t *testing.T) *peerPKI {
	t.Helper()
	p := &peerPKI{dir: t.TempDir(), ca: newTestCA(t, "test peer CA"), nodes: map[string]testLeaf{}}
	p.caFile = writeFile(t, p.dir, "peer-ca.pem", p.ca.pem)
	p.crlFile = writeFile(t, p.dir, "peer-ca.crl", p.ca.crl(t))
	for _, name := range []string{"n1", "n2"} {
		leaf := p.ca.issue(t, leafSpec{cn: name, dns: []string{name, "localhost"}})
		writeLeaf(t, p.dir, name, leaf)
		p.nodes[name] = leaf
	}
	return p
}

func (p *peerPKI) file(name string) string { return p.dir + "/" + name }

// serve starts node's peer port: mutual TLS against the peer CA, ALPN h2,
// and a client that must carry the name want.
func (p *peerPKI) serve(t *testing.T, node, want string) (string, <-chan error) {
	t.Helper()
	addr, results, _ := startServer(t, ServerOptions{
		CertFile:       p.file(node + ".pem"),
		KeyFile:        p.file(node + "-key.pem"),
		ClientAuth:     ClientAuthRequired,
		ClientCAFile:   p.caFile,
		CRLFiles:       []string{p.crlFile},
		NextProtos:     []string{"h2"},
		VerifyIdentity: func(leaf *x509.Certificate) error { return VerifyPeerName(leaf, want) },
		ReloadInterval: -1,
		Logger:         slog.New(slog.DiscardHandler),
	})
	return addr, results
}

func (p *peerPKI) clientOptions(node, serverName string) ClientOptions {
	return ClientOptions{
		CertFile:       p.file(node + ".pem"),
		KeyFile:        p.file(node + "-key.pem"),
		CAFile:         p.caFile,
		CRLFiles:       []string{p.crlFile},
		ServerName:     serverName,
		NextProtos:     []string{"h2"},
		ReloadInterval: -1,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

func newClientConfig(t *testing.T, opts ClientOptions) (*tls.Config, *Reloader) {
	t.Helper()
	cfg, r, err := ClientConfig(opts)
	if err != nil {
		t.Fatalf("ClientConfig: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return cfg, r
}

func TestClientConfig_MutualTLS(t *testing.T) {
	p := newPeerPKI(t)
	addr, results := p.serve(t, "n2", "n1")
	cfg, _ := newClientConfig(t, p.clientOptions("n1", "n2"))

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
	assertSerial(t, cs, p.nodes["n2"].cert.SerialNumber)
}

func TestClientConfig_WrongServerName(t *testing.T) {
	p := newPeerPKI(t)
	addr, results := p.serve(t, "n2", "n1")
	cfg, _ := newClientConfig(t, p.clientOptions("n1", "n3"))

	_, err := dialTLS(t, addr, cfg)
	if !errors.Is(err, ErrPeerName) {
		t.Errorf("client error = %v, want ErrPeerName", err)
	}
	if err := result(t, results); err == nil {
		t.Error("server: handshake succeeded after the client rejected it")
	}
}

func TestClientConfig_ServerNamePerDial(t *testing.T) {
	p := newPeerPKI(t)
	addr, results := p.serve(t, "n2", "n1")
	base, _ := newClientConfig(t, p.clientOptions("n1", ""))

	cfg := base.Clone()
	cfg.ServerName = "n2"
	if _, err := dialTLS(t, addr, cfg); err != nil {
		t.Errorf("ServerName n2: client: %v", err)
	}
	if err := result(t, results); err != nil {
		t.Errorf("ServerName n2: server: %v", err)
	}

	if _, err := dialTLS(t, addr, base); err == nil || !strings.Contains(err.Error(), "no expected peer name") {
		t.Errorf("no ServerName: client error = %v, want a missing name error", err)
	}
	result(t, results)
}

func TestClientConfig_UntrustedServer(t *testing.T) {
	p := newPeerPKI(t)
	// The server presents a certificate of the client CA, not the peer CA.
	clients := newPKI(t)
	addr, results, _ := startServer(t, ServerOptions{
		CertFile: clients.certFile, KeyFile: clients.keyFile,
		ReloadInterval: -1, Logger: slog.New(slog.DiscardHandler),
	})
	cfg, _ := newClientConfig(t, p.clientOptions("n1", "localhost"))

	if _, err := dialTLS(t, addr, cfg); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("client error = %v, want unknown authority", err)
	}
	result(t, results)
}

func TestClientConfig_RevokedServer(t *testing.T) {
	p := newPeerPKI(t)
	addr, results := p.serve(t, "n2", "n1")
	cfg, r := newClientConfig(t, p.clientOptions("n1", "n2"))

	writeFile(t, p.dir, "peer-ca.crl", p.ca.crl(t, p.nodes["n2"].cert))
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := dialTLS(t, addr, cfg); !errors.Is(err, ErrRevoked) {
		t.Errorf("client error = %v, want ErrRevoked", err)
	}
	result(t, results)
}

func TestClientConfig_ServerRejectsWrongNode(t *testing.T) {
	p := newPeerPKI(t)
	// n2's peer port accepts only n1, and n2 itself dials.
	addr, results := p.serve(t, "n2", "n1")
	cfg, _ := newClientConfig(t, p.clientOptions("n2", "n2"))

	if _, err := dialTLS(t, addr, cfg); err == nil {
		t.Error("client: handshake succeeded, want rejection")
	}
	if err := result(t, results); !errors.Is(err, ErrPeerName) {
		t.Errorf("server error = %v, want ErrPeerName", err)
	}
}

func TestClientConfig_InvalidOptions(t *testing.T) {
	_, _, err := ClientConfig(ClientOptions{})
	for _, field := range []string{"CertFile", "KeyFile", "CAFile"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error = %v, want one naming %s", err, field)
		}
	}
}
