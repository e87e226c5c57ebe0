package transport

import (
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/gorilla/websocket"
)

// benchPair returns a server-side adapter and a client WebSocket joined by
// a loopback TCP connection, without a Listener in between.
func benchPair(b *testing.B) (*wsConn, *websocket.Conn) {
	b.Helper()
	ln, err := Listen(Config{URL: "ws://127.0.0.1:0", Logger: quietLogger()})
	if err != nil {
		b.Fatalf("Listen: %v", err)
	}
	b.Cleanup(func() { ln.Close() })
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	ws, resp, err := d.Dial("ws://"+ln.Addr().String()+"/mqtt", nil)
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	c, err := ln.AcceptConn()
	if err != nil {
		b.Fatalf("accept: %v", err)
	}
	b.Cleanup(func() {
		c.Close()
		ws.Close()
	})
	return c.NetConn().(*wsConn), ws
}

// BenchmarkWSConn_Read measures the adapter reading messages of several
// sizes into a 4 KiB buffer, as a packet reader does.
func BenchmarkWSConn_Read(b *testing.B) {
	for _, size := range []int{64, 1024, 16 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			server, client := benchPair(b)
			msg := make([]byte, size)
			go func() {
				for range b.N {
					if err := client.WriteMessage(websocket.BinaryMessage, msg); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 4096)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			total := int64(size) * int64(b.N)
			for read := int64(0); read < total; {
				n, err := server.Read(buf[:min(int64(len(buf)), total-read)])
				if err != nil {
					b.Fatalf("read: %v", err)
				}
				read += int64(n)
			}
		})
	}
}

// BenchmarkWSConn_Write measures the adapter sending each write as one
// binary message while the client drains them.
func BenchmarkWSConn_Write(b *testing.B) {
	for _, size := range []int{64, 1024, 16 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			server, client := benchPair(b)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					_, r, err := client.NextReader()
					if err != nil {
						return
					}
					if _, err := io.Copy(io.Discard, r); err != nil {
						return
					}
				}
			}()
			msg := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := server.Write(msg); err != nil {
					b.Fatalf("write: %v", err)
				}
			}
			b.StopTimer()
			server.Close()
			<-done
		})
	}
}

// BenchmarkTCPConn_Write is the baseline for BenchmarkWSConn_Write: the same
// writes on the bare loopback socket.
func BenchmarkTCPConn_Write(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		b.Fatalf("accept: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(io.Discard, client)
	}()
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := server.Write(msg); err != nil {
			b.Fatalf("write: %v", err)
		}
	}
	b.StopTimer()
	server.Close()
	<-done
}

func byteSize(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}
