package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
)

// admission is the outcome of classify for one inbound connection.
type admission struct {
	conn     net.Conn         // connection to hand off: the TLS connection, or a sniffedConn for gRPC
	target   *virtualListener // p.raft or p.grpc; nil when rejected
	protocol string           // "raft" or "grpc"
	node     string           // the node the client certificate names; "" in plaintext

	// reason and err describe why the connection is rejected, when target
	// is nil.
	reason string
	err    error
}

// admit runs the TLS handshake on an accepted connection, reads its first
// byte and hands it to Raft or gRPC, all within Config.HandshakeTimeout.
// Close ends it early by closing the connection.
func (p *Port) admit(conn net.Conn) {
	defer p.wg.Done()
	defer func() { <-p.pending }()

	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.HandshakeTimeout)
	defer cancel()

	// Until the hand-off, a timeout or Close interrupts any blocked read or
	// handshake by closing the connection.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	a := p.classify(conn)
	if !stop() {
		p.rejectAfterDeadline(ctx, conn, a.node, "TLS handshake or first byte")
		return
	}
	if a.target == nil {
		level := slog.LevelWarn
		if errors.Is(a.err, io.EOF) {
			// A TCP health check or port scan connects and closes.
			level = slog.LevelDebug
		}
		p.reject(conn, level, a.node, a.reason, a.err)
		return
	}

	// Hand-off: wait for Raft or gRPC to call Accept.
	if a.target == p.raft {
		rc, ok := p.trackRaftConn(a.conn)
		if !ok {
			_ = a.conn.Close()
			return
		}
		a.conn = rc
	}
	select {
	case a.target.conns <- a.conn:
		if a.target == p.raft {
			p.stats.raftConns.Add(1)
		} else {
			p.stats.grpcConns.Add(1)
		}
		p.logger.Debug("peer connection accepted", keyRemote, conn.RemoteAddr().String(), keyNode, a.node, keyProtocol, a.protocol)
	case <-a.target.done:
		_ = a.conn.Close()
		p.reject(conn, slog.LevelDebug, a.node, a.protocol+" listener closed", nil)
	case <-ctx.Done():
		_ = a.conn.Close()
		p.rejectAfterDeadline(ctx, conn, a.node, "Accept by "+a.protocol)
	}
}

// raftConn is an inbound Raft connection that the port closes on Close.
type raftConn struct {
	net.Conn
	p    *Port
	once sync.Once
}

func (c *raftConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.p.raftConns.Lock()
		delete(c.p.raftConns.m, c)
		c.p.raftConns.Unlock()
	})
	return err
}

// trackRaftConn wraps conn so that Close can close it; false once the port
// is closed.
func (p *Port) trackRaftConn(conn net.Conn) (*raftConn, bool) {
	rc := &raftConn{Conn: conn, p: p}
	p.raftConns.Lock()
	defer p.raftConns.Unlock()
	if p.raftConns.closed {
		return nil, false
	}
	if p.raftConns.m == nil {
		p.raftConns.m = make(map[*raftConn]struct{})
	}
	p.raftConns.m[rc] = struct{}{}
	return rc, true
}

// closeRaftConns closes every inbound Raft connection still open.
func (p *Port) closeRaftConns() {
	p.raftConns.Lock()
	p.raftConns.closed = true
	conns := make([]*raftConn, 0, len(p.raftConns.m))
	for rc := range p.raftConns.m {
		conns = append(conns, rc)
	}
	p.raftConns.Unlock()
	for _, rc := range conns {
		_ = rc.Close()
	}
}

// rejectAfterDeadline rejects conn after ctx ended: silently when the port
// closed, with a log line when the handshake timed out.
func (p *Port) rejectAfterDeadline(ctx context.Context, conn net.Conn, node, waitingFor string) {
	if p.ctx.Err() != nil {
		_ = conn.Close()
		return
	}
	p.reject(conn, slog.LevelWarn, node, fmt.Sprintf("timed out after %v waiting for %s", p.cfg.HandshakeTimeout, waitingFor), ctx.Err())
}

// classify runs the TLS handshake, if any, and reads the first byte. With
// TLS, the negotiated ALPN protocol must agree with the first byte.
func (p *Port) classify(conn net.Conn) admission {
	var a admission
	c := conn
	alpn := ""
	var state *tls.ConnectionState
	if p.serverTLS != nil {
		tc := tls.Server(conn, p.serverTLS)
		if err := tc.Handshake(); err != nil {
			return admission{reason: "TLS handshake failed", err: err}
		}
		cs := tc.ConnectionState()
		state = &cs
		alpn = cs.NegotiatedProtocol
		// The server's VerifyIdentity has checked that the name exists.
		a.node, _ = certNodeName(cs.PeerCertificates[0])
		c = tc
	}

	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		if errors.Is(err, io.EOF) && state != nil {
			// With TLS, EOF comes after a complete handshake, which no
			// health check does.
			err = io.ErrUnexpectedEOF
		}
		a.reason, a.err = "no first byte", err
		return a
	}

	switch {
	case first[0] == raftByte && (state == nil || alpn == raftALPN):
		a.conn, a.target, a.protocol = c, p.raft, "raft"
	case first[0] == grpcByte && (state == nil || alpn == grpcALPN):
		a.conn, a.target, a.protocol = &sniffedConn{Conn: c, first: first[0], tlsState: state}, p.grpc, "grpc"
	case state != nil:
		a.reason = fmt.Sprintf("first byte 0x%02x does not match the ALPN protocol %q", first[0], alpn)
	default:
		a.reason = fmt.Sprintf("first byte 0x%02x is neither Raft ('R') nor HTTP/2 ('P')", first[0])
	}
	return a
}

// sniffedConn is a gRPC connection whose first byte was read by classify
// and is returned again by the first Read.
type sniffedConn struct {
	net.Conn
	first    byte
	replayed atomic.Bool

	// tlsState is the handshake's state, for PeerName; nil in plaintext.
	tlsState *tls.ConnectionState
}

func (c *sniffedConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if !c.replayed.Load() && c.replayed.CompareAndSwap(false, true) {
		b[0] = c.first
		return 1, nil
	}
	return c.Conn.Read(b)
}

// virtualListener is the net.Listener of one protocol on the port. admit
// goroutines send it connections; Accept receives them.
type virtualListener struct {
	addr      net.Addr
	conns     chan net.Conn // unbuffered: a connection waits in admit, under its deadline
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func newVirtualListener(addr net.Addr) *virtualListener {
	return &virtualListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for the next connection of this protocol. After Close it
// returns an error that wraps net.ErrClosed.
func (l *virtualListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
}

// Close stops Accept. Connections that arrive later are closed by the port.
// It closes neither the port nor connections already accepted, and it is
// idempotent.
func (l *virtualListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr returns the listener's address.
func (l *virtualListener) Addr() net.Addr { return l.addr }

// advertisedAddr is a net.Addr given as a string, such as a DNS name and
// port that Raft sends to other nodes.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }
