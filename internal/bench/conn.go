package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Sizes of the per-connection buffers. 64 KiB lets one read or write system
// call carry about a thousand 64-byte messages.
const (
	readBufferSize  = 64 << 10
	writeBufferSize = 64 << 10
)

// conn is one MQTT client connection. Reads happen on one goroutine only, the
// connection's reader. Writes may come from two goroutines (a publisher's
// sender and its acknowledgement reader), so they go through mu.
type conn struct {
	nc       net.Conn
	version  byte
	clientID string

	// keepAlive is the interval the broker enforces, from CONNECT or from
	// the 5.0 Server Keep Alive. Zero disables keep alive.
	keepAlive time.Duration

	// receiveMaximum and maximumPacket are the broker's limits from a 5.0
	// CONNACK: 65,535 and 0 (no limit) for 3.1.1 or when absent.
	receiveMaximum uint16
	maximumPacket  uint32
	maximumQoS     byte

	reader       *bufio.Reader
	pendingSkip  int    // bytes of the last frame still to discard, see readFrame
	largeScratch []byte // body of a frame larger than the read buffer

	mu struct {
		sync.Mutex
		w *bufio.Writer
	}
}

// dialOptions are the connection settings shared by every client of a run.
type dialOptions struct {
	addr           string
	version        byte
	keepAlive      time.Duration
	connectTimeout time.Duration
	username       string
	password       string
	readBuffer     int

	// localAddr, when not nil, is the source address of the TCP connection.
	localAddr *net.TCPAddr

	// smallBuffers replaces the 64 KiB read and write buffers with
	// smallBufferSize ones, for connections that carry almost nothing.
	smallBuffers bool

	// tls, when not nil, makes the connection TLS with these settings, whose
	// ServerName is set. tlsRun records the first session's details.
	tls    *tls.Config
	tlsRun *clientTLS
}

// dial opens a TCP connection to o.addr, completes the TLS handshake when
// o.tls is set, and then the MQTT handshake. A CONNACK with a failure code
// is returned as an error naming the code.
func dial(ctx context.Context, o dialOptions, clientID string, cleanStart bool, sessionExpiry uint32) (*conn, connack, error) {
	d := net.Dialer{Timeout: o.connectTimeout}
	if o.localAddr != nil {
		d.LocalAddr = o.localAddr
	}
	nc, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, connack{}, fmt.Errorf("connect %s to %s: %w", clientID, o.addr, err)
	}
	if o.tls != nil {
		if nc, err = tlsHandshake(ctx, nc, o); err != nil {
			return nil, connack{}, fmt.Errorf("connect %s to %s: %w", clientID, o.addr, err)
		}
	}

	c := &conn{
		nc:             nc,
		version:        o.version,
		clientID:       clientID,
		keepAlive:      o.keepAlive,
		receiveMaximum: 65535,
		maximumQoS:     2,
	}
	if o.smallBuffers {
		c.reader = bufio.NewReaderSize(nc, smallBufferSize)
		c.mu.w = bufio.NewWriterSize(nc, smallBufferSize)
	} else {
		c.reader = bufio.NewReaderSize(nc, max(o.readBuffer, readBufferSize))
		c.mu.w = bufio.NewWriterSize(nc, writeBufferSize)
	}

	ca, err := c.handshake(clientID, cleanStart, sessionExpiry, o)
	if err != nil {
		nc.Close()
		return nil, ca, fmt.Errorf("connect %s to %s: %w", clientID, o.addr, err)
	}
	return c, ca, nil
}

