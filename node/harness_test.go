package node

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/starling-mqtt/starling/node/packet"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Pebble keeps background goroutines for a short while after Close.
		goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble/v2.(*DB).maybeScheduleCompaction"),
	)
}

// testServer starts a node on a free loopback port with data in dir (a new
// temporary directory when dir is ""). It is shut down when the test ends.
func testServer(t *testing.T, dir string, mutate func(*Config)) *Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := Config{
		Listeners: []ListenerConfig{{URL: "tcp://127.0.0.1:0"}},
		DataDir:   dir,
		Logger:    testLogger(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { stopServer(t, srv) })
	return srv
}

// stopServer shuts the server down; calling it twice is harmless.
func stopServer(t *testing.T, srv *Server) {
	t.Helper()
	if srv.closing.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("STARLING_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (s *Server) addr() string { return s.Addrs()[0].String() }

// rawClient speaks MQTT through the project's codec, so tests can send exactly
// the packets they want and see every packet the server sends.
type rawClient struct {
	t       *testing.T
	nc      net.Conn
	br      *bufio.Reader
	version byte
}

func dialRaw(t *testing.T, srv *Server, version byte) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc), version: version}
}

// connect sends CONNECT and returns the CONNACK.
func (c *rawClient) connect(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	if cp.ProtocolVersion == 0 {
		cp.ProtocolVersion = c.version
	}
	if cp.ProtocolName == "" {
		cp.ProtocolName = "MQTT"
		if cp.ProtocolVersion == packet.Version31 {
			cp.ProtocolName = "MQIsdp"
		}
	}
	c.send(cp)
	p := c.read()
	ack, ok := p.(*packet.Connack)
	if !ok {
		c.t.Fatalf("expected CONNACK, got %T", p)
	}
	return ack
}

func (c *rawClient) send(p packet.Packet) {
	c.t.Helper()
	b, err := p.Encode(nil, c.version)
	if err != nil {
		c.t.Fatalf("encode %T: %v", p, err)
	}
	c.sendBytes(b)
}

func (c *rawClient) sendBytes(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next packet, failing the test after 5 seconds.
func (c *rawClient) read() packet.Packet {
	c.t.Helper()
	p, err := c.readTimeout(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

func (c *rawClient) readTimeout(d time.Duration) (packet.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	return packet.Read(c.br, c.version, packet.DefaultMaxPacketSize)
}

// expectClosed reads until the connection closes and returns what it got
// before, failing if it stays open for 5 seconds.
func (c *rawClient) expectClosed() []packet.Packet {
	c.t.Helper()
	var got []packet.Packet
	for {
		p, err := c.readTimeout(5 * time.Second)
		if err == nil {
			got = append(got, p)
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			c.t.Fatalf("connection still open after 5 s; received %d packets", len(got))
		}
		return got
	}
}

// expectPublish reads the next packet and fails unless it is a PUBLISH.
func (c *rawClient) expectPublish() *packet.Publish {
	c.t.Helper()
	p := c.read()
	pub, ok := p.(*packet.Publish)
	if !ok {
		c.t.Fatalf("expected PUBLISH, got %T %+v", p, p)
	}
	return pub
}

// expectNothing fails if a packet arrives within d.
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	p, err := c.readTimeout(d)
	if err == nil {
		c.t.Fatalf("expected nothing, got %T %+v", p, p)
	}
}

// subscribe subscribes and checks the granted codes.
func (c *rawClient) subscribe(pid uint16, subs ...packet.Subscription) []packet.ReasonCode {
	c.t.Helper()
	c.send(&packet.Subscribe{PacketID: pid, Subscriptions: subs})
	p := c.read()
	ack, ok := p.(*packet.Suback)
	if !ok || ack.PacketID != pid {
		c.t.Fatalf("expected SUBACK %d, got %T %+v", pid, p, p)
	}
	return ack.ReasonCodes
}

// publish sends a PUBLISH and, for QoS 1 and 2, completes its flow.
func (c *rawClient) publish(pid uint16, qos byte, topic, payload string, retain bool) {
	c.t.Helper()
	c.send(&packet.Publish{QoS: qos, PacketID: pid, Topic: topic, Payload: []byte(payload), Retain: retain})
	switch qos {
	case 1:
		if ack, ok := c.read().(*packet.Puback); !ok || ack.PacketID != pid {
			c.t.Fatalf("expected PUBACK %d, got %T %+v", pid, ack, ack)
		}
	case 2:
		if rec, ok := c.read().(*packet.Pubrec); !ok || rec.PacketID != pid {
			c.t.Fatalf("expected PUBREC %d, got %T %+v", pid, rec, rec)
		}
		c.send(&packet.Pubrel{PacketID: pid})
		if comp, ok := c.read().(*packet.Pubcomp); !ok || comp.PacketID != pid {
			c.t.Fatalf("expected PUBCOMP %d, got %T %+v", pid, comp, comp)
		}
	}
}

// ack completes a received QoS 1 or 2 PUBLISH.
func (c *rawClient) ack(p *packet.Publish) {
	c.t.Helper()
	switch p.QoS {
	case 1:
		c.send(&packet.Puback{PacketID: p.PacketID})
	case 2:
		c.send(&packet.Pubrec{PacketID: p.PacketID})
		if rel, ok := c.read().(*packet.Pubrel); !ok || rel.PacketID != p.PacketID {
			c.t.Fatalf("expected PUBREL %d, got %T", p.PacketID, rel)
		}
		c.send(&packet.Pubcomp{PacketID: p.PacketID})
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
