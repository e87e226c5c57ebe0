package peer

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/starling-mqtt/starling/internal/tlsutil"
)

// errNoNodeName is wrapped when a verified peer certificate names no node.
var errNoNodeName = errors.New("peer: certificate names no node")

// uriScheme is the scheme of a URI SAN that carries a node name,
// starling://NAME, as tlsutil.VerifyPeerName accepts it.
const uriScheme = "starling"

// certNodeName returns the node name that a peer certificate claims, tried
// in this order:
//
//  1. the host of its only URI SAN starling://NAME;
//  2. its subject common name, when a DNS SAN repeats it, which is how
//     "starling certs init" issues node certificates;
//  3. its only DNS SAN.
//
// The result always passes tlsutil.VerifyPeerName for cert, so a common
// name alone, a wildcard or an ambiguous set of SANs names no node.
func certNodeName(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", fmt.Errorf("%w: no certificate", errNoNodeName)
	}

	var uriNames []string
	for _, u := range cert.URIs {
		if u.Scheme == uriScheme && u.Host != "" {
			uriNames = append(uriNames, u.Host)
		}
	}
	candidates := []string{}
	switch {
	case len(uriNames) == 1:
		candidates = append(candidates, uriNames[0])
	case len(uriNames) > 1:
		return "", fmt.Errorf("%w: %d URI SANs %q claim node names: issue one per certificate", errNoNodeName, len(uriNames), uriNames)
	}
	if cn := cert.Subject.CommonName; cn != "" {
		candidates = append(candidates, cn)
	}
	if len(cert.DNSNames) == 1 {
		candidates = append(candidates, cert.DNSNames[0])
	}

	for _, name := range candidates {
		if tlsutil.VerifyPeerName(cert, name) == nil {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w: subject %q, DNS SANs %q: put the node name in a DNS SAN and the common name, or in a URI SAN starling://NAME",
		errNoNodeName, cert.Subject.String(), cert.DNSNames)
}
