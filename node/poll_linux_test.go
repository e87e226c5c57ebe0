//go:build linux

package node

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// parkedConns returns how many connections sit in the server's idle poller.
func parkedConns(srv *Server) int {
	p := srv.idle
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.mu.byFD {
		if c != nil && c.park.parked {
			n++
		}
	}
	return n
}

// waitParked waits until n connections are parked.
func waitParked(t *testing.T, srv *Server, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, "parked connections", func() bool { return parkedConns(srv) == n })
}

func TestIdlePoller_ParkedConnectionAnswersPing(t *testing.T) {
	srv := testServer(t, "", nil)
	c := dialRaw(t, srv, packet.Version311)
	c.connect(&packet.Connect{ClientID: "parked", CleanStart: true, KeepAlive: 60})
	waitParked(t, srv, 1)

	for i := range 3 {
		c.send(&packet.Pingreq{})
		if _, ok := c.read().(*packet.Pingresp); !ok {
			t.Fatalf("ping %d: expected PINGRESP", i)
		}
		waitParked(t, srv, 1)
	}
}

func TestIdlePoller_KeepAliveClosesParkedConnection(t *testing.T) {
	srv := testServer(t, "", nil)
	for _, version := range []byte{packet.Version311, packet.Version5} {
		c := dialRaw(t, srv, version)
		c.connect(&packet.Connect{ClientID: "keepalive", CleanStart: true, KeepAlive: 1})
		waitParked(t, srv, 1)

		start := time.Now()
		got := c.expectClosed()
		elapsed := time.Since(start)
		// [MQTT-3.1.2-24] One and a half keep alive periods, here 1.5 s,
		// counted from the CONNACK.
		if elapsed < time.Second || elapsed > 3*time.Second {
			t.Errorf("version %d: closed after %v, want about 1.5 s", version, elapsed)
		}
		if version == packet.Version5 {
			if len(got) != 1 {
				t.Fatalf("version 5: got %d packets before close, want a DISCONNECT", len(got))
			}
			if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.ReasonKeepAliveTimeout {
				t.Errorf("version 5: got %T %+v, want DISCONNECT 0x8D", got[0], got[0])
			}
		}
		waitParked(t, srv, 0)
	}
}

func TestIdlePoller_TakeoverOfParkedConnection(t *testing.T) {
	srv := testServer(t, "", nil)
	old := dialRaw(t, srv, packet.Version5)
	old.connect(&packet.Connect{ClientID: "taken", CleanStart: true, KeepAlive: 60})
	waitParked(t, srv, 1)

	next := dialRaw(t, srv, packet.Version5)
	if ack := next.connect(&packet.Connect{ClientID: "taken", CleanStart: true, KeepAlive: 60}); ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("second CONNACK 0x%02X, want success", byte(ack.ReasonCode))
	}
	got := old.expectClosed()
	if len(got) != 1 {
		t.Fatalf("old connection got %d packets, want a DISCONNECT", len(got))
	}
	if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.ReasonSessionTakenOver {
		t.Errorf("old connection got %T %+v, want DISCONNECT 0x8E", got[0], got[0])
	}
	waitParked(t, srv, 1)
}

func TestIdlePoller_ClientCloseEndsParkedConnection(t *testing.T) {
	srv := testServer(t, "", nil)
	c := dialRaw(t, srv, packet.Version311)
	c.connect(&packet.Connect{ClientID: "gone", CleanStart: true, KeepAlive: 0})
	waitParked(t, srv, 1)

	c.nc.Close()
	waitParked(t, srv, 0)
	waitFor(t, 5*time.Second, "the connection to end", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.mu.conns) == 0
	})
}

func TestIdlePoller_ShutdownClosesParkedConnections(t *testing.T) {
	srv := testServer(t, "", nil)
	v3 := dialRaw(t, srv, packet.Version311)
	v3.connect(&packet.Connect{ClientID: "v3", CleanStart: true, KeepAlive: 0})
	v5 := dialRaw(t, srv, packet.Version5)
	v5.connect(&packet.Connect{ClientID: "v5", CleanStart: true, KeepAlive: 0})
	waitParked(t, srv, 2)

	stopServer(t, srv)
	v3.expectClosed()
	got := v5.expectClosed()
	if len(got) != 1 {
		t.Fatalf("version 5 got %d packets, want a DISCONNECT", len(got))
	}
	if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.ReasonServerShuttingDown {
		t.Errorf("version 5 got %T %+v, want DISCONNECT 0x8B", got[0], got[0])
	}
}

