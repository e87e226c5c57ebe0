package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestReloader_CRLUpdateRejectsNextHandshake(t *testing.T) {
	p := newPKI(t)
	addr, results, r := startServer(t, p.options(ClientAuthRequired))

	// The session cache lets the second dial resume, so the test also
	// covers revocation on a resumed session.
	cfg := p.clientConfig(t, &p.client)
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for i := range 2 {
		cs, err := dialTLS(t, addr, cfg)
		if err != nil {
			t.Fatalf("before revocation: client: %v", err)
		}
		if err := result(t, results); err != nil {
			t.Fatalf("before revocation: server: %v", err)
		}
		if i == 1 && !cs.DidResume {
			t.Fatal("second handshake did not resume; the test needs resumption")
		}
	}

	writeFile(t, p.dir, "ca.crl", p.ca.crl(t, p.client.cert))
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := dialTLS(t, addr, cfg); err == nil {
		t.Error("after revocation: client: handshake succeeded, want rejection")
	}
	if err := result(t, results); !errors.Is(err, ErrRevoked) {
		t.Errorf("after revocation: server error = %v, want ErrRevoked", err)
	}
	if got := r.Stats().Reloads; got != 1 {
		t.Errorf("Stats().Reloads = %d, want 1", got)
	}
}

func TestReloader_CertReplacedOnReload(t *testing.T) {
	p := newPKI(t)
	addr, results, r := startServer(t, p.options(ClientAuthNone))

	next := p.ca.issue(t, leafSpec{cn: "server-2", dns: []string{"localhost"}})
	writeLeaf(t, p.dir, "server", next)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	cs, err := dialTLS(t, addr, p.clientConfig(t, nil))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if err := result(t, results); err != nil {
		t.Fatalf("server: %v", err)
	}
	assertSerial(t, cs, next.cert.SerialNumber)
	if got := r.Stats().CertNotAfter; !got.Equal(next.cert.NotAfter) {
		t.Errorf("Stats().CertNotAfter = %v, want %v", got, next.cert.NotAfter)
	}
}

func TestReloader_PollsForChanges(t *testing.T) {
	p := newPKI(t)
	opts := p.options(ClientAuthNone)
	opts.ReloadInterval = 20 * time.Millisecond
	addr, results, _ := startServer(t, opts)

	next := p.ca.issue(t, leafSpec{cn: "server-2", dns: []string{"localhost"}})
	// Key first, then certificate: a poll between the two reads a mismatched
	// pair, fails, and must recover on a later poll.
	writeFile(t, p.dir, "server-key.pem", next.keyPEM)
	writeFile(t, p.dir, "server.pem", next.certPEM)

	deadline := time.Now().Add(5 * time.Second)
	for {
		cs, err := dialTLS(t, addr, p.clientConfig(t, nil))
		if serverErr := result(t, results); err != nil || serverErr != nil {
			t.Fatalf("handshake: client %v, server %v", err, serverErr)
		}
		if cs.PeerCertificates[0].SerialNumber.Cmp(next.cert.SerialNumber) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the new certificate was not picked up within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReloader_FailedReloadKeepsCertificate(t *testing.T) {
	p := newPKI(t)
	logs := &logBuffer{}
	opts := p.options(ClientAuthNone)
	opts.Logger = logs.logger()
	addr, results, r := startServer(t, opts)

	other := p.ca.issue(t, leafSpec{cn: "other", dns: []string{"localhost"}})
	writeFile(t, p.dir, "server-key.pem", other.keyPEM)

	err := r.Reload()
	if err == nil || !strings.Contains(err.Error(), "server-key.pem") {
		t.Fatalf("Reload error = %v, want one naming server-key.pem", err)
	}
	if !errors.Is(r.LastError(), err) {
		t.Errorf("LastError = %v, want %v", r.LastError(), err)
	}
	// Polling the same broken files again neither counts nor logs again.
	if err2 := r.Reload(); err2 == nil {
		t.Error("second Reload succeeded on the same broken files")
	}
	if got := r.Stats().Failures; got != 1 {
		t.Errorf("Stats().Failures = %d, want 1", got)
	}
	if got := strings.Count(logs.String(), "level=ERROR"); got != 1 {
		t.Errorf("logged %d errors, want 1:\n%s", got, logs)
	}

	cs, err := dialTLS(t, addr, p.clientConfig(t, nil))
	if serverErr := result(t, results); err != nil || serverErr != nil {
		t.Fatalf("handshake: client %v, server %v", err, serverErr)
	}
	assertSerial(t, cs, p.server.cert.SerialNumber)

	writeFile(t, p.dir, "server.pem", other.certPEM)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload after fixing the files: %v", err)
	}
	if r.LastError() != nil {
		t.Errorf("LastError after a good reload = %v, want nil", r.LastError())
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Error("the log contains private key material")
	}
}

func TestReloader_UnchangedFilesAreNoop(t *testing.T) {
	p := newPKI(t)
	_, _, r := startServer(t, p.options(ClientAuthRequired))
	for range 3 {
		if err := r.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
	}
	if s := r.Stats(); s.Reloads != 0 || s.Failures != 0 {
		t.Errorf("Stats = %+v, want no reloads or failures", s)
	}
}

func TestReloader_CloseIsIdempotent(t *testing.T) {
	p := newPKI(t)
	opts := p.options(ClientAuthNone)
	opts.ReloadInterval = time.Millisecond
	_, r, err := ServerConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	r.Close()
}

func TestReloader_CAReplaced(t *testing.T) {
	p := newPKI(t)
	addr, results, r := startServer(t, p.options(ClientAuthRequired))

	// A client CA rotation: the new bundle trusts only the new CA, and the
	// CRL is replaced by one of the new CA.
	next := newTestCA(t, "next client CA")
	writeFile(t, p.dir, "ca.pem", next.pem)
	writeFile(t, p.dir, "ca.crl", next.crl(t))
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}

	if _, err := dialTLS(t, addr, p.clientConfig(t, &p.client)); err == nil {
		t.Error("old CA's client: handshake succeeded, want rejection")
	}
	if err := result(t, results); err == nil {
		t.Error("old CA's client: server accepted it")
	}
	fresh := next.issue(t, leafSpec{cn: "c2", usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if _, err := dialTLS(t, addr, p.clientConfig(t, &fresh)); err != nil {
		t.Errorf("new CA's client: %v", err)
	}
	if err := result(t, results); err != nil {
		t.Errorf("new CA's client: server: %v", err)
	}
}

func assertSerial(t *testing.T, cs tls.ConnectionState, want *big.Int) {
	t.Helper()
	if len(cs.PeerCertificates) == 0 {
		t.Fatal("no peer certificate")
	}
	if got := cs.PeerCertificates[0].SerialNumber; got.Cmp(want) != 0 {
		t.Errorf("presented serial %x, want %x", got, want)
	}
}
