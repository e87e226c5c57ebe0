package tlsutil

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// ErrRevoked is wrapped by the error that rejects a revoked certificate.
var ErrRevoked = errors.New("tlsutil: certificate is revoked")

// revocations maps an issuing CA (its DER bytes) to the serial numbers, in
// hexadecimal, that its CRLs revoke.
type revocations map[string]map[string]struct{}

// add parses the CRLs in one file, PEM ("X509 CRL" blocks) or DER, checks
// each one's signature against the CA with the matching subject, and records
// its serials under that CA. stale reports a CRL whose next update has passed.
func (r revocations) add(path string, data []byte, cas []*x509.Certificate, now time.Time) (stale bool, err error) {
	ders, err := crlBlocks(path, data)
	if err != nil {
		return false, err
	}
	for i, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return false, fmt.Errorf("tlsutil: parse CRL %d in %s: %w", i+1, path, err)
		}
		if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
			stale = true
		}
		if !r.addSigned(crl, cas) {
			return false, fmt.Errorf("tlsutil: CRL %d in %s is not signed by any CA in the CA file: add its issuer to the CA file or remove the CRL", i+1, path)
		}
	}
	return stale, nil
}

// addSigned records crl under every CA that signed it, and reports whether
// one did. A CA can appear twice when it was reissued with the same key.
func (r revocations) addSigned(crl *x509.RevocationList, cas []*x509.Certificate) bool {
	signed := false
	for _, ca := range cas {
		if !bytes.Equal(ca.RawSubject, crl.RawIssuer) || crl.CheckSignatureFrom(ca) != nil {
			continue
		}
		signed = true
		serials := r[string(ca.Raw)]
		if serials == nil {
			serials = make(map[string]struct{})
			r[string(ca.Raw)] = serials
		}
		for _, entry := range crl.RevokedCertificateEntries {
			serials[entry.SerialNumber.Text(16)] = struct{}{}
		}
	}
	return signed
}

// crlBlocks returns the DER CRLs of a file: every "X509 CRL" block when the
// file is PEM, else the file itself.
func crlBlocks(path string, data []byte) ([][]byte, error) {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		return [][]byte{data}, nil
	}
	var ders [][]byte
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "X509 CRL" {
			ders = append(ders, block.Bytes)
		}
	}
	if len(ders) == 0 {
		return nil, fmt.Errorf("tlsutil: CRL file %s is PEM but contains no X509 CRL block: give PEM X509 CRL blocks or a DER CRL", path)
	}
	return ders, nil
}

// check accepts the connection when at least one verified chain has no
// revoked certificate. Each certificate is looked up under the CA that
// issued it in that chain.
func (r revocations) check(chains [][]*x509.Certificate) error {
	if len(r) == 0 {
		return nil
	}
	var first error
	for _, chain := range chains {
		err := r.checkChain(chain)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

func (r revocations) checkChain(chain []*x509.Certificate) error {
	for i := 0; i+1 < len(chain); i++ {
		serials := r[string(chain[i+1].Raw)]
		if _, ok := serials[chain[i].SerialNumber.Text(16)]; ok {
			return fmt.Errorf("%w: serial %s, subject %q, issuer %q", ErrRevoked,
				chain[i].SerialNumber.Text(16), chain[i].Subject.String(), chain[i+1].Subject.String())
		}
	}
	return nil
}
