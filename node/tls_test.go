package node

import (
	"bufio"
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

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/starling-mqtt/starling/node/packet"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and client
// certificates, written as PEM files in a temporary directory.
type testPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPool *x509.CertPool
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: t.TempDir(), ca: ca, caKey: key, caPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	p.write(t, "ca.pem", "CERTIFICATE", der)
	return p
}

func (p *testPKI) write(t testing.TB, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue returns the certificate and key files of a new leaf certificate.
func (p *testPKI) issue(t testing.TB, cn string, server bool) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile = p.write(t, cn+".pem", "CERTIFICATE", der)
	keyFile = p.write(t, cn+"-key.pem", "PRIVATE KEY", keyDER)
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pair
}

// tlsServer starts a node with a tls:// and a wss:// listener that require
// client certificates; the certificate's CN becomes the user name.
func tlsServer(t *testing.T) (*Server, *testPKI) {
	t.Helper()
	pki := newTestPKI(t)
	cert, key, _ := pki.issue(t, "server", true)
	tlsCfg := &TLSConfig{CertFile: cert, KeyFile: key, ClientAuth: "required", ClientCAFile: filepath.Join(pki.dir, "ca.pem")}
	srv := testServer(t, "", func(c *Config) {
		c.Listeners = []ListenerConfig{
			{URL: "tls://127.0.0.1:0", TLS: tlsCfg, CertRequireClientID: true},
			{URL: "wss://127.0.0.1:0/mqtt", TLS: tlsCfg, CertRequireClientID: true},
		}
	})
	return srv, pki
}

func TestTLS_ClientCertificateIdentity(t *testing.T) {
	srv, pki := tlsServer(t)
	_, _, pair := pki.issue(t, "dev-9", false)
	cfg := &tls.Config{RootCAs: pki.caPool, Certificates: []tls.Certificate{pair}, ServerName: "127.0.0.1"}

	for _, tc := range []struct {
		clientID string
		want     packet.ReasonCode
	}{
		{"dev-9", packet.ReasonSuccess},
		// The client id must equal the certificate's name.
		{"dev-10", packet.ReasonNotAuthorized},
	} {
		nc, err := tls.Dial("tcp", srv.Addrs()[0].String(), cfg)
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		c := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc), version: packet.Version5}
		if ack := c.connect(&packet.Connect{ClientID: tc.clientID, CleanStart: true}); ack.ReasonCode != tc.want {
			t.Errorf("client id %s: CONNACK 0x%02X, want 0x%02X", tc.clientID, byte(ack.ReasonCode), byte(tc.want))
		}
		nc.Close()
	}

	// Without a client certificate the handshake fails.
	nc, err := tls.Dial("tcp", srv.Addrs()[0].String(), &tls.Config{RootCAs: pki.caPool, ServerName: "127.0.0.1"})
	if err == nil {
		nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = nc.Read(make([]byte, 1))
		nc.Close()
	}
	if err == nil {
		t.Fatal("connection without a client certificate was accepted")
	}
}

func TestWSS_PahoRoundTrip(t *testing.T) {
	srv, pki := tlsServer(t)
	_, _, pair := pki.issue(t, "ws-client", false)
	opts := mqtt.NewClientOptions().
		AddBroker("wss://" + srv.Addrs()[1].String() + "/mqtt").
		SetClientID("ws-client").
		SetTLSConfig(&tls.Config{RootCAs: pki.caPool, Certificates: []tls.Certificate{pair}, ServerName: "127.0.0.1"}).
		SetConnectTimeout(5 * time.Second)
	client := mqtt.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect over wss: %v", tok.Error())
	}
	defer client.Disconnect(100)
	got := make(chan string, 1)
	if tok := client.Subscribe("ws/t", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if tok := client.Publish("ws/t", 1, false, "over websocket"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case m := <-got:
		if m != "over websocket" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message over wss")
	}
}
