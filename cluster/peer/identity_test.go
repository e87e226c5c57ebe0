package peer

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"testing"
	"time"
)

func TestCertNodeName(t *testing.T) {
	uri := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name string
		cert *x509.Certificate
		want string // "" means errNoNodeName
	}{
		{name: "cn-and-dns", cert: &x509.Certificate{Subject: pkix.Name{CommonName: "n1"}, DNSNames: []string{"n1", "peer.example"}}, want: "n1"},
		{name: "only-dns", cert: &x509.Certificate{DNSNames: []string{"n1"}}, want: "n1"},
		{name: "uri-starling", cert: &x509.Certificate{Subject: pkix.Name{CommonName: "n1"}, DNSNames: []string{"n1"}, URIs: []*url.URL{uri("starling://n2")}}, want: "n2"},
		{name: "cn-not-in-sans", cert: &x509.Certificate{Subject: pkix.Name{CommonName: "n1"}, DNSNames: []string{"a", "b"}}},
		{name: "cn-only", cert: &x509.Certificate{Subject: pkix.Name{CommonName: "n1"}}},
		{name: "two-dns-no-cn", cert: &x509.Certificate{DNSNames: []string{"n1", "n2"}}},
		{name: "wildcard-dns", cert: &x509.Certificate{DNSNames: []string{"*.nodes.example"}}},
		{name: "two-starling-uris", cert: &x509.Certificate{URIs: []*url.URL{uri("starling://n1"), uri("starling://n2")}}},
		{name: "nil", cert: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := certNodeName(tt.cert)
			if tt.want == "" {
				if !errors.Is(err, errNoNodeName) {
					t.Errorf("certNodeName = %q, %v, want errNoNodeName", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("certNodeName = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestPort_ClientCertNamesNoNode(t *testing.T) {
	ca := newTestCA(t, "peer CA")
	a := startNode(t, Config{NodeName: "n1", TLS: ca.nodeFiles(t, "n1")})

	// The client's certificate is from the right CA but carries its name
	// only in the common name, which tlsutil.VerifyPeerName ignores.
	// Listen rejects such a certificate, so b starts with a valid one and
	// reloads the common-name-only one.
	files := ca.issueFiles(t, "cn-only", &x509.Certificate{Subject: pkix.Name{CommonName: "n2"}})
	b := startNode(t, Config{NodeName: "n2", TLS: ca.nodeFiles(t, "n2")})
	copyFile(t, files.CertFile, b.port.cfg.TLS.CertFile)
	copyFile(t, files.KeyFile, b.port.cfg.TLS.KeyFile)
	if err := b.port.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}

	if _, err := callStatus(t, b.port, a.port.Addr(), "n1"); err == nil {
		t.Error("Status with a certificate that names no node succeeded")
	}
	waitFor(t, 5*time.Second, "a rejected connection", func() bool { return a.port.Stats().Rejected >= 1 })
	if !logContains(a.logs.String(), "peer connection rejected", "names no node") {
		t.Errorf("no rejection line about the node name in:\n%s", a.logs)
	}
}

func TestPort_ReloadTLS(t *testing.T) {
	ca := newTestCA(t, "peer CA")
	other := newTestCA(t, "other CA")
	files := ca.nodeFiles(t, "n1")
	a := startNode(t, Config{NodeName: "n1", TLS: files, ReloadInterval: -1})
	b := startNode(t, Config{NodeName: "n2", TLS: ca.nodeFiles(t, "n2")})

	if _, err := callStatus(t, b.port, a.port.Addr(), "n1"); err != nil {
		t.Fatalf("Status before reload: %v", err)
	}

	// a now presents a certificate of a CA that b does not trust.
	foreign := other.nodeFiles(t, "n1")
	copyFile(t, foreign.CertFile, files.CertFile)
	copyFile(t, foreign.KeyFile, files.KeyFile)
	if err := a.port.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	if _, err := callStatus(t, b.port, a.port.Addr(), "n1"); err == nil {
		t.Error("Status to a certificate of an untrusted CA succeeded after reload")
	}
	if err := raftPing(b.port, a.port.Addr()); err == nil {
		t.Error("raft ping to a certificate of an untrusted CA succeeded after reload")
	}
}