// tlsHandshake runs the client side of a TLS handshake on nc within
// o.connectTimeout. It closes nc when the handshake fails.
func tlsHandshake(ctx context.Context, nc net.Conn, o dialOptions) (net.Conn, error) {
	tc := tls.Client(nc, o.tls)
	hctx, cancel := context.WithTimeout(ctx, o.connectTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	o.tlsRun.record(tc, o.tls.ServerName)
	return tc, nil
}

func (c *conn) handshake(clientID string, cleanStart bool, sessionExpiry uint32, o dialOptions) (connack, error) {
	if err := c.nc.SetDeadline(time.Now().Add(o.connectTimeout)); err != nil {
		return connack{}, err
	}

	packet := appendConnect(nil, connectOptions{
		version:       o.version,
		clientID:      clientID,
		cleanStart:    cleanStart,
		keepAlive:     uint16(o.keepAlive / time.Second),
		sessionExpiry: sessionExpiry,
		username:      o.username,
		password:      o.password,
	})
	if err := c.write(packet); err != nil {
		return connack{}, fmt.Errorf("send CONNECT: %w", err)
	}
	if err := c.flush(); err != nil {
		return connack{}, fmt.Errorf("send CONNECT: %w", err)
	}

	f, err := c.readFrame()
	if err != nil {
		return connack{}, fmt.Errorf("read CONNACK: %w", err)
	}
	if f.packetType() != typeConnack {
		return connack{}, fmt.Errorf("expected CONNACK, got packet type %d", f.packetType())
	}
	ca, err := parseConnack(f, c.version)
	if err != nil {
		return ca, fmt.Errorf("read CONNACK: %w", err)
	}
	if ca.reason != 0 {
		return ca, fmt.Errorf("broker rejected the connection: CONNACK code 0x%02X %s", ca.reason, ca.reasonString)
	}

	if ca.receiveMaximum != 0 {
		c.receiveMaximum = ca.receiveMaximum
	}
	c.maximumPacket = ca.maximumPacket
	c.maximumQoS = ca.maximumQoS
	if ca.serverKeepAlive >= 0 {
		c.keepAlive = time.Duration(ca.serverKeepAlive) * time.Second
	}
	return ca, c.nc.SetDeadline(time.Time{})
}

// readFrame reads the next packet. The returned body aliases the read buffer
// until the next call.
//
// The fixed header and body are peeked and only discarded at the start of the
// next call, so a read deadline that expires in the middle of a packet
// consumes nothing and the call can simply be repeated. A packet larger than
// the read buffer is the exception: it is copied into largeScratch and a
// deadline in the middle of it breaks the stream.
func (c *conn) readFrame() (frame, error) {
	if c.pendingSkip > 0 {
		if _, err := c.reader.Discard(c.pendingSkip); err != nil {
			return frame{}, err
		}
		c.pendingSkip = 0
	}

	head, err := c.reader.Peek(2)
	if err != nil {
		return frame{}, err
	}
	headerLen := 2
	for head[headerLen-1]&0x80 != 0 {
		if headerLen == 5 {
			return frame{}, fmt.Errorf("remaining length longer than 4 bytes: %w", errMalformed)
		}
		headerLen++
		if head, err = c.reader.Peek(headerLen); err != nil {
			return frame{}, err
		}
	}
	bodyLen, _, err := readVarint(head[1:headerLen])
	if err != nil {
		return frame{}, err
	}

	total := headerLen + bodyLen
	if total <= c.reader.Size() {
		b, err := c.reader.Peek(total)
		if err != nil {
			return frame{}, err
		}
		c.pendingSkip = total
		return frame{header: b[0], body: b[headerLen:]}, nil
	}
	return c.readLargeFrame(head[0], headerLen, bodyLen)
}

func (c *conn) readLargeFrame(header byte, headerLen, bodyLen int) (frame, error) {
	if _, err := c.reader.Discard(headerLen); err != nil {
		return frame{}, err
	}
	if cap(c.largeScratch) < bodyLen {
		c.largeScratch = make([]byte, bodyLen)
	}
	body := c.largeScratch[:bodyLen]
	if _, err := io.ReadFull(c.reader, body); err != nil {
		return frame{}, err
	}
	return frame{header: header, body: body}, nil
}

// inputPending reports whether the read buffer holds bytes beyond the frame
// that readFrame returned last, so that the next readFrame will not block.
func (c *conn) inputPending() bool {
	return c.reader.Buffered() > c.pendingSkip
}

// write appends b to the write buffer; flush sends it.
func (c *conn) write(b []byte) error {
	c.mu.Lock()
	_, err := c.mu.w.Write(b)
	c.mu.Unlock()
	return err
}

// writePacket appends a packet given in two parts, such as a PUBLISH header
// and its payload, under one lock so that no other packet can come between.
func (c *conn) writePacket(header, body []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.mu.w.Write(header); err != nil {
		return err
	}
	_, err := c.mu.w.Write(body)
	return err
}

func (c *conn) flush() error {
	c.mu.Lock()
	err := c.mu.w.Flush()
	c.mu.Unlock()
	return err
}

// disconnect sends DISCONNECT (reason 0, normal disconnection) with a short
// write deadline and closes the socket. Errors are ignored: the run is over
// and the socket closes either way.
func (c *conn) disconnect() {
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.write([]byte{typeDisconnect << 4, 0})
	_ = c.flush()
	_ = c.nc.Close()
}
