package tlsutil

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"os"
	"time"
)

// source names the files of one Reloader. caFile and crlFiles may be empty.
type source struct {
	certFile string
	keyFile  string
	caFile   string
	crlFiles []string
}

// paths lists every file in a fixed order, so fingerprints are comparable.
func (s source) paths() []string {
	p := []string{s.certFile, s.keyFile}
	if s.caFile != "" {
		p = append(p, s.caFile)
	}
	return append(p, s.crlFiles...)
}

// snapshot is the content of a source's files as read at one moment.
type snapshot struct {
	data        map[string][]byte
	fingerprint [sha256.Size]byte
}

// read reads every file once. The fingerprint covers each file's path, size,
// modification time and content, so a rewrite that keeps size and mtime is
// still noticed. parse gets exactly the bytes that were hashed.
func (s source) read() (snapshot, error) {
	h := sha256.New()
	snap := snapshot{data: make(map[string][]byte)}
	for _, path := range s.paths() {
		info, err := os.Stat(path)
		if err != nil {
			return snapshot{}, fmt.Errorf("tlsutil: read %s: %w", path, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return snapshot{}, fmt.Errorf("tlsutil: read %s: %w", path, err)
		}
		h.Write([]byte(path))
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(info.Size())))
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(info.ModTime().UnixNano())))
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		h.Write(b)
		snap.data[path] = b
	}
	copy(snap.fingerprint[:], h.Sum(nil))
	return snap, nil
}

// material is one consistent set of parsed files. It is never modified after
// a Reloader publishes it, so handshakes read it without locks.
type material struct {
	cert    *tls.Certificate
	roots   *x509.CertPool // nil when the source has no CA file
	revoked revocations

	// staleCRLs names CRLs whose next update time had passed at load.
	staleCRLs []string

	// server is the per-material Config that GetConfigForClient returns;
	// nil for client configurations.
	server *tls.Config

	fingerprint [sha256.Size]byte
	loadedAt    time.Time
}

// parse builds material from a snapshot. now is the time against which the
// certificate's expiry is checked.
func (s source) parse(snap snapshot, now time.Time) (*material, error) {
	cert, err := tls.X509KeyPair(snap.data[s.certFile], snap.data[s.keyFile])
	if err != nil {
		// X509KeyPair's errors describe the PEM structure, never the key bytes.
		return nil, fmt.Errorf("tlsutil: load key pair %s and %s: %w: check that both are PEM and that the key belongs to the certificate", s.certFile, s.keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tlsutil: parse certificate %s: %w", s.certFile, err)
		}
	}
	if now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("tlsutil: certificate %s expired at %s: renew it", s.certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}

	m := &material{cert: &cert, fingerprint: snap.fingerprint, loadedAt: now}
	if s.caFile == "" {
		return m, nil
	}
	cas, err := parseCABundle(s.caFile, snap.data[s.caFile])
	if err != nil {
		return nil, err
	}
	m.roots = x509.NewCertPool()
	for _, ca := range cas {
		m.roots.AddCert(ca)
	}
	m.revoked = revocations{}
	for _, path := range s.crlFiles {
		stale, err := m.revoked.add(path, snap.data[path], cas, now)
		if err != nil {
			return nil, err
		}
		if stale {
			m.staleCRLs = append(m.staleCRLs, path)
		}
	}
	return m, nil
}

// parseCABundle parses every CERTIFICATE block of a PEM bundle and ignores
// other block types.
func parseCABundle(path string, data []byte) ([]*x509.Certificate, error) {
	var cas []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tlsutil: parse CA certificate %d in %s: %w", len(cas)+1, path, err)
		}
		cas = append(cas, ca)
	}
	if len(cas) == 0 {
		return nil, fmt.Errorf("tlsutil: CA file %s contains no PEM CERTIFICATE block: give the PEM bundle of the issuing CAs", path)
	}
	return cas, nil
}