func TestIdlePoller_ExpiryLeavesOtherConnectionsOpen(t *testing.T) {
	srv := testServer(t, "", nil)
	const n = 40
	var keep, expire []*rawClient
	for i := range n {
		c := dialRaw(t, srv, packet.Version311)
		c.connect(&packet.Connect{ClientID: fmt.Sprintf("keep-%d", i), CleanStart: true, KeepAlive: 0})
		keep = append(keep, c)
		e := dialRaw(t, srv, packet.Version311)
		e.connect(&packet.Connect{ClientID: fmt.Sprintf("expire-%d", i), CleanStart: true, KeepAlive: uint16(1 + i%2)})
		expire = append(expire, e)
	}
	waitParked(t, srv, 2*n)

	for _, e := range expire {
		e.expectClosed()
	}
	for i, c := range keep {
		c.send(&packet.Pingreq{})
		if p, err := c.readTimeout(5 * time.Second); err != nil {
			t.Fatalf("keep-%d: %v after the others expired", i, err)
		} else if _, ok := p.(*packet.Pingresp); !ok {
			t.Fatalf("keep-%d: got %T, want PINGRESP", i, p)
		}
	}
}

// heldWrites is a client socket that can hold its writes and send them in
// one write system call, so that several TLS records reach the server in
// one TCP segment.
type heldWrites struct {
	net.Conn
	hold bool
	buf  []byte
}

func (h *heldWrites) Write(p []byte) (int, error) {
	if h.hold {
		h.buf = append(h.buf, p...)
		return len(p), nil
	}
	return h.Conn.Write(p)
}

// release sends the held bytes in one write and stops holding.
func (h *heldWrites) release() error {
	h.hold = false
	_, err := h.Conn.Write(h.buf)
	h.buf = nil
	return err
}

func TestIdlePoller_TLSRecordsReadAheadBeforePark(t *testing.T) {
	pki := newTestPKI(t)
	cert, key, _ := pki.issue(t, "server", true)
	srv := testServer(t, "", func(c *Config) {
		c.Listeners = []ListenerConfig{{URL: "tls://127.0.0.1:0", TLS: &TLSConfig{CertFile: cert, KeyFile: key}}}
	})
	nc, err := net.DialTimeout("tcp", srv.addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	held := &heldWrites{Conn: nc}
	tc := tls.Client(held, &tls.Config{RootCAs: pki.caPool, ServerName: "127.0.0.1"})
	c := &rawClient{t: t, nc: tc, br: bufio.NewReader(tc), version: packet.Version311}
	c.connect(&packet.Connect{ClientID: "tls-parked", CleanStart: true, KeepAlive: 60})
	waitParked(t, srv, 1)

	// Two PINGREQs in two TLS records and one TCP segment: crypto/tls on
	// the server reads both records from the socket while it returns the
	// first, so the second must be found before the connection parks.
	// After an idle wait longer than busyGap the reader parks at once,
	// without lingering for more data.
	time.Sleep(busyGap + 200*time.Millisecond)
	held.hold = true
	c.send(&packet.Pingreq{})
	c.send(&packet.Pingreq{})
	if err := held.release(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		p, err := c.readTimeout(3 * time.Second)
		if err != nil {
			t.Fatalf("ping %d: no PINGRESP: %v", i, err)
		}
		if _, ok := p.(*packet.Pingresp); !ok {
			t.Fatalf("ping %d: got %T, want PINGRESP", i, p)
		}
	}
	waitParked(t, srv, 1)

	c.send(&packet.Pingreq{})
	if _, ok := c.read().(*packet.Pingresp); !ok {
		t.Fatal("parked TLS connection: expected PINGRESP")
	}
}
