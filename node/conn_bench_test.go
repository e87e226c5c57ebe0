package node

import (
	"context"
	"io"
	"net"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/storage"
)

// BenchmarkQoS1RoundTrip measures one QoS 1 message at a time over loopback
// TCP: PUBLISH, PUBACK to the publisher, PUBLISH to the one subscriber and its
// PUBACK. That is the pattern of a moderate rate, where nothing batches. It
// reports allocations and goroutines created per message, client included.
func BenchmarkQoS1RoundTrip(b *testing.B) {
	for _, tc := range []struct {
		name       string
		persistent bool
	}{
		{name: "clean-subscriber"},
		{name: "persistent-subscriber-relaxed", persistent: true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := benchServer(b)
			sub := benchDial(b, srv, "bench-sub", !tc.persistent)
			benchWrite(b, sub, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "bench/0", QoS: 1}}})
			suback := make([]byte, 5)
			benchRead(b, sub, suback)
			pub := benchDial(b, srv, "bench-pub", true)

			payload := make([]byte, 64)
			publish, err := (&packet.Publish{QoS: 1, PacketID: 1, Topic: "bench/0", Payload: payload}).Encode(nil, packet.Version311)
			if err != nil {
				b.Fatal(err)
			}
			puback := make([]byte, 4)
			delivered := make([]byte, len(publish))
			ack := []byte{0x40, 2, 0, 0}

			created := goroutinesCreated()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				benchWriteBytes(b, pub, publish)
				benchRead(b, pub, puback)
				benchRead(b, sub, delivered)
				ack[2], ack[3] = delivered[len(delivered)-len(payload)-2], delivered[len(delivered)-len(payload)-1]
				benchWriteBytes(b, sub, ack)
			}
			b.StopTimer()
			b.ReportMetric(float64(goroutinesCreated()-created)/float64(b.N), "goroutines/op")
		})
	}
}

// goroutinesCreated returns how many goroutines the process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// benchServer starts a node with relaxed durability, so that a benchmark
// measures the broker's own work rather than fsync.
func benchServer(b *testing.B) *Server {
	b.Helper()
	return startBenchServer(b, Config{
		Listeners:  []ListenerConfig{{URL: "tcp://127.0.0.1:0"}},
		DataDir:    b.TempDir(),
		Logger:     testLogger(),
		Durability: storage.DurabilityRelaxed,
	})
}

// startBenchServer starts a node with cfg and shuts it down when b ends.
func startBenchServer(b *testing.B, cfg Config) *Server {
	b.Helper()
	srv, err := New(cfg)
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		b.Fatalf("Start: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			b.Errorf("Shutdown: %v", err)
		}
	})
	return srv
}

// benchDial connects an MQTT 3.1.1 client and reads its CONNACK.
func benchDial(b *testing.B, srv *Server, clientID string, clean bool) net.Conn {
	b.Helper()
	nc, err := net.DialTimeout("tcp", srv.addr(), 5*time.Second)
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	b.Cleanup(func() { nc.Close() })
	benchWrite(b, nc, &packet.Connect{ProtocolName: "MQTT", ProtocolVersion: packet.Version311, ClientID: clientID, CleanStart: clean, KeepAlive: 60})
	connack := make([]byte, 4)
	benchRead(b, nc, connack)
	if connack[0] != 0x20 || connack[3] != 0 {
		b.Fatalf("CONNACK % x, want success", connack)
	}
	return nc
}

func benchWrite(b *testing.B, nc net.Conn, p packet.Packet) {
	b.Helper()
	buf, err := p.Encode(nil, packet.Version311)
	if err != nil {
		b.Fatalf("encode %T: %v", p, err)
	}
	benchWriteBytes(b, nc, buf)
}

func benchWriteBytes(b *testing.B, nc net.Conn, buf []byte) {
	if _, err := nc.Write(buf); err != nil {
		b.Fatalf("write: %v", err)
	}
}

// benchRead reads exactly len(buf) bytes, because the benchmark expects
// packets of known sizes.
func benchRead(b *testing.B, nc net.Conn, buf []byte) {
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(nc, buf); err != nil {
		b.Fatalf("read: %v", err)
	}
}
