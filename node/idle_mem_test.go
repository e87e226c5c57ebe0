//go:build linux

package node

import (
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// BenchmarkIdleConnMemory measures what one idle MQTT 3.1.1 connection
// (clean session, keep alive 60 s, no subscriptions) keeps in the broker:
// live heap bytes after a full GC and goroutine stack bytes. The clients
// are raw blocking sockets made with syscalls, so they add nothing to the
// Go heap. With STARLING_IDLE_HEAP_PROFILE=FILE it records every
// allocation and writes a heap profile of the held connections to FILE.
func BenchmarkIdleConnMemory(b *testing.B) {
	const conns = 2000
	profile := os.Getenv("STARLING_IDLE_HEAP_PROFILE")
	if profile != "" {
		runtime.MemProfileRate = 1
		defer func() { runtime.MemProfileRate = 512 * 1024 }()
	}
	srv := benchServer(b)
	addr := netip.MustParseAddrPort(srv.addr())
	connect, err := (&packet.Connect{ProtocolName: "MQTT", ProtocolVersion: packet.Version311, CleanStart: true, KeepAlive: 60}).Encode(nil, packet.Version311)
	if err != nil {
		b.Fatal(err)
	}

	for i := 0; i < b.N; i++ {
		before := idleMemSnapshot()
		fds := make([]int, 0, conns)
		for range conns {
			fds = append(fds, rawDialMQTT(b, addr, connect))
		}
		waitForIdle(b, srv, conns)
		after := idleMemSnapshot()
		if profile != "" {
			f, err := os.Create(profile)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		b.ReportMetric(float64(after.heap-before.heap)/conns, "heap-B/conn")
		b.ReportMetric(float64(after.stack-before.stack)/conns, "stack-B/conn")
		b.ReportMetric(float64(after.goroutines-before.goroutines)/conns, "goroutines/conn")
		b.ReportMetric(float64(after.allocated-before.allocated)/conns, "alloc-B/conn")
		b.ReportMetric(float64(after.mallocs-before.mallocs)/conns, "allocs/conn")
		for _, fd := range fds {
			syscall.Close(fd)
		}
		waitForIdle(b, srv, 0)
	}
}

type idleMem struct {
	heap, stack        uint64
	allocated, mallocs uint64 // cumulative
	goroutines         int
}

// idleMemSnapshot collects garbage twice, so that finalizers of the first
// cycle have run, and returns the live heap and stack bytes.
func idleMemSnapshot() idleMem {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return idleMem{heap: ms.HeapAlloc, stack: ms.StackInuse, allocated: ms.TotalAlloc, mallocs: ms.Mallocs,
		goroutines: runtime.NumGoroutine()}
}

// waitForIdle waits until the server holds n connections and their
// readers have parked.
func waitForIdle(b *testing.B, srv *Server, n int) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		srv.mu.Lock()
		got := len(srv.mu.conns)
		srv.mu.Unlock()
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("server holds %d connections, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // past activeLinger
}

// rawDialMQTT connects a blocking socket, sends connect and reads the
// 4-byte CONNACK of a successful MQTT 3.1.1 connection.
func rawDialMQTT(b *testing.B, addr netip.AddrPort, connect []byte) int {
	b.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatalf("socket: %v", err)
	}
	sa := &syscall.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	if err := syscall.Connect(fd, sa); err != nil {
		b.Fatalf("connect: %v", err)
	}
	if _, err := syscall.Write(fd, connect); err != nil {
		b.Fatalf("write CONNECT: %v", err)
	}
	var connack [4]byte
	for n := 0; n < len(connack); {
		m, err := syscall.Read(fd, connack[n:])
		if err != nil || m <= 0 {
			b.Fatalf("read CONNACK: %d bytes, %v", m, err)
		}
		n += m
	}
	if connack[0] != 0x20 || connack[3] != 0 {
		b.Fatalf("CONNACK % x, want success", connack)
	}
	return fd
}
