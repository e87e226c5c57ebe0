//go:build linux

package node

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// idleConns is how many idle connections BenchmarkIdleConnMemory holds.
const idleConns = 2000

// BenchmarkIdleConnMemory measures what one idle MQTT 3.1.1 connection
// (clean session, keep alive 60 s, no subscriptions) keeps in the broker:
// live heap bytes after a full GC and goroutine stack bytes.
//
// The tcp case dials raw blocking sockets made with syscalls, so the
// clients add nothing to the Go heap. The tls case dials from a child
// process (TestIdleTLSClients) for the same reason. With
// STARLING_IDLE_HEAP_PROFILE=FILE it records every allocation and writes a
// heap profile of the held connections to FILE.
func BenchmarkIdleConnMemory(b *testing.B) {
	connect, err := (&packet.Connect{ProtocolName: "MQTT", ProtocolVersion: packet.Version311, CleanStart: true, KeepAlive: 60}).Encode(nil, packet.Version311)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("tcp", func(b *testing.B) {
		srv := benchServer(b)
		addr := netip.MustParseAddrPort(srv.addr())
		measureIdleConns(b, srv, func() func() {
			fds := make([]int, 0, idleConns)
			for range idleConns {
				fds = append(fds, rawDialMQTT(b, addr, connect))
			}
			return func() {
				for _, fd := range fds {
					syscall.Close(fd)
				}
			}
		})
	})

	b.Run("tls", func(b *testing.B) {
		pki := newTestPKI(b)
		cert, key, _ := pki.issue(b, "server", true)
		srv := startBenchServer(b, Config{
			Listeners: []ListenerConfig{{URL: "tls://127.0.0.1:0", TLS: &TLSConfig{CertFile: cert, KeyFile: key}}},
			DataDir:   b.TempDir(),
			Logger:    testLogger(),
		})
		addr := srv.Addrs()[0].String()
		measureIdleConns(b, srv, func() func() {
			return startTLSClients(b, addr, filepath.Join(pki.dir, "ca.pem"), idleConns)
		})
	})
}

// measureIdleConns reports the memory per connection of the idleConns
// connections that dial opens, and closes them with the function dial
// returns.
func measureIdleConns(b *testing.B, srv *Server, dial func() (hangUp func())) {
	profile := os.Getenv("STARLING_IDLE_HEAP_PROFILE")
	if profile != "" {
		runtime.MemProfileRate = 1
		defer func() { runtime.MemProfileRate = 512 * 1024 }()
	}
	for i := 0; i < b.N; i++ {
		before := idleMemSnapshot()
		hangUp := dial()
		waitForIdle(b, srv, idleConns)
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
		// Converted before subtracting: the stack can shrink while the
		// connections are held.
		b.ReportMetric((float64(after.heap)-float64(before.heap))/idleConns, "heap-B/conn")
		b.ReportMetric((float64(after.stack)-float64(before.stack))/idleConns, "stack-B/conn")
		b.ReportMetric(float64(after.goroutines-before.goroutines)/idleConns, "goroutines/conn")
		b.ReportMetric(float64(after.allocated-before.allocated)/idleConns, "alloc-B/conn")
		b.ReportMetric(float64(after.mallocs-before.mallocs)/idleConns, "allocs/conn")
		hangUp()
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

// Environment of the child process that TestIdleTLSClients runs in.
const (
	envIdleTLSAddr  = "STARLING_IDLE_TLS_ADDR"
	envIdleTLSCA    = "STARLING_IDLE_TLS_CA"
	envIdleTLSConns = "STARLING_IDLE_TLS_CONNS"
)

// startTLSClients starts a child process that holds n idle MQTT
// connections over TLS to addr, and returns once all of them have their
// CONNACK. The returned function ends the child, which closes them.
func startTLSClients(b *testing.B, addr, caFile string, n int) (hangUp func()) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleTLSClients$", "-test.count=1")
	cmd.Env = append(os.Environ(), envIdleTLSAddr+"="+addr, envIdleTLSCA+"="+caFile, envIdleTLSConns+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr

	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}

	hangUp = func() {
		stdin.Close()
		cmd.Wait()
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- nil
				io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- fmt.Errorf("TLS client process ended before its connections were ready: %v", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			hangUp()
			b.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		hangUp()
		b.Fatal("TLS client process: connections not ready after 60 s")
	}
	return hangUp
}

// TestIdleTLSClients is the child process of BenchmarkIdleConnMemory/tls,
// not a test: without its environment it returns at once. It opens the
// connections, prints "ready" and holds them until its stdin closes.
func TestIdleTLSClients(t *testing.T) {
	addr := os.Getenv(envIdleTLSAddr)
	if addr == "" {
		return
	}
	n, err := strconv.Atoi(os.Getenv(envIdleTLSConns))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(os.Getenv(envIdleTLSCA))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in " + os.Getenv(envIdleTLSCA))
	}
	cfg := &tls.Config{RootCAs: pool}

	connect, err := (&packet.Connect{ProtocolName: "MQTT", ProtocolVersion: packet.Version311, CleanStart: true, KeepAlive: 60}).Encode(nil, packet.Version311)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if _, err := c.Write(connect); err != nil {
			t.Fatalf("write CONNECT: %v", err)
		}
		var connack [4]byte
		if _, err := io.ReadFull(c, connack[:]); err != nil || connack[0] != 0x20 || connack[3] != 0 {
			t.Fatalf("CONNACK % x, %v: want success", connack, err)
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")

	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}
