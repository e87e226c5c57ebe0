package bench

import (
	"bufio"
	"net"
	"sync"
	"testing"
)

// startSilentBroker starts a TCP server that replies to CONNECT with CONNACK
// and to SUBSCRIBE with SUBACK (QoS 2 granted) and ignores every other
// packet, so it acknowledges no PUBLISH and delivers nothing. It stops when
// the test ends.
func startSilentBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveSilently(nc)
			}()
		}
	}()

	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func serveSilently(nc net.Conn) {
	c := &conn{nc: nc, reader: bufio.NewReader(nc)}
	c.mu.w = bufio.NewWriter(nc)
	for {
		f, err := c.readFrame()
		if err != nil {
			return
		}
		switch f.packetType() {
		case typeConnect:
			_ = c.write([]byte{typeConnack << 4, 2, 0, 0})
		case typeSubscribe:
			_ = c.write([]byte{typeSuback << 4, 3, f.body[0], f.body[1], 2})
		default:
			continue
		}
		if err := c.flush(); err != nil {
			return
		}
	}
}
