package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// cipherSuites are the TLS 1.2 suites offered: ECDHE key exchange with an
// AEAD only. TLS 1.3 suites are not configurable in crypto/tls and are all
// AEAD already.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// baseConfig returns the settings shared by every Config of this package:
// TLS 1.2 and 1.3 only, AEAD suites only.
func baseConfig(nextProtos []string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   tls.VersionTLS13,
		CipherSuites: cipherSuites,
		NextProtos:   append([]string(nil), nextProtos...),
	}
}

// ServerConfig returns a server Config for a tls or wss client listener or
// for the peer port, and the Reloader that keeps its files current. The
// caller owns the Reloader and must Close it when the listener stops.
//
// Every handshake goes through GetConfigForClient, which returns the Config
// built for the material current at that moment, so a reload reaches the
// next handshake. Settings must therefore come from opts: fields changed on
// the returned Config (other than its callbacks) do not reach handshakes.
func ServerConfig(opts ServerOptions) (*tls.Config, *Reloader, error) {
	if err := opts.validate(); err != nil {
		return nil, nil, err
	}
	src := source{certFile: opts.CertFile, keyFile: opts.KeyFile}
	if opts.ClientAuth != ClientAuthNone {
		src.caFile = opts.ClientCAFile
		src.crlFiles = append([]string(nil), opts.CRLFiles...)
	}
	build := func(m *material) { m.server = serverMaterialConfig(m, opts) }
	r, err := newReloader(src, build, reloadInterval(opts.ReloadInterval), loggerOrDefault(opts.Logger))
	if err != nil {
		return nil, nil, err
	}

	cfg := baseConfig(opts.NextProtos)
	cfg.ClientAuth = stdClientAuth(opts.ClientAuth)
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return r.current.Load().server, nil
	}
	// GetCertificate is unused by handshakes, which take the certificate
	// from the Config above, but net/http's ServeTLS requires it (or a
	// certificate file) before it serves a wss listener.
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return r.current.Load().cert, nil
	}
	return cfg, r, nil
}

// serverMaterialConfig builds the Config of one material. crypto/tls verifies
// the client chain against m.roots, including the validity period and the
// client-auth key usage, also on session resumption; VerifyConnection then
// adds revocation and the identity check.
func serverMaterialConfig(m *material, opts ServerOptions) *tls.Config {
	cfg := baseConfig(opts.NextProtos)
	cfg.Certificates = []tls.Certificate{*m.cert}
	cfg.ClientAuth = stdClientAuth(opts.ClientAuth)
	cfg.ClientCAs = m.roots
	if opts.ClientAuth != ClientAuthNone {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyClient(cs, m.revoked, opts.VerifyIdentity)
		}
	}
	return cfg
}

// verifyClient checks a client certificate that crypto/tls has verified. A
// client without a certificate reaches it only in optional mode.
func verifyClient(cs tls.ConnectionState, revoked revocations, identity func(*x509.Certificate) error) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	if len(cs.VerifiedChains) == 0 {
		return errors.New("tlsutil: client certificate was not verified")
	}
	if err := revoked.check(cs.VerifiedChains); err != nil {
		return err
	}
	if identity != nil {
		return identity(cs.PeerCertificates[0])
	}
	return nil
}

func stdClientAuth(a ClientAuth) tls.ClientAuthType {
	switch a {
	case ClientAuthOptional:
		return tls.VerifyClientCertIfGiven
	case ClientAuthRequired:
		return tls.RequireAndVerifyClientCert
	}
	return tls.NoClientCert
}
