package breakers

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestWSS_ClientCertificates connects paho.mqtt.golang over wss to a
// listener that requires client certificates: a valid certificate connects
// and round-trips a message, a revoked one and none at all are rejected.
func TestWSS_ClientCertificates(t *testing.T) {
	certs := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(starlingBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("starling %v: %v\n%s", args, err, out)
		}
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	run("certs", "init", certs, "--hosts", "127.0.0.1,localhost", "--clients", "alice,bob")
	run("certs", "revoke", "--ca-dir", certs, filepath.Join(certs, "clients", "bob.pem"))

	b := newBroker(t)
	b.fileListeners = true
	wssAddr := freeAddr(t)
	cfg := writeFile(t, t.TempDir(), "starling.yaml", `listeners:
  - url: tcp://`+b.addr+`
  - url: wss://`+wssAddr+`/mqtt
    tls:
      cert_file: `+certs+`/server.pem
      key_file: `+certs+`/server-key.pem
      client_auth: required
      client_ca_file: `+certs+`/ca.pem
      crl_files: [`+certs+`/ca.crl]
`)
	b.args = []string{"--config", cfg}
	b.start()

	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(certs, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(caPEM)
	tlsFor := func(name string) *tls.Config {
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if name != "" {
			pair, err := tls.LoadX509KeyPair(filepath.Join(certs, "clients", name+".pem"), filepath.Join(certs, "clients", name+"-key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		return cfg
	}
	dial := func(clientID string, tc *tls.Config) (mqtt.Client, error) {
		opts := mqtt.NewClientOptions().
			AddBroker("wss://" + wssAddr + "/mqtt").
			SetClientID(clientID).
			SetTLSConfig(tc).
			SetConnectTimeout(5 * time.Second).
			SetAutoReconnect(false).
			SetConnectRetry(false)
		c := mqtt.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return c, os.ErrDeadlineExceeded
		}
		return c, tok.Error()
	}

	alice, err := dial("alice-1", tlsFor("alice"))
	if err != nil {
		t.Fatalf("alice with a valid certificate: connect failed: %v", err)
	}
	defer alice.Disconnect(100)
	got := make(chan string, 1)
	if tok := alice.Subscribe("wss/test", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe over wss failed: %v", tok.Error())
	}
	if tok := alice.Publish("wss/test", 1, false, "hello"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish over wss failed: %v", tok.Error())
	}
	select {
	case m := <-got:
		if m != "hello" {
			t.Errorf("payload %q, expected hello", m)
		}
	case <-time.After(5 * time.Second):
		t.Error("no message over wss within 5s")
	}

	if c, err := dial("bob-1", tlsFor("bob")); err == nil {
		c.Disconnect(100)
		t.Error("bob's revoked certificate was accepted on the wss listener")
	}
	if c, err := dial("anon-1", tlsFor("")); err == nil {
		c.Disconnect(100)
		t.Error("a client without a certificate was accepted on a client_auth: required wss listener")
	}
}
