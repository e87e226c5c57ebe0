package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	senderSite   = "site-a"
	receiverSite = "site-b"
)

var discard = slog.New(slog.DiscardHandler)

// openStore opens a store in dir and closes it when the test ends, unless
// the test closed it before.
func openStore(t testing.TB, dir string, durability storage.Durability) *storage.Store {
	t.Helper()
	s, err := storage.Open(storage.Config{Dir: dir, Durability: durability, Logger: discard})
	if err != nil {
		t.Fatalf("open store in %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// checkFor calls cond until it returns nil or timeout passes, then fails
// the test with cond's last error.
func checkFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeDeliverer records delivered messages in memory and the high-water
// mark in its own store, in one synced batch per call, as the node's
// deliverer does.
type fakeDeliverer struct {
	mu        sync.Mutex
	store     *storage.Store // guarded by mu; replaced on a receiver restart
	delivered []*clusterpb.ForwardMessage
	calls     int

	// gate, when not nil, is received from before every delivery, so a test
	// can hold the receiver back.
	gate chan struct{}
}

func (d *fakeDeliverer) DeliverForwarded(senderSite string, msgs []*clusterpb.ForwardMessage, highWater uint64) error {
	if d.gate != nil {
		<-d.gate
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.store.NewBatch()
	defer b.Close()
	b.PutForwardHighWater(senderSite, highWater)
	if err := b.Commit(); err != nil {
		return err
	}
	d.delivered = append(d.delivered, msgs...)
	d.calls++
	return nil
}

func (d *fakeDeliverer) ForwardHighWater(senderSite string) (uint64, error) {
	d.mu.Lock()
	s := d.store
	d.mu.Unlock()
	return s.ForwardHighWater(senderSite)
}

func (d *fakeDeliverer) setStore(s *storage.Store) {
	d.mu.Lock()
	d.store = s
	d.mu.Unlock()
}

func (d *fakeDeliverer) messages() []*clusterpb.ForwardMessage {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*clusterpb.ForwardMessage(nil), d.delivered...)
}

func (d *fakeDeliverer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.delivered)
}

// peerService serves only Forward.
type peerService struct {
	clusterpb.UnimplementedPeerServer
	r *Receiver
}

func (s *peerService) Forward(st clusterpb.Peer_ForwardServer) error { return s.r.Forward(st) }

// startReceiver serves a Receiver for d on addr ("127.0.0.1:0" for a new
// port) and returns the server and its address. The server stops when the
// test ends unless the test stopped it before.
func startReceiver(t testing.TB, addr, self string, d Deliverer, logger *slog.Logger) (*grpc.Server, string) {
	t.Helper()
	var lis net.Listener
	var err error
	// The port of a stopped server may take a moment to become free.
	for range 100 {
		lis, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	srv := grpc.NewServer(grpc.WaitForHandlers(true))
	clusterpb.RegisterPeerServer(srv, &peerService{r: NewReceiver(d, logger, self, nil)})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return srv, lis.Addr().String()
}

// dialer returns a Dialer that keeps one client connection per address,
// closed when the test ends. While disabled is set, it fails every dial.
type dialer struct {
	mu       sync.Mutex
	conns    map[string]*grpc.ClientConn
	disabled atomic.Bool
	dials    atomic.Int64
}

func newDialer(t testing.TB) *dialer {
	d := &dialer{conns: make(map[string]*grpc.ClientConn)}
	t.Cleanup(func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, cc := range d.conns {
			_ = cc.Close()
		}
	})
	return d
}

func (d *dialer) dial(_ context.Context, p Peer) (clusterpb.PeerClient, error) {
	d.dials.Add(1)
	if d.disabled.Load() {
		return nil, errors.New("test dialer disabled")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cc := d.conns[p.Addr]
	if cc == nil {
		var err error
		cc, err = grpc.NewClient("passthrough:///"+p.Addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 100 * time.Millisecond},
				MinConnectTimeout: time.Second,
			}))
		if err != nil {
			return nil, err
		}
		d.conns[p.Addr] = cc
	}
	return clusterpb.NewPeerClient(cc), nil
}

