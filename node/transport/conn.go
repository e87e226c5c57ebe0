package transport

import (
	"crypto/x509"
	"net"
	"sync"
	"time"
)

// Conn is a client connection that a Listener accepted and prepared: the
// PROXY header read, the TLS handshake done and the WebSocket upgrade made,
// as its listener requires. Read and Write carry the MQTT byte stream
// whatever the transport. Its methods are safe for concurrent use, as
// net.Conn requires.
//
// The connection holds one of its listener's MaxConnections slots until
// Close, so every Conn that Accept returns must be closed, also after the
// Listener has closed.
type Conn struct {
	conn   net.Conn   // the stream: TCP, TLS, or the WebSocket adapter
	remote net.Addr   // the client, from the PROXY header when there is one
	from   *connFrom  // shared by the connections of one listener
	extra  *connExtra // nil when there is neither a proxy nor a client certificate

	closeOnce sync.Once
	closeErr  error
}

// connFrom is the listener name, transport and slots that all connections
// of one listener share. The Listener keeps one, so that an idle
// connection carries no copies.
type connFrom struct {
	listener  string
	transport string
	slots     *slots
}

// connExtra holds what few connections have.
type connExtra struct {
	proxy     net.Addr // the TCP peer when a PROXY header named the client, else nil
	peerCerts []*x509.Certificate
}

// Read reads the MQTT byte stream. Over WebSocket a read may return bytes
// of several messages, and a message may take several reads.
func (c *Conn) Read(p []byte) (int, error) { return c.conn.Read(p) }

// Write writes the MQTT byte stream. Over WebSocket each call sends one
// binary message.
func (c *Conn) Write(p []byte) (int, error) { return c.conn.Write(p) }

// Close closes the connection and gives its slot back to the listener.
// Over WebSocket it first sends a close frame. Close is idempotent: later
// calls return the first call's error.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.conn.Close()
		c.from.slots.release()
	})
	return c.closeErr
}

// LocalAddr returns the socket's local address: the listener address that
// the client connected to.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the client's address: the source address of a PROXY
// header when the connection came through a trusted proxy and the header
// named a client, else the socket's peer address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// ProxyAddr returns the address of the proxy that sent a PROXY header
// naming the client, or nil when RemoteAddr is the socket's peer.
func (c *Conn) ProxyAddr() net.Addr {
	if c.extra == nil {
		return nil
	}
	return c.extra.proxy
}

// SetDeadline sets the read and write deadlines as net.Conn documents. The
// listener clears its handshake deadlines before Accept returns the
// connection. NOTE: over WebSocket a read or write that times out ends the
// connection, because gorilla/websocket treats timeouts as permanent.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the read deadline as net.Conn documents.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline as net.Conn documents.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// PeerCertificates returns the client's verified certificate chain, leaf
// first, for tls and wss connections whose client sent a certificate. It
// returns nil otherwise. The slice must not be modified.
func (c *Conn) PeerCertificates() []*x509.Certificate {
	if c.extra == nil {
		return nil
	}
	return c.extra.peerCerts
}

// Listener returns the name of the listener that accepted the connection.
func (c *Conn) Listener() string { return c.from.listener }

// Transport returns TransportTCP, TransportTLS, TransportWS or
// TransportWSS.
func (c *Conn) Transport() string { return c.from.transport }

// NetConn returns the connection's stream beneath Conn: a *net.TCPConn (or
// a wrapper holding bytes read ahead), a *tls.Conn, or the WebSocket
// adapter. Closing it directly leaks the listener slot: close the Conn.
func (c *Conn) NetConn() net.Conn { return c.conn }
