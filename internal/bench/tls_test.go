package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node"
)

// testPKI is a CA and a server certificate for 127.0.0.1 and "broker.test",
// written as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
}

// newTestPKI writes a fresh CA and a server certificate it signed into a
// temporary directory.
func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bench test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "broker.test"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"broker.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}

	p := testPKI{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server-key.pem"),
	}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	writePEM(t, p.certFile, "CERTIFICATE", der)
	writePEM(t, p.keyFile, "EC PRIVATE KEY", keyDER)
	return p
}

func writePEM(t *testing.T, path, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startTLSNode starts an in-process node with one TLS listener serving the
// certificate of p and returns its address.
func startTLSNode(t *testing.T, p testPKI) string {
	t.Helper()
	return startNodeWith(t, node.ListenerConfig{
		URL: "tls://127.0.0.1:0",
		TLS: &node.TLSConfig{CertFile: p.certFile, KeyFile: p.keyFile},
	})
}

func tlsConfigFor(addr string, p testPKI) Config {
	cfg := smallConfig(addr)
	cfg.TLS = true
	cfg.CAFile = p.caFile
	return cfg
}

func TestRun_PairsOverTLS(t *testing.T) {
	p := newTestPKI(t)
	cfg := tlsConfigFor(startTLSNode(t, p), p)
	cfg.QoS = 1
	cfg.Rate = 2000

	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkComplete(t, res)
	if res.TLS == nil {
		t.Fatal("no TLS details in the result")
	}
	if !res.TLS.Verified || res.TLS.ServerName != "127.0.0.1" {
		t.Errorf("TLS %+v: expected a certificate verified for 127.0.0.1", res.TLS)
	}
	if !strings.HasPrefix(res.TLS.Version, "TLS 1.") || res.TLS.CipherSuite == "" {
		t.Errorf("TLS %+v: expected a version and a cipher suite", res.TLS)
	}
}

func TestRun_IdleAndStormOverTLS(t *testing.T) {
	p := newTestPKI(t)
	addr := startTLSNode(t, p)
	for _, scenario := range []Scenario{ScenarioStorm, ScenarioIdle} {
		t.Run(string(scenario), func(t *testing.T) {
			cfg := connConfig(addr, scenario)
			cfg.Clients = 50
			cfg.TLS = true
			cfg.CAFile = p.caFile
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Errors) > 0 {
				t.Errorf("errors: %v", res.Errors)
			}
			s := res.Connections
			if s.Opened != 50 || s.Failed != 0 {
				t.Errorf("opened %d and failed %d, expected 50 and 0", s.Opened, s.Failed)
			}
			if scenario == ScenarioIdle && s.AliveAfterHold != 50 {
				t.Errorf("%d alive after the hold, expected 50", s.AliveAfterHold)
			}
			if res.TLS == nil || !res.TLS.Verified {
				t.Errorf("TLS details %+v, expected a verified session", res.TLS)
			}
		})
	}
}

func TestRun_TLSVerification(t *testing.T) {
	p := newTestPKI(t)
	other := newTestPKI(t) // a CA that did not sign the broker's certificate
	addr := startTLSNode(t, p)

	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string // "" for success
	}{
		{"server-name-in-certificate", func(c *Config) { c.ServerName = "broker.test" }, ""},
		{"server-name-not-in-certificate", func(c *Config) { c.ServerName = "other.test" }, "certificate is valid for"},
		{"unknown-ca", func(c *Config) { c.CAFile = other.caFile }, "certificate signed by unknown authority"},
		{"insecure-accepts-unknown-ca", func(c *Config) { c.CAFile, c.InsecureSkipVerify = "", true }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tlsConfigFor(addr, p)
			cfg.Clients = 1
			cfg.Duration = 200 * time.Millisecond
			cfg.ClientPrefix = "tls-" + tt.name
			tt.change(&cfg)
			res, err := Run(context.Background(), cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, expected one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "TLS handshake") {
					t.Errorf("error %q does not say the TLS handshake failed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkComplete(t, res)
			if res.TLS.Verified == cfg.InsecureSkipVerify {
				t.Errorf("verified %v with InsecureSkipVerify %v", res.TLS.Verified, cfg.InsecureSkipVerify)
			}
		})
	}
}

func TestRun_TLSAgainstPlainListener(t *testing.T) {
	p := newTestPKI(t)
	cfg := tlsConfigFor(startNode(t), p)
	cfg.Clients = 1
	cfg.ConnectTimeout = 2 * time.Second
	start := time.Now()
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Errorf("error %v, expected a failed TLS handshake", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a failed handshake took %v", took)
	}
}

func TestRun_TLSUnreadableCAFile(t *testing.T) {
	cfg := smallConfig("127.0.0.1:1")
	cfg.TLS = true
	cfg.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Errorf("error %v, expected one naming the CA file", err)
	}

	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.CAFile = notPEM
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("error %v, expected one saying the file holds no certificate", err)
	}
}
