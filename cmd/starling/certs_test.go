package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/internal/tlsutil"
)

// runCertsQuiet runs certsMain and returns the exit code and both outputs.
func runCertsQuiet(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := certsMain(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// initCerts runs `certs init` with two nodes and two clients into a new
// directory and returns it.
func initCerts(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	code, _, stderr := runCertsQuiet(t, "init", dir, "--nodes", "n1,n2", "--clients", "c1,c2", "--days", "30")
	if code != 0 {
		t.Fatalf("certs init exited %d: %s", code, stderr)
	}
	return dir
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	cert, err := readCertificate(path)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func pool(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	p.AddCert(readCert(t, path))
	return p
}

func TestCertsInit_WritesFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	code, stdout, stderr := runCertsQuiet(t, "init", dir, "--nodes", "n1,n2", "--clients", "c1")
	if code != 0 {
		t.Fatalf("exit code %d, stderr: %s", code, stderr)
	}
	files := map[string]os.FileMode{
		"ca.pem": 0o644, "ca-key.pem": 0o600, "ca.crl": 0o644,
		"peer-ca.pem": 0o644, "peer-ca-key.pem": 0o600,
		"server.pem": 0o644, "server-key.pem": 0o600,
		"nodes/n1.pem": 0o644, "nodes/n1-key.pem": 0o600,
		"nodes/n2.pem": 0o644, "nodes/n2-key.pem": 0o600,
		"clients/c1.pem": 0o644, "clients/c1-key.pem": 0o600,
		"gossip.key": 0o600,
	}
	for name, maxMode := range files {
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if info.Mode().Perm()&^maxMode != 0 {
			t.Errorf("%s has mode %v, want at most %v", name, info.Mode().Perm(), maxMode)
		}
		if !strings.Contains(stdout, path) {
			t.Errorf("output does not mention %s:\n%s", path, stdout)
		}
	}
	if strings.Contains(stdout, "PRIVATE KEY") {
		t.Error("output contains private key material")
	}
}

func TestCertsInit_ChainsVerify(t *testing.T) {
	dir := initCerts(t)
	clientCA := pool(t, filepath.Join(dir, "ca.pem"))
	peerCA := pool(t, filepath.Join(dir, "peer-ca.pem"))

	server := readCert(t, filepath.Join(dir, "server.pem"))
	for _, host := range []string{"localhost", "127.0.0.1"} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: clientCA, DNSName: host}); err != nil {
			t.Errorf("server.pem for %s: %v", host, err)
		}
	}

	c1 := readCert(t, filepath.Join(dir, "clients", "c1.pem"))
	if c1.Subject.CommonName != "c1" {
		t.Errorf("clients/c1.pem common name = %q, want c1", c1.Subject.CommonName)
	}
	clientAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if _, err := c1.Verify(x509.VerifyOptions{Roots: clientCA, KeyUsages: clientAuth}); err != nil {
		t.Errorf("clients/c1.pem against ca.pem: %v", err)
	}
	if _, err := c1.Verify(x509.VerifyOptions{Roots: peerCA, KeyUsages: clientAuth}); err == nil {
		t.Error("clients/c1.pem verifies against the peer CA, want the CAs kept apart")
	}

	n1 := readCert(t, filepath.Join(dir, "nodes", "n1.pem"))
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := n1.Verify(x509.VerifyOptions{Roots: peerCA, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("nodes/n1.pem against peer-ca.pem for usage %v: %v", usage, err)
		}
	}
	if _, err := n1.Verify(x509.VerifyOptions{Roots: clientCA, KeyUsages: clientAuth}); err == nil {
		t.Error("nodes/n1.pem verifies against the client CA, want the CAs kept apart")
	}
	if err := tlsutil.VerifyPeerName(n1, "n1"); err != nil {
		t.Errorf("VerifyPeerName(n1.pem, n1): %v", err)
	}
	if err := tlsutil.VerifyPeerName(n1, "n2"); !errors.Is(err, tlsutil.ErrPeerName) {
		t.Errorf("VerifyPeerName(n1.pem, n2) = %v, want ErrPeerName", err)
	}
	if _, err := n1.Verify(x509.VerifyOptions{Roots: peerCA, DNSName: "localhost"}); err != nil {
		t.Errorf("nodes/n1.pem does not carry the --hosts names: %v", err)
	}

	wantNotAfter := time.Now().Add(30 * 24 * time.Hour)
	if d := n1.NotAfter.Sub(wantNotAfter); d < -time.Minute || d > time.Minute {
		t.Errorf("nodes/n1.pem expires %v, want about %v (--days 30)", n1.NotAfter, wantNotAfter)
	}
}

