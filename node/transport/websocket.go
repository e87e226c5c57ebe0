package transport

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Subprotocols a WebSocket client must offer. MQTT 3.1.1 and 5.0 name
// "mqtt" [MQTT-6.0.0-3] [MQTT-6.0.0-4], and clients of MQTT 3.1 offer
// "mqttv3.1". The listener selects the first of these the client offers.
var wsSubprotocols = []string{"mqtt", "mqttv3.1"}

const (
	// wsMaxRequestBytes bounds the upgrade request line and headers. Browser
	// requests with cookies fit in a few kilobytes.
	wsMaxRequestBytes = 16 << 10

	// wsReadBufferSize is the size of the buffered reader that parses the
	// upgrade request. The WebSocket connection keeps it for reading frames.
	wsReadBufferSize = 4096

	// wsWriteBufferSize is the size of the frame buffers shared through
	// wsWriteBuffers. A write larger than a buffer goes out in one syscall
	// with the buffer, so the size affects copying, not framing.
	wsWriteBufferSize = 4096
)

// wsWriteBuffers lends frame buffers to WebSocket writes. A connection
// holds one only while it writes a message, so an idle connection costs no
// write buffer.
var wsWriteBuffers = &sync.Pool{}

var errWSSubprotocol = errors.New("transport: WebSocket client offers no MQTT subprotocol: offer \"mqtt\"")

// newUpgrader returns the WebSocket upgrader of one listener.
func newUpgrader(handshakeTimeout time.Duration) *websocket.Upgrader {
	return &websocket.Upgrader{
		HandshakeTimeout: handshakeTimeout,
		WriteBufferSize:  wsWriteBufferSize,
		WriteBufferPool:  wsWriteBuffers,
		Subprotocols:     wsSubprotocols,
		// MQTT clients authenticate with MQTT credentials or client
		// certificates, never with cookies, so a page of another origin
		// gains nothing a direct client could not do. Browser clients
		// served from any origin must be able to connect.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, _ *http.Request, status int, _ error) {
			w.WriteHeader(status)
		},
	}
}

// upgradeWebSocket reads an HTTP upgrade request from c before deadline
// and responds with 101 Switching Protocols for a valid WebSocket request on
// path that offers an MQTT subprotocol, an HTTP error otherwise.
func upgradeWebSocket(c net.Conn, u *websocket.Upgrader, path string, readLimit int64, deadline time.Time) (*wsConn, error) {
	if err := c.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("transport: set WebSocket upgrade deadline: %w", err)
	}
	br := bufio.NewReaderSize(&io.LimitedReader{R: c, N: wsMaxRequestBytes}, wsReadBufferSize)
	req, err := http.ReadRequest(br)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// The limit ends the reader with EOF too.
			return nil, fmt.Errorf("transport: read WebSocket upgrade request (closed early, or over %d bytes): %w", wsMaxRequestBytes, err)
		}
		writeHTTPError(c, http.StatusBadRequest)
		return nil, fmt.Errorf("transport: read WebSocket upgrade request: %w", err)
	}

	if req.URL.Path != path {
		writeHTTPError(c, http.StatusNotFound)
		return nil, fmt.Errorf("transport: WebSocket upgrade request for path %q: the listener serves %q", req.URL.Path, path)
	}
	if !slices.ContainsFunc(websocket.Subprotocols(req), func(p string) bool { return slices.Contains(wsSubprotocols, p) }) {
		writeHTTPError(c, http.StatusBadRequest)
		return nil, errWSSubprotocol
	}

	rw := &upgradeResponse{conn: c, reader: br, header: http.Header{}}
	ws, err := u.Upgrade(rw, req, nil)
	if err != nil {
		if !rw.hijacked {
			writeHTTPError(c, rw.status)
		}
		return nil, fmt.Errorf("transport: WebSocket upgrade: %w", err)
	}
	ws.SetReadLimit(readLimit)
	return newWSConn(ws), nil
}

// writeHTTPError sends the HTTP error response of a failed upgrade. The connection closes after it,
// so errors are of no use and ignored.
func writeHTTPError(c net.Conn, status int) {
	if status == 0 {
		status = http.StatusBadRequest
	}
	_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		status, http.StatusText(status))
}

// upgradeResponse is the http.ResponseWriter that websocket.Upgrader
// needs. It hands the connection over on Hijack and records the status of
// a failed upgrade, which upgradeWebSocket then writes.
type upgradeResponse struct {
	conn     net.Conn
	reader   *bufio.Reader
	header   http.Header
	status   int
	hijacked bool
}

func (w *upgradeResponse) Header() http.Header { return w.header }

func (w *upgradeResponse) WriteHeader(status int) { w.status = status }

// Write discards an error body: writeHTTPError sends none.
func (w *upgradeResponse) Write(p []byte) (int, error) { return len(p), nil }

// Hijack returns the connection with the reader that parsed the request.
// The upgrader rejects a client whose frames arrived before the 101
// response, because the reader would otherwise drop them. It then resets the
// reader onto the connection, which also ends the request size limit.
func (w *upgradeResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	return w.conn, bufio.NewReadWriter(w.reader, bufio.NewWriterSize(w.conn, 16)), nil
}
