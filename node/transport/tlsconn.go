package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"time"
)

// handshakeTLS runs the server side of a TLS handshake on c before
// deadline, and returns the TLS connection with the client's verified chain
// (nil when the client sent no certificate). The checks on the client
// certificate (chain, validity, revocation, identity) live in the
// *tls.Config that tlsutil.ServerConfig built, so tls and wss listeners
// apply the same ones.
//
// It uses a socket deadline rather than HandshakeContext, because
// HandshakeContext starts a goroutine per handshake to watch the context,
// and Listener.Close interrupts the handshake by closing the socket anyway.
func handshakeTLS(c net.Conn, cfg *tls.Config, deadline time.Time) (*tls.Conn, []*x509.Certificate, error) {
	if err := c.SetDeadline(deadline); err != nil {
		return nil, nil, fmt.Errorf("transport: set TLS handshake deadline: %w", err)
	}
	tc := tls.Server(c, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, nil, fmt.Errorf("transport: TLS handshake: %w", err)
	}

	// tlsutil rejects a certificate that crypto/tls did not verify, so a
	// client certificate always comes with at least one verified chain.
	cs := tc.ConnectionState()
	if len(cs.VerifiedChains) == 0 {
		return tc, nil, nil
	}
	return tc, cs.VerifiedChains[0], nil
}
