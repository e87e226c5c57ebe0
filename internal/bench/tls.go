package bench

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sync"
)

// TLSInfo describes the TLS session of the first connection of a run that
// completed its handshake. Every connection of a run uses the same settings,
// so it describes all of them.
type TLSInfo struct {
	Version     string `json:"version"`      // "TLS 1.3"
	CipherSuite string `json:"cipher_suite"` // "TLS_AES_128_GCM_SHA256"
	Group       string `json:"group"`        // key exchange group, such as "X25519MLKEM768"; empty when TLS 1.2 resumed or unknown
	ServerName  string `json:"server_name"`  // name the certificate was checked for and sent as SNI
	Verified    bool   `json:"verified"`     // false with InsecureSkipVerify
}

// clientTLS builds the TLS settings of a run. It is nil without TLS.
type clientTLS struct {
	base *tls.Config

	mu    sync.Mutex
	first *TLSInfo
}

// newClientTLS reads the CA file and returns the run's TLS settings, or nil
// when cfg.TLS is off.
func newClientTLS(cfg Config) (*clientTLS, error) {
	if !cfg.TLS {
		return nil, nil
	}
	base := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         cfg.ServerName,
		InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // --insecure, documented as unauthenticated
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: read the CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: CA file %s contains no PEM certificate", cfg.CAFile)
		}
		base.RootCAs = pool
	}
	return &clientTLS{base: base}, nil
}

// forAddr returns the client configuration for connections to addr: the
// certificate must name the host of addr unless a server name was given.
// It returns nil when ct is nil (no TLS).
func (ct *clientTLS) forAddr(addr string) *tls.Config {
	if ct == nil {
		return nil
	}
	if ct.base.ServerName != "" {
		return ct.base
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr // Validate checked the address; this does not happen
	}
	c := ct.base.Clone()
	c.ServerName = host
	return c
}

// record keeps the session details of the first handshake, which checked
// the certificate for serverName.
func (ct *clientTLS) record(c *tls.Conn, serverName string) {
	if ct == nil {
		return
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.first != nil {
		return
	}
	st := c.ConnectionState()
	info := &TLSInfo{
		Version:     tls.VersionName(st.Version),
		CipherSuite: tls.CipherSuiteName(st.CipherSuite),
		ServerName:  serverName,
		Verified:    !ct.base.InsecureSkipVerify,
	}
	if st.CurveID != 0 {
		info.Group = st.CurveID.String()
	}
	ct.first = info
}

// info returns the details of the first handshake, or nil.
func (ct *clientTLS) info() *TLSInfo {
	if ct == nil {
		return nil
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.first
}
