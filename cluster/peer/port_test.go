package peer

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestPort_Plaintext(t *testing.T) {
	a := startNode(t, Config{NodeName: "n1"})
	b := startNode(t, Config{NodeName: "n2"})

	echoed := raftEcho(a.port)
	if err := raftPing(b.port, a.port.Addr()); err != nil {
		t.Fatalf("raft ping: %v", err)
	}
	if err := <-echoed; err != nil {
		t.Fatalf("raft echo: %v", err)
	}

	resp, err := callStatus(t, b.port, a.port.Addr(), "n1")
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if resp.GetName() != "n1" {
		t.Errorf("Status name = %q, want n1", resp.GetName())
	}
	if resp.GetLeader() != "" {
		t.Errorf("PeerName in plaintext = %q, want none", resp.GetLeader())
	}

	// admit counts a connection after the hand-off, which may be after
	// the call returns.
	waitFor(t, 5*time.Second, "1 raft and 1 gRPC connection in Stats", func() bool {
		st := a.port.Stats()
		return st.RaftConns == 1 && st.GRPCConns == 1
	})
	if st := a.port.Stats(); st.Rejected != 0 {
		t.Errorf("Stats = %+v, want 0 rejected", st)
	}
}

func TestPort_MutualTLS(t *testing.T) {
	ca := newTestCA(t, "peer CA")
	a := startNode(t, Config{NodeName: "n1", TLS: ca.nodeFiles(t, "n1")})
	b := startNode(t, Config{NodeName: "n2", TLS: ca.nodeFiles(t, "n2")})

	echoed := raftEcho(a.port)
	if err := raftPing(b.port, a.port.Addr()); err != nil {
		t.Fatalf("raft ping: %v", err)
	}
	if err := <-echoed; err != nil {
		t.Fatalf("raft echo: %v", err)
	}

	resp, err := callStatus(t, b.port, a.port.Addr(), "n1")
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if resp.GetName() != "n1" {
		t.Errorf("Status name = %q, want n1", resp.GetName())
	}
	if resp.GetLeader() != "n2" {
		t.Errorf("PeerName = %q, want n2", resp.GetLeader())
	}
	if !logContains(a.logs.String(), "peer connection accepted", "node=n2", "protocol=raft") {
		t.Errorf("no Debug line naming n2's raft connection in:\n%s", a.logs)
	}

	// admit counts a connection after the hand-off, which may be after
	// the call returns.
	waitFor(t, 5*time.Second, "1 raft and 1 gRPC connection in Stats", func() bool {
		st := a.port.Stats()
		return st.RaftConns == 1 && st.GRPCConns == 1
	})
	if st := a.port.Stats(); st.Rejected != 0 {
		t.Errorf("Stats = %+v, want 0 rejected", st)
	}
}

func TestPort_ClientCertFromOtherCA(t *testing.T) {
	ca := newTestCA(t, "peer CA")
	other := newTestCA(t, "other CA")
	a := startNode(t, Config{NodeName: "n1", TLS: ca.nodeFiles(t, "n1")})

	// The intruder trusts a's CA, so only a's check of the client
	// certificate can fail.
	files := other.nodeFiles(t, "n2")
	files.CAFile = ca.caFile
	intruder := startNode(t, Config{NodeName: "n2", TLS: files})

	if _, err := callStatus(t, intruder.port, a.port.Addr(), "n1"); err == nil {
		t.Error("Status with a client certificate of another CA succeeded")
	}
	if err := raftPing(intruder.port, a.port.Addr()); err == nil {
		t.Error("raft ping with a client certificate of another CA succeeded")
	}

	waitFor(t, 5*time.Second, "two rejected connections", func() bool { return a.port.Stats().Rejected >= 2 })
	if st := a.port.Stats(); st.RaftConns != 0 || st.GRPCConns != 0 {
		t.Errorf("Stats = %+v, want no connection handed off", st)
	}
	if !logContains(a.logs.String(), "peer connection rejected", "remote=127.0.0.1:", "TLS handshake failed") {
		t.Errorf("no rejection line with the remote address in:\n%s", a.logs)
	}
}

func TestPort_ServerCertNamesOtherNode(t *testing.T) {
	ca := newTestCA(t, "peer CA")
	a := startNode(t, Config{NodeName: "n1", TLS: ca.nodeFiles(t, "n1")})
	b := startNode(t, Config{NodeName: "n2", TLS: ca.nodeFiles(t, "n2")})

	_, err := callStatus(t, b.port, a.port.Addr(), "n3")
	if err == nil {
		t.Fatal("Status to n1 dialed as n3 succeeded")
	}
	if !strings.Contains(err.Error(), "does not name the expected node") {
		t.Errorf("Status error = %v, want one about the node name", err)
	}
}