func TestCertsInit_KeysAndCRL(t *testing.T) {
	dir := initCerts(t)

	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "nodes", "n2.pem"), filepath.Join(dir, "nodes", "n2-key.pem"))
	if err != nil {
		t.Fatalf("nodes/n2 key pair: %v", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Errorf("nodes/n2-key.pem is %T, want an ECDSA P-256 key", pair.PrivateKey)
	}

	ca := readCert(t, filepath.Join(dir, "ca.pem"))
	crl, err := loadCRL(filepath.Join(dir, "ca.crl"), ca)
	if err != nil {
		t.Fatalf("ca.crl: %v", err)
	}
	if n := len(crl.RevokedCertificateEntries); n != 0 {
		t.Errorf("ca.crl lists %d certificates, want none", n)
	}

	raw, err := os.ReadFile(filepath.Join(dir, "gossip.key"))
	if err != nil {
		t.Fatal(err)
	}
	gossip, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(gossip) != 32 {
		t.Errorf("gossip.key decodes to %d bytes (err %v), want 32", len(gossip), err)
	}
}

func TestCertsInit_RefusesOverwrite(t *testing.T) {
	dir := initCerts(t)
	before, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}

	code, _, stderr := runCertsQuiet(t, "init", dir, "--nodes", "n3")
	if code != 1 || !strings.Contains(stderr, "--force") {
		t.Errorf("second init: exit %d, stderr %q; want 1 and a hint to use --force", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "nodes", "n3.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused init wrote nodes/n3.pem (stat error %v)", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if !bytes.Equal(before, after) {
		t.Error("refused init changed ca.pem")
	}

	code, _, stderr = runCertsQuiet(t, "init", "--force", dir)
	if code != 0 {
		t.Fatalf("init --force: exit %d: %s", code, stderr)
	}
	after, _ = os.ReadFile(filepath.Join(dir, "ca.pem"))
	if bytes.Equal(before, after) {
		t.Error("init --force kept the old ca.pem")
	}
	info, err := os.Stat(filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("ca-key.pem after --force has mode %v, want 0600", info.Mode().Perm())
	}
}

func TestCertsInit_InvalidArguments(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no-dir", args: []string{"init"}, want: "directory"},
		{name: "two-dirs", args: []string{"init", dir, dir}, want: "directory"},
		{name: "bad-node", args: []string{"init", dir, "--nodes", "../x"}, want: "--nodes"},
		{name: "duplicate-client", args: []string{"init", dir, "--clients", "a,A"}, want: "twice"},
		{name: "bad-host", args: []string{"init", dir, "--hosts", "a b"}, want: "--hosts"},
		{name: "zero-days", args: []string{"init", dir, "--days", "0"}, want: "--days"},
		{name: "unknown-command", args: []string{"sign"}, want: "unknown command"},
		{name: "revoke-without-dir", args: []string{"revoke", "x.pem"}, want: "--ca-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCertsQuiet(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("invalid arguments wrote %d entries into the directory", len(entries))
	}
}

func TestCertsRevoke_AddsToCRL(t *testing.T) {
	dir := initCerts(t)
	c1 := filepath.Join(dir, "clients", "c1.pem")

	code, stdout, stderr := runCertsQuiet(t, "revoke", "--ca-dir", dir, c1)
	if code != 0 {
		t.Fatalf("revoke: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "revoked") {
		t.Errorf("revoke output = %q, want it to report the revocation", stdout)
	}
	crl, err := loadCRL(filepath.Join(dir, "ca.crl"), readCert(t, filepath.Join(dir, "ca.pem")))
	if err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(readCert(t, c1).SerialNumber) != 0 {
		t.Errorf("ca.crl entries = %v, want the serial of c1", crl.RevokedCertificateEntries)
	}
	if crl.Number.Int64() != 2 {
		t.Errorf("CRL number = %v, want 2", crl.Number)
	}

	// Revoking again changes nothing.
	code, stdout, _ = runCertsQuiet(t, "revoke", c1, "--ca-dir", dir)
	if code != 0 || !strings.Contains(stdout, "already revoked") {
		t.Errorf("second revoke: exit %d, output %q", code, stdout)
	}
	crl, _ = loadCRL(filepath.Join(dir, "ca.crl"), readCert(t, filepath.Join(dir, "ca.pem")))
	if len(crl.RevokedCertificateEntries) != 1 || crl.Number.Int64() != 2 {
		t.Errorf("second revoke changed the CRL: %d entries, number %v", len(crl.RevokedCertificateEntries), crl.Number)
	}
}

func TestCertsRevoke_RejectsForeignCert(t *testing.T) {
	dir := initCerts(t)
	code, _, stderr := runCertsQuiet(t, "revoke", "--ca-dir", dir, filepath.Join(dir, "nodes", "n1.pem"))
	if code != 1 || !strings.Contains(stderr, "not issued by the client CA") {
		t.Errorf("exit %d, stderr %q; want 1 and a foreign issuer error", code, stderr)
	}
}

// TestCertsRevoke_ServerRejectsRevokedClient runs the generated files
// through tlsutil: a client certificate works until `certs revoke` lists it
// and the server reloads its CRL.
func TestCertsRevoke_ServerRejectsRevokedClient(t *testing.T) {
	dir := initCerts(t)
	cfg, reloader, err := tlsutil.ServerConfig(tlsutil.ServerOptions{
		CertFile:       filepath.Join(dir, "server.pem"),
		KeyFile:        filepath.Join(dir, "server-key.pem"),
		ClientAuth:     tlsutil.ClientAuthRequired,
		ClientCAFile:   filepath.Join(dir, "ca.pem"),
		CRLFiles:       []string{filepath.Join(dir, "ca.crl")},
		ReloadInterval: -1,
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	t.Cleanup(func() { reloader.Close() })
	addr := serveOnce(t, cfg)

	client, err := tls.LoadX509KeyPair(filepath.Join(dir, "clients", "c2.pem"), filepath.Join(dir, "clients", "c2-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	clientCfg := &tls.Config{RootCAs: pool(t, filepath.Join(dir, "ca.pem")), ServerName: "localhost", Certificates: []tls.Certificate{client}}
	if err := handshake(addr, clientCfg); err != nil {
		t.Fatalf("before revoke: %v", err)
	}

	if code, _, stderr := runCertsQuiet(t, "revoke", "--ca-dir", dir, filepath.Join(dir, "clients", "c2.pem")); code != 0 {
		t.Fatalf("revoke: exit %d: %s", code, stderr)
	}
	if err := reloader.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if err := handshake(addr, clientCfg); err == nil {
		t.Error("after revoke: handshake succeeded, want rejection")
	}
}

// serveOnce serves cfg on 127.0.0.1 until the test ends, writing "ok" after
// each successful handshake.
func serveOnce(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			if conn.(*tls.Conn).Handshake() == nil {
				conn.Write([]byte("ok"))
			}
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// handshake dials addr and reads "ok"; in TLS 1.3 a rejected client
// certificate shows up in the read.
func handshake(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2)
	_, err = conn.Read(buf)
	return err
}
