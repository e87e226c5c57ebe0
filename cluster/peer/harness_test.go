package peer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logBuffer collects a port's log lines for assertions. Safe for
// concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testNode is a port with a gRPC server serving statusServer on it.
type testNode struct {
	port *Port
	logs *logBuffer
	srv  *grpc.Server
}

// startNode listens with cfg on 127.0.0.1:0 unless cfg.Bind is set, serves
// gRPC on the port and stops both at cleanup. The node's logs go to
// node.logs.
func startNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	logs := &logBuffer{}
	cfg.Logger = logs.logger()
	p, err := Listen(cfg)
	if err != nil {
		t.Fatalf("Listen(%s): %v", cfg.NodeName, err)
	}

	srv := grpc.NewServer(p.GRPCServerOptions()...)
	clusterpb.RegisterPeerServer(srv, &statusServer{name: cfg.NodeName})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(p.GRPCListener())
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testNode{port: p, logs: logs, srv: srv}
}

// statusServer returns from Status its own node name in Name and the
// caller's node name, as PeerName returns it, in Leader ("" when PeerName
// returns ok=false).
type statusServer struct {
	clusterpb.UnimplementedPeerServer
	name string
}

func (s *statusServer) Status(ctx context.Context, _ *clusterpb.StatusRequest) (*clusterpb.StatusResponse, error) {
	caller, _ := PeerName(ctx)
	return &clusterpb.StatusResponse{Name: s.name, Leader: caller}, nil
}

// callStatus calls Status on target through from's dial options for
// peerName.
func callStatus(t *testing.T, from *Port, target net.Addr, peerName string) (*clusterpb.StatusResponse, error) {
	t.Helper()
	cc, err := grpc.NewClient(target.String(), from.GRPCDialOptions(peerName)...)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	defer cc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return clusterpb.NewPeerClient(cc).Status(ctx, &clusterpb.StatusRequest{}, grpc.WaitForReady(false))
}

// raftEcho accepts one Raft connection on p, reads "ping" and replies
// "pong". The returned channel yields the server side's error.
func raftEcho(p *Port) <-chan error {
	done := make(chan error, 1)
	go func() {
		conn, err := p.RaftLayer().Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(conn, buf); err != nil {
			done <- err
			return
		}
		if string(buf) != "ping" {
			done <- errors.New("server read " + string(buf) + ", want ping")
			return
		}
		_, err = conn.Write([]byte("pong"))
		done <- err
	}()
	return done
}

// raftPing dials to's Raft layer from from, sends "ping" and expects
// "pong".
func raftPing(from *Port, to net.Addr) error {
	conn, err := from.RaftLayer().Dial(raftAddress(to), 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if string(buf) != "pong" {
		return errors.New("client read " + string(buf) + ", want pong")
	}
	return nil
}

func raftAddress(a net.Addr) raft.ServerAddress {
	return raft.ServerAddress(a.String())
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
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

// logContains reports whether a log line contains every part.
func logContains(logs string, parts ...string) bool {
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, part := range parts {
			if !strings.Contains(line, part) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
