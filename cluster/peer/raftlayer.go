package peer

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// raftLayer is the raft.StreamLayer of a port.
type raftLayer struct {
	*virtualListener
	p *Port
}

// RaftLayer returns the stream layer for raft.NewNetworkTransportWithConfig.
// Its Accept yields inbound Raft connections, and its Addr is
// Config.Advertise or the bound address. Its Close stops only Raft's Accept.
// Dial opens an outbound Raft connection, with mutual TLS when the port has
// TLS.
func (p *Port) RaftLayer() raft.StreamLayer {
	return raftLayer{virtualListener: p.raft, p: p}
}

// Dial connects to the peer port at addr, runs the TLS handshake offering
// only the "starling-raft" protocol, and writes the Raft marker byte. With
// TLS, the server certificate must chain to the peer CA and name the node
// that Config.RaftPeerName returns for addr, or any node when it returns "".
// The whole dial is bounded by timeout; zero means Config.HandshakeTimeout.
func (l raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = l.p.cfg.HandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", string(addr))
	if err != nil {
		return nil, fmt.Errorf("peer: dial raft peer %s: %w", addr, err)
	}
	if l.p.clientTLS != nil {
		tc := tls.Client(conn, l.p.raftClientConfig(addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("peer: TLS handshake with raft peer %s: %w", addr, err)
		}
		if np := tc.ConnectionState().NegotiatedProtocol; np != raftALPN {
			_ = tc.Close()
			return nil, fmt.Errorf("peer: raft peer %s negotiated ALPN protocol %q, expected %q: check that %s is a Starling peer port", addr, np, raftALPN, addr)
		}
		conn = tc
	}

	deadline, _ := ctx.Deadline()
	if err := conn.SetWriteDeadline(deadline); err == nil {
		_, err = conn.Write([]byte{raftByte})
		if err == nil {
			err = conn.SetWriteDeadline(time.Time{})
		}
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("peer: write raft marker to %s: %w", addr, err)
	}
	return conn, nil
}

// raftClientConfig returns the client TLS configuration for dialing addr.
func (p *Port) raftClientConfig(addr raft.ServerAddress) *tls.Config {
	name := ""
	if p.cfg.RaftPeerName != nil {
		name = p.cfg.RaftPeerName(addr)
	}
	return p.dialConfig(name, raftALPN)
}

// dialConfig clones the client TLS configuration for one connection. The
// server certificate must name peerName. An empty peerName accepts any
// certificate that names a node (certNodeName). tlsutil checks the name
// against the handshake's ServerName, which grpc-go v1.85 overwrites with
// the host of the dial target (often an IP address), so the
// VerifyConnection wrapper sets it to the expected name.
func (p *Port) dialConfig(peerName, alpn string) *tls.Config {
	cfg := p.clientTLS.Clone()
	cfg.NextProtos = []string{alpn}
	if peerName != "" {
		cfg.ServerName = peerName
	}

	verify := p.clientTLS.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		name := peerName
		if name == "" {
			if len(cs.PeerCertificates) == 0 {
				return verify(cs) // returns tlsutil's "no certificate" error
			}
			n, err := certNodeName(cs.PeerCertificates[0])
			if err != nil {
				return err
			}
			name = n
		}
		cs.ServerName = name
		return verify(cs)
	}
	return cfg
}