// testConfig returns a Config for store with short timings.
func testConfig(store *storage.Store, d *dialer) Config {
	return Config{
		Store:          store,
		SelfName:       "node-a",
		SelfSiteID:     senderSite,
		Dial:           d.dial,
		Logger:         discard,
		MinBackoff:     5 * time.Millisecond,
		MaxBackoff:     50 * time.Millisecond,
		RejectedRetry:  20 * time.Millisecond,
		HelloTimeout:   5 * time.Second,
		DeleteInterval: 10 * time.Millisecond,
	}
}

func newForwarder(t testing.TB, cfg Config) *Forwarder {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(f.Close)
	return f
}

// publish stages m toward receiverSite, commits its batch and releases it.
func publish(t testing.TB, f *Forwarder, s *storage.Store, m *clusterpb.ForwardMessage) {
	t.Helper()
	if err := tryPublish(f, s, m); err != nil {
		t.Fatal(err)
	}
}

// tryPublish is publish for goroutines other than the test's.
func tryPublish(f *Forwarder, s *storage.Store, m *clusterpb.ForwardMessage) error {
	b := s.NewBatch()
	defer b.Close()
	tk, err := f.Stage(receiverSite, m, b)
	if err != nil {
		return fmt.Errorf("Stage: %w", err)
	}
	if err := b.Commit(); err != nil {
		f.Abort(tk)
		return fmt.Errorf("Commit: %w", err)
	}
	f.Release(tk)
	return nil
}

func message(id uint64, qos uint32) *clusterpb.ForwardMessage {
	return &clusterpb.ForwardMessage{
		OriginSiteId: senderSite,
		OriginId:     id,
		Topic:        fmt.Sprintf("t/%d", id%7),
		Payload:      []byte(fmt.Sprintf("payload %d", id)),
		Qos:          qos,
	}
}

// checkDelivery checks that got has strictly increasing sequence numbers,
// no origin id twice, and every id of wantReliable (the QoS 1 and 2
// messages). It returns the number of QoS 0 messages in got.
func checkDelivery(t testing.TB, got []*clusterpb.ForwardMessage, wantReliable map[uint64]bool) int {
	t.Helper()
	seen := make(map[uint64]bool, len(got))
	qos0 := 0
	var prev uint64
	for i, m := range got {
		if i > 0 && m.Seq <= prev {
			t.Fatalf("message %d has seq %d after seq %d", i, m.Seq, prev)
		}
		prev = m.Seq
		if seen[m.OriginId] {
			t.Fatalf("message with origin id %d delivered twice (seq %d, QoS %d)", m.OriginId, m.Seq, m.Qos)
		}
		seen[m.OriginId] = true
		if m.Qos == 0 {
			qos0++
		}
	}
	var missing []uint64
	for id := range wantReliable {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d QoS 1/2 messages never delivered, for example origin id %d", len(missing), missing[0])
	}
	return qos0
}

// reliableDelivered returns a condition that all ids of want were
// delivered to d.
func reliableDelivered(d *fakeDeliverer, want map[uint64]bool) func() error {
	return func() error {
		n := 0
		for _, m := range d.messages() {
			if want[m.OriginId] {
				n++
			}
		}
		if n < len(want) {
			return fmt.Errorf("%d of %d QoS 1/2 messages delivered", n, len(want))
		}
		return nil
	}
}

func peerStats(t testing.TB, f *Forwarder) PeerStats {
	t.Helper()
	for _, st := range f.Stats() {
		if st.SiteID == receiverSite {
			return st
		}
	}
	t.Fatalf("Stats has no entry for %s", receiverSite)
	return PeerStats{}
}

// logRecorder keeps the messages of every record at or above Warn.
type logRecorder struct {
	mu       sync.Mutex
	messages []string
}

func (l *logRecorder) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelWarn
}

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.messages = append(l.messages, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) find(substr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.messages {
		if strings.Contains(m, substr) {
			return true
		}
	}
	return false
}
