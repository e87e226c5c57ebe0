// Package peer runs a node's peer port: one TCP listener that carries both
// hashicorp/raft and gRPC between the nodes of a cluster.
//
// # What it owns
//
// The listener, the mutual TLS on it (through internal/tlsutil, which also
// reloads the files when they change), and telling Raft from gRPC on each
// inbound connection. The dialing side lives here too: RaftLayer().Dial and
// GRPCDialOptions speak the same protocol and check that the server's
// certificate names the expected node, and PeerName returns the node name of
// a gRPC caller.
//
// # What it does not own
//
// The Raft transport and the gRPC server: the caller builds them on
// RaftLayer, GRPCListener and GRPCServerOptions, and stops them before it
// closes the port. Which node lives at which address, and whether a peer
// may call a given RPC, belong to the cluster package.
//
// # The protocol on the wire
//
// With TLS, every connection first completes a TLS 1.2 or 1.3 handshake in
// which both sides present a certificate of the peer CA. The server offers
// the ALPN protocols "h2" (which grpc-go's client requires) and
// "starling-raft", which is the only one the Raft dialer offers. After the
// handshake, or at once in plaintext, the Raft dialer writes the byte 'R',
// which the port consumes. A gRPC client starts with the HTTP/2 preface
// "PRI * HTTP/2.0", whose 'P' the port returns to gRPC with the rest. Any
// other first byte, or with TLS a byte that does not match the negotiated
// protocol, closes the connection.
//
// With TLS, ALPN alone could separate Raft from gRPC. Plaintext needs the
// first byte, and one rule for both modes keeps the dialers simple.
//
// # Security
//
// Listen rejects plaintext on a non-loopback address unless
// Config.Insecure is set, and logs a warning on every start in that case.
// A client certificate must chain to the peer CA and name a node; a server
// certificate must name the node being dialed. Rejected connections are
// logged with their remote address, at most 10 lines per 10 seconds.
//
// # Goroutines and locks
//
// Listen starts the accept loop. It starts one admit goroutine per
// accepted connection, which runs the handshake, reads the first byte and
// waits for Raft or gRPC to Accept the connection, all within
// Config.HandshakeTimeout, so a slow peer never delays other accepts. At
// most Config.MaxPendingConns admit goroutines run at once. Close cancels
// them and waits for all of them. The port holds no lock of its own: its
// counters are atomic, the hand-off is a channel, and the rate limiter's
// mutex is held only inside logLimiter.allow.
//
// # Limitations
//
// Only the certificate loaded at Listen is checked against
// Config.NodeName. Without Config.RaftPeerName, the Raft dialer accepts any
// node certificate of the peer CA, because Raft dials addresses, not node
// names.
package peer
