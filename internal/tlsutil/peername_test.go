package tlsutil

import (
	"crypto/x509"
	"errors"
	"net/url"
	"testing"
)

func TestVerifyPeerName(t *testing.T) {
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	cert := &x509.Certificate{
		DNSNames: []string{"n1", "*.nodes.example", "localhost"},
		URIs:     []*url.URL{mustURL("starling://n2"), mustURL("spiffe://example.org/starling/n3")},
	}
	tests := []struct {
		name   string
		node   string
		wantOK bool
	}{
		{name: "dns-san", node: "n1", wantOK: true},
		{name: "dns-san-case", node: "N1", wantOK: true},
		{name: "uri-starling", node: "n2", wantOK: true},
		{name: "uri-exact", node: "spiffe://example.org/starling/n3", wantOK: true},
		{name: "uri-last-segment-only", node: "n3"},
		{name: "wildcard-not-expanded", node: "n4.nodes.example"},
		{name: "wildcard-literal", node: "*.nodes.example"},
		{name: "other-node", node: "n9"},
		{name: "empty", node: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyPeerName(cert, tt.node)
			if tt.wantOK && err != nil {
				t.Errorf("VerifyPeerName(%q) = %v, want nil", tt.node, err)
			}
			if !tt.wantOK && !errors.Is(err, ErrPeerName) {
				t.Errorf("VerifyPeerName(%q) = %v, want ErrPeerName", tt.node, err)
			}
		})
	}
}

func TestVerifyPeerName_CommonNameIgnored(t *testing.T) {
	cert := &x509.Certificate{}
	cert.Subject.CommonName = "n1"
	if err := VerifyPeerName(cert, "n1"); !errors.Is(err, ErrPeerName) {
		t.Errorf("VerifyPeerName = %v, want ErrPeerName for a name only in the CN", err)
	}
	if err := VerifyPeerName(nil, "n1"); !errors.Is(err, ErrPeerName) {
		t.Errorf("VerifyPeerName(nil) = %v, want ErrPeerName", err)
	}
}
