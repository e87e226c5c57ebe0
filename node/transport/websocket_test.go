package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// websocketDialerVia returns a Dialer that runs before on each new TCP
// connection, for example to send a PROXY header.
func websocketDialerVia(before func(net.Conn) error, tlsCfg *tls.Config) *websocket.Dialer {
	return &websocket.Dialer{
		Subprotocols:     []string{"mqtt"},
		TLSClientConfig:  tlsCfg,
		HandshakeTimeout: waitTimeout,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if err := before(nc); err != nil {
				nc.Close()
				return nil, err
			}
			return nc, nil
		},
	}
}

// wsPair returns a client WebSocket and the server Conn of a ws listener.
func wsPair(t *testing.T, cfg Config) (*websocket.Conn, *Conn, *Listener) {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = "ws://127.0.0.1:0"
	}
	l := startListener(t, cfg)
	ws, err := dialWS(t, l, "ws", nil)
	if err != nil {
		t.Fatalf("ws dial: %v", err)
	}
	return ws, acceptConn(t, l), l
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("server read of %d bytes: %v", n, err)
	}
	return b
}

// readClose reads from the client until the server's close frame and
// returns its code.
func readClose(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			t.Fatalf("client read: %v, want a close frame", err)
		}
	}
}

var publishPacket = []byte{0x30, 0x0b, 0x00, 0x03, 'a', '/', 'b', 'h', 'e', 'l', 'l', 'o', '!'}

func TestWSConn_PacketSplitAcrossMessages(t *testing.T) {
	ws, c, _ := wsPair(t, Config{})
	for _, part := range [][]byte{publishPacket[:1], publishPacket[1:6], publishPacket[6:]} {
		if err := ws.WriteMessage(websocket.BinaryMessage, part); err != nil {
			t.Fatalf("client write: %v", err)
		}
	}
	if got := readN(t, c, len(publishPacket)); !bytes.Equal(got, publishPacket) {
		t.Fatalf("read %x, want %x", got, publishPacket)
	}
}

func TestWSConn_PacketSplitAcrossFrames(t *testing.T) {
	l := startListener(t, Config{URL: "ws://127.0.0.1:0"})
	// gorilla/websocket sends a message larger than its write buffer as a
	// first frame and continuation frames.
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, WriteBufferSize: 64, HandshakeTimeout: waitTimeout}
	ws, resp, err := d.Dial("ws://"+l.Addr().String()+"/mqtt", nil)
	if err != nil {
		t.Fatalf("ws dial: %v", err)
	}
	resp.Body.Close()
	defer ws.Close()
	c := acceptConn(t, l)

	packet := append([]byte{0x30, 0xe8, 0x07, 0x00, 0x01, 't'}, bytes.Repeat([]byte("p"), 997)...)
	w, err := ws.NextWriter(websocket.BinaryMessage)
	if err != nil {
		t.Fatalf("NextWriter: %v", err)
	}
	if _, err := w.Write(packet); err != nil {
		t.Fatalf("write fragmented message: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close message: %v", err)
	}
	if got := readN(t, c, len(packet)); !bytes.Equal(got, packet) {
		t.Fatalf("read %d bytes that differ from the %d-byte packet", len(got), len(packet))
	}
}

func TestWSConn_SeveralPacketsInOneMessage(t *testing.T) {
	ws, c, _ := wsPair(t, Config{})
	pingreq := []byte{0xc0, 0x00}
	msg := append(append(append([]byte(nil), publishPacket...), pingreq...), publishPacket...)
	if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		t.Fatalf("client write: %v", err)
	}
	// Read with small buffers, as a packet decoder reads a header first.
	var got []byte
	buf := make([]byte, 3)
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	for len(got) < len(msg) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("server read: %v", err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("read %x, want %x", got, msg)
	}
}

func TestWSConn_EmptyMessageSkipped(t *testing.T) {
	ws, c, _ := wsPair(t, Config{})
	for _, m := range [][]byte{{}, publishPacket} {
		if err := ws.WriteMessage(websocket.BinaryMessage, m); err != nil {
			t.Fatalf("client write: %v", err)
		}
	}
	if got := readN(t, c, len(publishPacket)); !bytes.Equal(got, publishPacket) {
		t.Fatalf("read %x, want %x", got, publishPacket)
	}
}

func TestWSConn_TextMessageRejected(t *testing.T) {
	ws, c, _ := wsPair(t, Config{})
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatalf("client write: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, errTextFrame) {
		t.Fatalf("server read = %v, want errTextFrame", err)
	}
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, errTextFrame) {
		t.Fatalf("second server read = %v, want errTextFrame again", err)
	}
	if code := readClose(t, ws); code != websocket.CloseUnsupportedData {
		t.Fatalf("close code = %d, want %d", code, websocket.CloseUnsupportedData)
	}
}

