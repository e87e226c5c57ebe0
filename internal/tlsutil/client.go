package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ClientConfig returns a Config for dialing another node's peer port with
// mutual TLS, and the Reloader that keeps its files current. The caller owns
// the Reloader and must Close it when it stops dialing.
//
// The client certificate comes from GetClientCertificate and the server is
// verified in VerifyConnection, both against the current material, so a
// reloaded certificate, peer CA or CRL applies to the next handshake.
// InsecureSkipVerify is set only because crypto/tls has no per-handshake
// hook for client-side roots; VerifyConnection does the full verification:
// chain to the peer CA, validity period, server-auth key usage, revocation
// and the node name (VerifyPeerName). Clearing VerifyConnection on the
// returned Config would disable all of it.
func ClientConfig(opts ClientOptions) (*tls.Config, *Reloader, error) {
	if err := opts.validate(); err != nil {
		return nil, nil, err
	}
	src := source{certFile: opts.CertFile, keyFile: opts.KeyFile, caFile: opts.CAFile, crlFiles: append([]string(nil), opts.CRLFiles...)}
	r, err := newReloader(src, nil, reloadInterval(opts.ReloadInterval), loggerOrDefault(opts.Logger))
	if err != nil {
		return nil, nil, err
	}

	cfg := baseConfig(opts.NextProtos)
	cfg.ServerName = opts.ServerName
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return r.current.Load().cert, nil
	}
	cfg.InsecureSkipVerify = true
	fixedName := opts.ServerName
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyServer(cs, r.current.Load(), fixedName, time.Now())
	}
	return cfg, r, nil
}

// verifyServer verifies the server's chain against m and checks that it
// names the expected node: fixedName, or the ServerName of the handshake.
func verifyServer(cs tls.ConnectionState, m *material, fixedName string, now time.Time) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tlsutil: peer sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	intermediates := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         m.roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("tlsutil: verify peer certificate %q: %w", leaf.Subject.String(), err)
	}
	if err := m.revoked.check(chains); err != nil {
		return err
	}

	name := fixedName
	if name == "" {
		name = cs.ServerName
	}
	if name == "" {
		return errors.New("tlsutil: no expected peer name: set ClientOptions.ServerName or tls.Config.ServerName to the node being dialed")
	}
	return VerifyPeerName(leaf, name)
}