func TestPort_RaftPeerNameChecked(t *testing.T) {
	ca := newTestCA(t, "peer CA")
	a := startNode(t, Config{NodeName: "n1", TLS: ca.nodeFiles(t, "n1")})
	expect := "n3"
	b := startNode(t, Config{NodeName: "n2", TLS: ca.nodeFiles(t, "n2"),
		RaftPeerName: func(raft.ServerAddress) string { return expect }})

	err := raftPing(b.port, a.port.Addr())
	if err == nil || !strings.Contains(err.Error(), "does not name the expected node") {
		t.Fatalf("raft ping to n1 expecting n3 = %v, want an error about the node name", err)
	}

	expect = "n1"
	echoed := raftEcho(a.port)
	if err := raftPing(b.port, a.port.Addr()); err != nil {
		t.Fatalf("raft ping to n1 expecting n1: %v", err)
	}
	if err := <-echoed; err != nil {
		t.Fatalf("raft echo: %v", err)
	}
}

func TestListen_OwnCertNamesOtherNode(t *testing.T) {
	ca := newTestCA(t, "peer CA")
	logs := &logBuffer{}
	_, err := Listen(Config{Bind: "127.0.0.1:0", NodeName: "n1", TLS: ca.nodeFiles(t, "n2"), Logger: logs.logger()})
	if err == nil || !strings.Contains(err.Error(), "does not name the expected node") {
		t.Fatalf("Listen as n1 with n2's certificate = %v, want an error about the node name", err)
	}
}

func TestListen_NonLoopbackPlaintext(t *testing.T) {
	logs := &logBuffer{}
	_, err := Listen(Config{Bind: "0.0.0.0:0", Advertise: "n1.example:7947", NodeName: "n1", Logger: logs.logger()})
	if !errors.Is(err, ErrPlaintext) {
		t.Fatalf("Listen on 0.0.0.0 without TLS = %v, want ErrPlaintext", err)
	}
	if !strings.Contains(err.Error(), "insecure") {
		t.Errorf("error %q does not name the insecure flag", err)
	}

	p, err := Listen(Config{Bind: "0.0.0.0:0", Advertise: "n1.example:7947", NodeName: "n1", Insecure: true, Logger: logs.logger()})
	if err != nil {
		t.Fatalf("Listen on 0.0.0.0 with Insecure: %v", err)
	}
	defer p.Close()
	if !logContains(logs.String(), "level=WARN", "insecure mode") {
		t.Errorf("no insecure warning in:\n%s", logs)
	}
	if got := p.RaftLayer().Addr().String(); got != "n1.example:7947" {
		t.Errorf("RaftLayer().Addr() = %q, want the advertised n1.example:7947", got)
	}
}

func TestListen_AdvertisePortZero(t *testing.T) {
	logs := &logBuffer{}
	p, err := Listen(Config{Bind: "127.0.0.1:0", Advertise: "n1.example:0", NodeName: "n1", Logger: logs.logger()})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer p.Close()

	_, port, _ := net.SplitHostPort(p.Addr().String())
	if got, want := p.RaftLayer().Addr().String(), "n1.example:"+port; got != want {
		t.Errorf("RaftLayer().Addr() = %q, want %q", got, want)
	}
}

func TestListen_UnspecifiedWithoutAdvertise(t *testing.T) {
	_, err := Listen(Config{Bind: "0.0.0.0:0", NodeName: "n1", Insecure: true})
	if err == nil || !strings.Contains(err.Error(), "Advertise") {
		t.Fatalf("Listen on 0.0.0.0 without Advertise = %v, want an error naming Advertise", err)
	}
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{name: "bind-missing", cfg: Config{NodeName: "n1"}, field: "Config.Bind"},
		{name: "node-name-missing", cfg: Config{Bind: "127.0.0.1:0"}, field: "Config.NodeName"},
		{name: "tls-ca-missing", cfg: Config{Bind: "127.0.0.1:0", NodeName: "n1", TLS: &TLSFiles{CertFile: "c", KeyFile: "k"}}, field: "Config.TLS.CAFile"},
		{name: "advertise-no-port", cfg: Config{Bind: "127.0.0.1:0", NodeName: "n1", Advertise: "n1"}, field: "Config.Advertise"},
		{name: "advertise-port-invalid", cfg: Config{Bind: "127.0.0.1:0", NodeName: "n1", Advertise: "n1:65536"}, field: "Config.Advertise"},
		{name: "advertise-unspecified", cfg: Config{Bind: "127.0.0.1:0", NodeName: "n1", Advertise: "0.0.0.0:7947"}, field: "Config.Advertise"},
		{name: "timeout-negative", cfg: Config{Bind: "127.0.0.1:0", NodeName: "n1", HandshakeTimeout: -time.Second}, field: "Config.HandshakeTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.field)
			}
		})
	}
	if err := (Config{Bind: "127.0.0.1:0", NodeName: "n1"}).Validate(); err != nil {
		t.Errorf("Validate() of a minimal config = %v, want nil", err)
	}
}