func TestWSConn_MessageOverLimit(t *testing.T) {
	ws, c, _ := wsPair(t, Config{WSMaxMessageSize: 100})
	if err := ws.WriteMessage(websocket.BinaryMessage, make([]byte, 101)); err != nil {
		t.Fatalf("client write: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := io.ReadFull(c, make([]byte, 101))
	if !errors.Is(err, websocket.ErrReadLimit) {
		t.Fatalf("server read = %v, want websocket.ErrReadLimit", err)
	}
	if code := readClose(t, ws); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code = %d, want %d", code, websocket.CloseMessageTooBig)
	}
}

func TestWSConn_PingAnswered(t *testing.T) {
	ws, c, _ := wsPair(t, Config{})
	pong := make(chan string, 1)
	ws.SetPongHandler(func(data string) error {
		pong <- data
		return nil
	})
	// Control frames are handled inside reads, so both sides read.
	go io.Copy(io.Discard, c)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()

	if err := ws.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(waitTimeout)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	select {
	case data := <-pong:
		if data != "are you there" {
			t.Fatalf("pong data = %q", data)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no pong")
	}
	c.Close()
	ws.Close()
}

func TestWSConn_ClientCloseIsEOF(t *testing.T) {
	ws, c, _ := wsPair(t, Config{})
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(waitTimeout)); err != nil {
		t.Fatalf("client close: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, io.EOF) {
		t.Fatalf("server read after close = %v, want io.EOF", err)
	}
	// The server replies to the close frame.
	if code := readClose(t, ws); code != websocket.CloseNormalClosure {
		t.Fatalf("close code = %d, want %d", code, websocket.CloseNormalClosure)
	}
}

func TestWSConn_ServerCloseSendsCloseFrame(t *testing.T) {
	ws, c, l := wsPair(t, Config{})
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if code := readClose(t, ws); code != websocket.CloseNormalClosure {
		t.Fatalf("close code = %d, want %d", code, websocket.CloseNormalClosure)
	}
	if cur := l.Stats().Current; cur != 0 {
		t.Fatalf("Current = %d after Close, want 0", cur)
	}
}

func TestWSConn_ConcurrentWrites(t *testing.T) {
	ws, c, _ := wsPair(t, Config{})
	const writers, writes = 4, 50
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range writes {
				if _, err := c.Write(publishPacket); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	for i := range writers * writes {
		ws.SetReadDeadline(time.Now().Add(waitTimeout))
		_, m, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("client read %d: %v", i, err)
		}
		if !bytes.Equal(m, publishPacket) {
			t.Fatalf("message %d = %x, want %x", i, m, publishPacket)
		}
	}
	wg.Wait()
}

func TestWebSocketUpgrade_Rejects(t *testing.T) {
	for _, tc := range []struct {
		name         string
		path         string
		subprotocols []string
		status       int
	}{
		{"wrong-path", "/other", []string{"mqtt"}, http.StatusNotFound},
		{"no-subprotocol", "/mqtt", nil, http.StatusBadRequest},
		{"other-subprotocol", "/mqtt", []string{"chat"}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startListener(t, Config{URL: "ws://127.0.0.1:0"})
			d := websocket.Dialer{Subprotocols: tc.subprotocols, HandshakeTimeout: waitTimeout}
			ws, resp, err := d.Dial("ws://"+l.Addr().String()+tc.path, nil)
			if err == nil {
				ws.Close()
				t.Fatal("dial succeeded")
			}
			if resp == nil {
				t.Fatalf("dial failed without a response: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			waitRejected(t, l, ReasonWSUpgrade, 1)
		})
	}
}

func TestWebSocketUpgrade_PlainHTTP(t *testing.T) {
	l := startListener(t, Config{URL: "ws://127.0.0.1:0"})
	resp, err := http.Get("http://" + l.Addr().String() + "/mqtt")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
	waitRejected(t, l, ReasonWSUpgrade, 1)
}

func TestWebSocketUpgrade_MQTT31Subprotocol(t *testing.T) {
	l := startListener(t, Config{URL: "ws://127.0.0.1:0/custom"})
	d := websocket.Dialer{Subprotocols: []string{"mqttv3.1"}, HandshakeTimeout: waitTimeout}
	ws, resp, err := d.Dial("ws://"+l.Addr().String()+"/custom", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	defer ws.Close()
	if ws.Subprotocol() != "mqttv3.1" {
		t.Fatalf("subprotocol = %q, want mqttv3.1", ws.Subprotocol())
	}
	acceptConn(t, l)
}

func TestWebSocketUpgrade_Timeout(t *testing.T) {
	l := startListener(t, Config{URL: "ws://127.0.0.1:0", WSHandshakeTimeout: 200 * time.Millisecond})
	nc := dialTCP(t, l)
	if _, err := nc.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatalf("write: %v", err)
	}
	waitRejected(t, l, ReasonWSUpgrade, 1)
	expectClosed(t, nc)
}

func TestWebSocketUpgrade_RequestTooLarge(t *testing.T) {
	l := startListener(t, Config{URL: "ws://127.0.0.1:0"})
	nc := dialTCP(t, l)
	req := append([]byte("GET /mqtt HTTP/1.1\r\nX-Big: "), bytes.Repeat([]byte("a"), wsMaxRequestBytes)...)
	// The write may fail once the server has closed the connection.
	_, _ = nc.Write(req)
	waitRejected(t, l, ReasonWSUpgrade, 1)
}
