package tlsutil

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCA is a CA generated for one test.
type testCA struct {
	cert      *x509.Certificate
	key       *ecdsa.PrivateKey
	pem       []byte
	crlNumber int64
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
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
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pemBlock("CERTIFICATE", der)}
}

// leafSpec describes a certificate to issue. Zero times mean valid from an
// hour ago for a day; nil usages mean both server and client auth.
type leafSpec struct {
	cn        string
	dns       []string
	ips       []net.IP
	uris      []string
	notBefore time.Time
	notAfter  time.Time
	usages    []x509.ExtKeyUsage
}

// testLeaf is an issued certificate with its PEM files' contents.
type testLeaf struct {
	cert    *x509.Certificate
	certPEM []byte
	keyPEM  []byte
}

func (ca *testCA) issue(t *testing.T, spec leafSpec) testLeaf {
	t.Helper()
	if spec.notBefore.IsZero() {
		spec.notBefore = time.Now().Add(-time.Hour)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = time.Now().Add(24 * time.Hour)
	}
	if spec.usages == nil {
		spec.usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(t),
		Subject:      pkix.Name{CommonName: spec.cn},
		DNSNames:     spec.dns,
		IPAddresses:  spec.ips,
		NotBefore:    spec.notBefore,
		NotAfter:     spec.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  spec.usages,
	}
	for _, raw := range spec.uris {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}

	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("issue %s: %v", spec.cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}

	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testLeaf{cert: cert, certPEM: pemBlock("CERTIFICATE", der), keyPEM: pemBlock("PRIVATE KEY", keyDER)}
}

// crl returns a PEM CRL of ca, valid for a day, that revokes the given
// certificates.
func (ca *testCA) crl(t *testing.T, revoked ...*x509.Certificate) []byte {
	t.Helper()
	return ca.crlUntil(t, time.Now().Add(24*time.Hour), revoked...)
}

// crlUntil is crl with the given next update time.
func (ca *testCA) crlUntil(t *testing.T, nextUpdate time.Time, revoked ...*x509.Certificate) []byte {
	t.Helper()
	ca.crlNumber++
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(ca.crlNumber),
		ThisUpdate: nextUpdate.Add(-25 * time.Hour),
		NextUpdate: nextUpdate,
	}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatalf("create CRL: %v", err)
	}
	return pemBlock("X509 CRL", der)
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func newSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writeFile replaces dir/name atomically, so a polling Reloader never reads
// a half-written file, and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeLeaf writes leaf's certificate and key as NAME.pem and NAME-key.pem.
func writeLeaf(t *testing.T, dir, name string, leaf testLeaf) (certFile, keyFile string) {
	t.Helper()
	return writeFile(t, dir, name+".pem", leaf.certPEM), writeFile(t, dir, name+"-key.pem", leaf.keyPEM)
}

// tlsCert returns leaf as a tls.Certificate for a client Config.
func (l testLeaf) tlsCert(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(l.certPEM, l.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serveTLS accepts connections on 127.0.0.1 with cfg until the test ends.
// Each connection is handshaken, sent "ok" on success and closed; the
// handshake result goes to the returned channel.
func serveTLS(t *testing.T, cfg *tls.Config) (addr string, results <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan error, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			out <- serveOne(conn, cfg)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String(), out
}

func serveOne(conn net.Conn, cfg *tls.Config) error {
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	tc := tls.Server(conn, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	_, err := tc.Write([]byte("ok"))
	return err
}

// dialTLS connects to addr and reads the server's "ok". In TLS 1.3 the
// client finishes its handshake before the server has checked the client
// certificate, so a rejection shows up in the read, not in Handshake.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	tc := conn.(*tls.Conn)
	if err := tc.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return tls.ConnectionState{}, err
	}
	buf := make([]byte, 2)
	if _, err := tc.Read(buf); err != nil {
		return tc.ConnectionState(), err
	}
	if string(buf) != "ok" {
		return tc.ConnectionState(), errors.New("server sent " + string(buf))
	}
	return tc.ConnectionState(), nil
}

// result waits for the server side of one handshake.
func result(t *testing.T, results <-chan error) error {
	t.Helper()
	select {
	case err := <-results:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for the server handshake")
		return nil
	}
}

func pemToDER(t *testing.T, data []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block")
	}
	return block.Bytes
}