func TestPort_GarbageFirstByte(t *testing.T) {
	a := startNode(t, Config{NodeName: "n1"})

	conn, err := net.Dial("tcp", a.port.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	assertClosed(t, conn)

	waitFor(t, 5*time.Second, "a rejected connection", func() bool { return a.port.Stats().Rejected == 1 })
	if !logContains(a.logs.String(), "peer connection rejected", "remote="+conn.LocalAddr().String(), "0x47") {
		t.Errorf("no rejection line naming %s and byte 0x47 in:\n%s", conn.LocalAddr(), a.logs)
	}
}

func TestPort_ALPNMismatch(t *testing.T) {
	ca := newTestCA(t, "peer CA")
	a := startNode(t, Config{NodeName: "n1", TLS: ca.nodeFiles(t, "n1")})
	b := startNode(t, Config{NodeName: "n2", TLS: ca.nodeFiles(t, "n2")})

	// A client that negotiates h2 and then claims to be Raft.
	cfg := b.port.dialConfig("n1", grpcALPN)
	conn, err := tls.Dial("tcp", a.port.Addr().String(), cfg)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{raftByte}); err != nil {
		t.Fatal(err)
	}
	assertClosed(t, conn)

	waitFor(t, 5*time.Second, "a rejected connection", func() bool { return a.port.Stats().Rejected == 1 })
	if !logContains(a.logs.String(), "peer connection rejected", "node=n2", `does not match the ALPN protocol \"h2\"`) {
		t.Errorf("no ALPN mismatch line in:\n%s", a.logs)
	}
}

func TestPort_SilentPeerTimesOut(t *testing.T) {
	a := startNode(t, Config{NodeName: "n1", HandshakeTimeout: 300 * time.Millisecond})

	silent, err := net.Dial("tcp", a.port.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	// The silent connection must not hold up others.
	if _, err := callStatus(t, a.port, a.port.Addr(), "n1"); err != nil {
		t.Fatalf("Status while a peer is silent: %v", err)
	}

	assertClosed(t, silent)
	waitFor(t, 5*time.Second, "a rejected connection", func() bool { return a.port.Stats().Rejected == 1 })
	if !logContains(a.logs.String(), "peer connection rejected", "remote="+silent.LocalAddr().String(), "timed out") {
		t.Errorf("no timeout line naming %s in:\n%s", silent.LocalAddr(), a.logs)
	}
}

func TestPort_TooManyPending(t *testing.T) {
	a := startNode(t, Config{NodeName: "n1", MaxPendingConns: 1})

	first, err := net.Dial("tcp", a.port.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := net.Dial("tcp", a.port.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()

	assertClosed(t, second)
	waitFor(t, 5*time.Second, "a rejected connection", func() bool { return a.port.Stats().Rejected == 1 })
	if !logContains(a.logs.String(), "too many connections in the handshake", "remote="+second.LocalAddr().String()) {
		t.Errorf("no pending-limit line naming %s in:\n%s", second.LocalAddr(), a.logs)
	}
}

func TestPort_Close(t *testing.T) {
	logs := &logBuffer{}
	p, err := Listen(Config{Bind: "127.0.0.1:0", NodeName: "n1", Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}

	pending, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer pending.Close()
	waitFor(t, 5*time.Second, "the pending connection to be accepted", func() bool { return len(p.pending) == 1 })

	raftAccepted := make(chan error, 1)
	go func() {
		_, err := p.RaftLayer().Accept()
		raftAccepted <- err
	}()
	grpcAccepted := make(chan error, 1)
	go func() {
		_, err := p.GRPCListener().Accept()
		grpcAccepted <- err
	}()

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	for name, ch := range map[string]chan error{"raft": raftAccepted, "gRPC": grpcAccepted} {
		select {
		case err := <-ch:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s Accept after Close = %v, want net.ErrClosed", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s Accept still blocked after Close", name)
		}
	}
	assertClosed(t, pending)
	if _, err := net.DialTimeout("tcp", p.Addr().String(), time.Second); err == nil {
		t.Error("dial after Close succeeded")
	}
	if strings.Contains(logs.String(), "peer connection rejected") {
		t.Errorf("Close logged the pending connection as rejected:\n%s", logs)
	}
}

// assertClosed checks that the server closes conn within 5 s.
func assertClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection from %s still open after 5 s", conn.LocalAddr())
		}
		if !errors.Is(err, io.EOF) && !isReset(err) {
			t.Logf("read on the closed connection: %v", err)
		}
		return
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}
