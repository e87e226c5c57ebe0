package node

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/router"
	"github.com/starling-mqtt/starling/storage"
)

// BenchmarkFanOutQoS0 measures the local fan-out path: one QoS 0 PUBLISH over
// loopback TCP, delivered to every one of n clean subscribers of its topic.
// An op is one published message. The subscribers live in a child process
// (TestFanOutClients), so the allocations and time counted here are the
// broker's and the publisher's, and 10,000 subscribers need only 10,000
// descriptors in this process.
func BenchmarkFanOutQoS0(b *testing.B) {
	for _, n := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("subscribers-%d", n), func(b *testing.B) {
			raiseFileLimit(b, uint64(n+256))
			srv := benchServerWith(b, func(cfg *Config) {
				cfg.Listeners[0].MaxConnRate = 1e6
			})
			publish, err := (&packet.Publish{Topic: "fan/t", Payload: make([]byte, 64)}).Encode(nil, packet.Version311)
			if err != nil {
				b.Fatal(err)
			}
			clients := startFanOutClients(b, srv.addr(), n, len(publish))
			pub := benchDial(b, srv, "fan-pub", true)
			done := make([]byte, 1)

			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				benchWriteBytes(b, pub, publish)
				if _, err := io.ReadFull(clients, done); err != nil {
					b.Fatalf("subscriber process: %v", err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}

// startFanOutClients runs this test binary again as TestFanOutClients with n
// subscribers of fan/t on addr, waits until all have their SUBACK, and
// returns the child's output: one byte per message that every subscriber
// has read. The child ends when the benchmark does.
func startFanOutClients(b *testing.B, addr string, n, msgLen int) io.Reader {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFanOutClients$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("STARLING_FANOUT=%s,%d,%d", addr, n, msgLen))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start subscriber process: %v", err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make([]byte, 1)
	if _, err := io.ReadFull(out, ready); err != nil || ready[0] != 'R' {
		b.Fatalf("subscriber process did not start: %v", err)
	}
	return out
}

// TestFanOutClients is the child process of BenchmarkFanOutQoS0, and it does
// nothing in a normal test run. It connects the subscribers, writes 'R',
// then for every message that each subscriber has read writes one byte.
func TestFanOutClients(t *testing.T) {
	spec := os.Getenv("STARLING_FANOUT")
	if spec == "" {
		t.Skip("child process of BenchmarkFanOutQoS0")
	}
	var addr string
	var n, msgLen int
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		t.Fatalf("STARLING_FANOUT=%q, want ADDR,N,LEN", spec)
	}
	addr = parts[0]
	n, _ = strconv.Atoi(parts[1])
	msgLen, _ = strconv.Atoi(parts[2])
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < uint64(n+64) {
		lim.Cur = min(lim.Max, uint64(n+64))
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}

	subs := make([]net.Conn, n)
	suback := make([]byte, 5)
	for i := range subs {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial subscriber %d: %v", i, err)
		}
		subs[i] = nc
		connect, _ := (&packet.Connect{ProtocolName: "MQTT", ProtocolVersion: packet.Version311, ClientID: fmt.Sprintf("fan-sub-%d", i), CleanStart: true, KeepAlive: 0}).Encode(nil, packet.Version311)
		subscribe, _ := (&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "fan/t", QoS: 0}}}).Encode(nil, packet.Version311)
		if _, err := nc.Write(append(connect, subscribe...)); err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
		connack := make([]byte, 4)
		if _, err := io.ReadFull(nc, connack); err != nil || connack[3] != 0 {
			t.Fatalf("subscriber %d CONNACK % x: %v", i, connack, err)
		}
		if _, err := io.ReadFull(nc, suback); err != nil {
			t.Fatalf("subscriber %d SUBACK: %v", i, err)
		}
	}
	os.Stdout.Write([]byte{'R'})

	msg := make([]byte, msgLen)
	for {
		for _, nc := range subs {
			if _, err := io.ReadFull(nc, msg); err != nil {
				return // the benchmark ended and closed the server
			}
		}
		if _, err := os.Stdout.Write([]byte{'.'}); err != nil {
			return
		}
	}
}

// BenchmarkSharedPick measures choosing the member of a shared group for one
// message, by each strategy, among 4 and 100 members (offline sessions, so
// every member is a candidate).
func BenchmarkSharedPick(b *testing.B) {
	for _, strategy := range []string{SharedRoundRobin, SharedRandom, SharedHash, SharedSticky} {
		for _, n := range []int{4, 100} {
			b.Run(fmt.Sprintf("%s/members-%d", strategy, n), func(b *testing.B) {
				srv := benchServerWith(b, func(cfg *Config) { cfg.Features.SharedStrategy = strategy })
				members := make([]router.Entry, n)
				for i := range members {
					id := fmt.Sprintf("member-%d", i)
					srv.reg.put(newSession(srv, id))
					members[i] = router.Entry{ClientID: id, Group: "g", Filter: "fleet/+/state", QoS: 1}
				}
				key := shareKey("g", "fleet/+/state")
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if srv.pickShared(key, members, "publisher-1", "") == nil {
						b.Fatal("no member picked")
					}
				}
			})
		}
	}
}

// benchServerWith is benchServer with a change to the configuration.
func benchServerWith(b *testing.B, mutate func(*Config)) *Server {
	b.Helper()
	cfg := Config{
		Listeners:  []ListenerConfig{{URL: "tcp://127.0.0.1:0"}},
		DataDir:    b.TempDir(),
		Logger:     testLogger(),
		Durability: storage.DurabilityRelaxed,
	}
	mutate(&cfg)
	return startBenchServer(b, cfg)
}

// raiseFileLimit lifts the open-file limit to at least n, or skips the
// benchmark when the process may not.
func raiseFileLimit(b *testing.B, n uint64) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("open-file limit unknown: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	want := lim
	want.Cur = n
	want.Max = max(lim.Max, n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		b.Skipf("needs %d open files, the limit is %d and cannot be raised: %v", n, lim.Cur, err)
	}
}
