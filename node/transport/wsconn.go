package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// closeFrameTimeout bounds the write of the close frame in wsConn.Close. It
// is short because a node may close many connections in a row at shutdown,
// and it matters only when the client has stopped reading.
const closeFrameTimeout = 100 * time.Millisecond

var errTextFrame = errors.New("transport: WebSocket client sent a text message: MQTT over WebSocket uses binary messages only")

// wsConn adapts a WebSocket connection to the byte stream of net.Conn.
// Read returns the payloads of binary messages one after another with no
// regard for message boundaries, because MQTT over WebSocket lets a packet
// span messages and a message hold several packets. Write sends each call
// as one binary message.
//
// gorilla/websocket allows one concurrent reader and one concurrent writer,
// and net.Conn allows any number, so readMu and writeMu serialize each side.
// Close and the ping and close handlers write control frames, which
// gorilla/websocket allows at any time.
type wsConn struct {
	ws *websocket.Conn

	readMu sync.Mutex
	// reader is the message being read, nil between messages. Guarded by
	// readMu.
	reader io.Reader
	// readErr is the first read error. gorilla/websocket's read errors are
	// permanent, and it panics when a failed connection is read too often,
	// so later reads return readErr without reading. Guarded by readMu.
	readErr error

	writeMu sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

func newWSConn(ws *websocket.Conn) *wsConn {
	return &wsConn{ws: ws}
}

// Read reads payload bytes of binary messages. A close frame from the
// client with status 1000 (normal), 1001 (going away) or no status ends the
// stream with io.EOF. A text message sends close status 1003 and fails.
func (c *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.readErr != nil {
		return 0, c.readErr
	}

	for {
		if c.reader == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				c.readErr = wsReadError(err)
				return 0, c.readErr
			}
			if typ != websocket.BinaryMessage {
				c.rejectText()
				return 0, c.readErr
			}
			c.reader = r
		}

		n, err := c.reader.Read(p)
		if errors.Is(err, io.EOF) {
			// End of this message: go on with the next one unless bytes
			// are ready to return. An empty message is skipped.
			c.reader = nil
			err = nil
		}
		if err != nil {
			c.readErr = wsReadError(err)
			return n, c.readErr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// rejectText sends the client a close frame that gives the reason, and
// fails the reads.
// readMu must be held.
func (c *wsConn) rejectText() {
	msg := websocket.FormatCloseMessage(websocket.CloseUnsupportedData, "MQTT requires binary messages")
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeFrameTimeout))
	c.readErr = errTextFrame
}

// wsReadError maps a normal close by the client to io.EOF, as a TCP FIN
// would read, and wraps other errors.
func wsReadError(err error) error {
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
		return io.EOF
	}
	return fmt.Errorf("transport: WebSocket read: %w", err)
}

// Write sends p as one binary message. An empty p sends nothing.
func (c *wsConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, fmt.Errorf("transport: WebSocket write: %w", err)
	}
	return len(p), nil
}

// Close sends a close frame with status 1000 and closes the socket. It does
// not wait for the client's close frame, so the close frame's write
// deadline, closeFrameTimeout, bounds how long Close blocks. Close is
// idempotent.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		// The write fails when the client closed first and the close
		// handler already replied, which needs no other action.
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeFrameTimeout))
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}

func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetReadDeadline sets the read deadline. NOTE: gorilla/websocket treats an
// expired read deadline as a permanent error, so a read that times out ends
// the connection, unlike a TCP read.
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of data writes. As with reads, a write
// that times out ends the connection.
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.ws.SetReadDeadline(t), c.ws.SetWriteDeadline(t))
}
