package transport

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"time"
)

var errUntrustedProxyHeader = errors.New("transport: PROXY header from an address outside TrustedProxies")

// handshake prepares one socket in its own goroutine: PROXY header, address
// lists, TLS handshake and WebSocket upgrade, as the listener needs. It
// queues the result for Accept, or closes the socket and counts the reason.
// Each step runs under its own deadline, and Close interrupts a step by
// closing the socket.
func (l *Listener) handshake(nc net.Conn) {
	defer l.wg.Done()

	c, reason, err := l.prepareRecover(nc)

	l.mu.Lock()
	delete(l.mu.pending, nc)
	l.mu.Unlock()

	if err != nil {
		nc.Close()
		l.slots.release()
		if !l.isClosed() {
			l.countReject(reason, nc.RemoteAddr(), err)
		}
		return
	}
	l.deliver(c)
}

// prepareRecover runs prepare and turns a panic into a rejection, so that
// no input from a client can stop the broker.
func (l *Listener) prepareRecover(nc net.Conn) (c *Conn, reason Reason, err error) {
	defer func() {
		if p := recover(); p != nil {
			c, reason = nil, ReasonPanic
			err = fmt.Errorf("transport: panic: %v\n%s", p, debug.Stack())
		}
	}()
	return l.prepare(nc)
}

func (l *Listener) prepare(nc net.Conn) (*Conn, Reason, error) {
	stream := nc
	remote, proxy := nc.RemoteAddr(), net.Addr(nil)

	if l.cfg.ProxyProtocol {
		var err error
		stream, remote, proxy, err = l.readProxy(nc)
		if err != nil {
			return nil, ReasonProxy, err
		}
		if r := l.access.check(addrOf(remote)); r != reasonNone {
			return nil, r, fmt.Errorf("transport: client address %s is not allowed", remote)
		}
	}

	var certs []*x509.Certificate
	if l.tlsConfig != nil {
		tc, chain, err := handshakeTLS(stream, l.tlsConfig, time.Now().Add(l.cfg.TLSHandshakeTimeout))
		if err != nil {
			return nil, ReasonTLSHandshake, err
		}
		stream, certs = tc, chain
	}

	if l.upgrader != nil {
		wc, err := upgradeWebSocket(stream, l.upgrader, l.ep.path, l.cfg.WSMaxMessageSize, time.Now().Add(l.cfg.WSHandshakeTimeout))
		if err != nil {
			return nil, ReasonWSUpgrade, err
		}
		stream = wc
	}

	// This fails only on a closed socket, which the first Read reports.
	_ = nc.SetDeadline(time.Time{})
	return l.newConn(stream, remote, proxy, certs), reasonNone, nil
}

// readProxy applies the PROXY protocol rules to a socket. From a trusted
// proxy it requires a header and returns the client that the header names.
// From any other address it requires that the first bytes are not a
// header. The returned stream replays the bytes read past the header.
func (l *Listener) readProxy(nc net.Conn) (stream net.Conn, remote, proxy net.Addr, err error) {
	deadline := time.Now().Add(l.cfg.ProxyHeaderTimeout)
	if !l.trusted.contains(addrOf(nc.RemoteAddr())) {
		first, err := readFirstBytes(nc, deadline)
		if err != nil {
			return nil, nil, nil, err
		}
		if startsLikeProxyHeader(first) {
			return nil, nil, nil, errUntrustedProxyHeader
		}
		return withPrefix(nc, first), nc.RemoteAddr(), nil, nil
	}

	h, rest, err := readProxyHeader(nc, deadline)
	if err != nil {
		return nil, nil, nil, err
	}
	if h.local {
		return withPrefix(nc, rest), nc.RemoteAddr(), nil, nil
	}
	return withPrefix(nc, rest), net.TCPAddrFromAddrPort(h.src), nc.RemoteAddr(), nil
}
