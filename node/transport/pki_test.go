package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/internal/tlsutil"
)

// authority is a certificate authority made for one test.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// issued is a certificate with its key.
type issued struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newAuthority(t *testing.T, name string) *authority {
	t.Helper()
	key := newTestKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          newTestSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA %s: %v", name, err)
	}
	return &authority{cert: cert, key: key}
}

// issue signs a certificate for cn, valid in [notBefore, notAfter], for
// server and client authentication, with 127.0.0.1 and localhost as names.
func (a *authority) issue(t *testing.T, cn string, notBefore, notAfter time.Time) issued {
	t.Helper()
	key := newTestKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: newTestSerial(t),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatalf("issue %s: %v", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse %s: %v", cn, err)
	}
	return issued{cert: cert, key: key}
}

// valid issues a certificate valid from an hour ago for a day.
func (a *authority) valid(t *testing.T, cn string) issued {
	t.Helper()
	return a.issue(t, cn, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

// crl returns a PEM revocation list of a that lists revoked.
func (a *authority) crl(t *testing.T, revoked ...*x509.Certificate) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(24 * time.Hour),
	}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber:   c.SerialNumber,
			RevocationTime: time.Now().Add(-time.Minute),
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, a.cert, a.key)
	if err != nil {
		t.Fatalf("create CRL: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func (c issued) tlsCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.cert.Raw}, PrivateKey: c.key, Leaf: c.cert}
}

func newTestKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return key
}

func newTestSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("serial: %v", err)
	}
	return n
}

// testPKI is a CA, a server certificate, a good client certificate and a
// revoked one, written to files for tlsutil.
type testPKI struct {
	ca      *authority
	server  issued
	client  issued
	revoked issued
	dir     string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca := newAuthority(t, "test CA")
	p := &testPKI{
		ca:      ca,
		server:  ca.valid(t, "server"),
		client:  ca.valid(t, "good client"),
		revoked: ca.valid(t, "revoked client"),
		dir:     t.TempDir(),
	}
	p.write(t, "server.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.server.cert.Raw}))
	keyDER, err := x509.MarshalPKCS8PrivateKey(p.server.key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	p.write(t, "server-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	p.write(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))
	p.write(t, "ca.crl", ca.crl(t, p.revoked.cert))
	return p
}

func (p *testPKI) write(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, name), data, 0o600); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
}

// serverOptions requires client certificates from the CA and revokes
// p.revoked. Polling is off so that no reloader goroutine outlives a test
// that does not close its listener.
func (p *testPKI) serverOptions(auth tlsutil.ClientAuth) *tlsutil.ServerOptions {
	opts := &tlsutil.ServerOptions{
		CertFile:       filepath.Join(p.dir, "server.pem"),
		KeyFile:        filepath.Join(p.dir, "server-key.pem"),
		ClientAuth:     auth,
		ReloadInterval: -1,
	}
	if auth != tlsutil.ClientAuthNone {
		opts.ClientCAFile = filepath.Join(p.dir, "ca.pem")
		opts.CRLFiles = []string{filepath.Join(p.dir, "ca.crl")}
	}
	return opts
}

// clientConfig trusts the CA and presents cert, if not nil.
func (p *testPKI) clientConfig(cert *issued) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.cert)
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.tlsCertificate()}
	}
	return cfg
}
