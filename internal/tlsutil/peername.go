package tlsutil

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// ErrPeerName is wrapped by VerifyPeerName's error when the certificate does
// not name the expected node.
var ErrPeerName = errors.New("tlsutil: certificate does not name the expected node")

// uriScheme is the scheme of the URI SAN form of a node name,
// starling://NAME.
const uriScheme = "starling"

// VerifyPeerName checks that cert names the node called name. On the peer
// port a node may only claim the name its certificate carries. The name
// matches a DNS SAN equal to it (case ignored), a URI SAN equal to it, or a URI SAN starling://NAME. Wildcard
// DNS SANs never match, since a wildcard would let one certificate claim
// every node. The subject common name is ignored, as crypto/x509 does for
// host names.
func VerifyPeerName(cert *x509.Certificate, name string) error {
	if cert == nil {
		return fmt.Errorf("%w: no certificate", ErrPeerName)
	}
	if name == "" || strings.Contains(name, "*") {
		return fmt.Errorf("%w: node name %q is invalid", ErrPeerName, name)
	}
	for _, dns := range cert.DNSNames {
		if strings.EqualFold(dns, name) {
			return nil
		}
	}
	for _, u := range cert.URIs {
		if u.String() == name {
			return nil
		}
		if u.Scheme == uriScheme && strings.EqualFold(u.Host, name) && (u.Path == "" || u.Path == "/") && u.User == nil {
			return nil
		}
	}
	uris := make([]string, len(cert.URIs))
	for i, u := range cert.URIs {
		uris[i] = u.String()
	}
	return fmt.Errorf("%w: node %q is not among DNS SANs %q or URI SANs %q: issue the node a certificate with its name (starling certs init --nodes)",
		ErrPeerName, name, cert.DNSNames, uris)
}
