package breakers

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// TestProtocolAbuse_OneConnectionOnly sends malformed and forbidden packets
// after a v5 CONNECT and checks that only that connection gets DISCONNECT
// with the reason code MQTT 5.0 names, and that a probe client still connects.
func TestProtocolAbuse_OneConnectionOnly(t *testing.T) {
	b := startBroker(t)
	cases := []struct {
		name   string
		data   []byte
		reason byte
	}{
		{"publish QoS 3", pkt(typePublish, 6, append(str("a/b"), 0, 1, 0)), 0x81},
		{"publish QoS 1 packet id 0", publishPacket(5, "a/b", []byte("x"), 1, 0, false, nil), 0x82},
		{"publish wildcard topic", publishPacket(5, "a/+", []byte("x"), 1, 1, false, nil), 0x90},
		{"publish topic with U+0000", publishPacket(5, "a\x00b", []byte("x"), 1, 1, false, nil), 0x81},
		{"publish topic alias 0", publishPacket(5, "a/b", []byte("x"), 1, 1, false, []byte{0x23, 0, 0}), 0x82},
		{"publish topic alias above maximum", publishPacket(5, "a/b", []byte("x"), 1, 1, false, []byte{0x23, 0xff, 0xff}), 0x94},
		{"publish unknown topic alias", publishPacket(5, "", []byte("x"), 1, 1, false, []byte{0x23, 0, 5}), 0x82},
		{"publish duplicate property", publishPacket(5, "a/b", []byte("x"), 1, 1, false, []byte{0x01, 1, 0x01, 1}), 0x82},
		{"second CONNECT", connectPacket(connectOpts{clientID: "again", clean: true}), 0x82},
		{"CONNACK from client", pkt(typeConnack, 0, []byte{0, 0, 0}), 0x82},
		{"SUBSCRIBE with flags 0", pkt(typeSubscribe, 0, append([]byte{0, 1, 0}, append(str("a"), 0)...)), 0x81},
		{"packet over maximum size", publishPacket(5, "a/b", bytes.Repeat([]byte("x"), 1<<20+10), 0, 0, false, nil), 0x95},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := connect(t, b.addr, connectOpts{clientID: "abuser", clean: true})
			// The broker may close the socket before it has read a large
			// packet, so a failed write is expected here.
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			c.Write(tc.data)
			p, err := c.read(10 * time.Second)
			if err != nil {
				t.Fatalf("no DISCONNECT, connection ended with %v", err)
			}
			if p.typ != typeDisconnect || len(p.body) == 0 || p.body[0] != tc.reason {
				t.Fatalf("got %v, expected DISCONNECT %#x", p, tc.reason)
			}
			probe, ack := connect(t, b.addr, connectOpts{clientID: "probe", clean: true})
			probe.Close()
			if code := connackCode(ack); code != 0 {
				t.Fatalf("probe CONNACK %#x after the abuse", code)
			}
		})
	}
}

// TestConnectionFlood_IdleSockets opens 1,500 sockets from 127.0.0.2 to
// 127.0.0.31 that never send CONNECT, and checks that a probe still connects,
// that VmRSS stays within 64 MiB of its start and that the sockets are closed
// by the connect timeout.
func TestConnectionFlood_IdleSockets(t *testing.T) {
	const sockets = 1500
	cfg := writeFile(t, t.TempDir(), "starling.yaml", "keepalive:\n  connect_timeout: 2s\n")
	b := startBroker(t, "--config", cfg)
	rssBefore := b.rssKB()

	conns := make([]net.Conn, 0, sockets)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < sockets; i++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%30))}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", b.addr)
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		conns = append(conns, c)
	}

	probe, ack := connect(t, b.addr, connectOpts{clientID: "probe", clean: true})
	probe.Close()
	if code := connackCode(ack); code != 0 {
		t.Fatalf("probe CONNACK %#x during the flood", code)
	}
	rssDuring := b.rssKB()
	if grown := rssDuring - rssBefore; grown > 64*1024 {
		t.Errorf("VmRSS grew by %d kB for %d idle sockets", grown, sockets)
	}

	time.Sleep(3 * time.Second)
	open := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		var buf [1]byte
		if _, err := c.Read(buf[:]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	t.Logf("VmRSS %d kB before, %d kB with %d idle sockets; %d still open after the connect timeout", rssBefore, rssDuring, sockets, open)
	if open > 0 {
		t.Errorf("%d of %d sockets without CONNECT are still open after connect_timeout", open, sockets)
	}
}
