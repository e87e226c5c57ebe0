package forward

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage"
)

func TestForwarder_InOrderMixedQoS(t *testing.T) {
	const (
		publishers = 8
		perRound   = 16 // tickets a publisher holds and releases shuffled
		total      = 10_000
	)
	sendStore := openStore(t, t.TempDir(), storage.DurabilityRelaxed)
	d := &fakeDeliverer{store: openStore(t, t.TempDir(), storage.DurabilityRelaxed)}
	_, addr := startReceiver(t, "127.0.0.1:0", receiverSite, d, discard)
	f := newForwarder(t, testConfig(sendStore, newDialer(t)))
	f.SetPeers([]Peer{{Name: "node-b", SiteID: receiverSite, Addr: addr}})

	var mu sync.Mutex
	reliable := make(map[uint64]bool)
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for round := 0; round*perRound*publishers < total; round++ {
				tickets := make([]Ticket, 0, perRound)
				for i := range perRound {
					id := uint64(p*total + round*perRound + i + 1)
					qos := uint32(id % 3)
					b := sendStore.NewBatch()
					tk, err := f.Stage(receiverSite, message(id, qos), b)
					if err == nil {
						err = b.Commit()
					}
					b.Close()
					if err != nil {
						errs <- err
						return
					}
					if qos > 0 {
						mu.Lock()
						reliable[id] = true
						mu.Unlock()
					}
					tickets = append(tickets, tk)
				}
				rng.Shuffle(len(tickets), func(i, j int) { tickets[i], tickets[j] = tickets[j], tickets[i] })
				for _, tk := range tickets {
					f.Release(tk)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publisher: %v", err)
	}

	const staged = publishers * perRound * ((total + perRound*publishers - 1) / (perRound * publishers))
	checkFor(t, 20*time.Second, func() error {
		if n := d.count(); n < staged {
			return fmt.Errorf("%d of %d messages delivered", n, staged)
		}
		return nil
	})
	qos0 := checkDelivery(t, d.messages(), reliable)
	if want := staged - len(reliable); qos0 != want {
		t.Errorf("%d QoS 0 messages delivered, want %d", qos0, want)
	}

	checkFor(t, 5*time.Second, func() error {
		st := peerStats(t, f)
		if st.Lag != 0 || st.OutboxDepth != 0 {
			return fmt.Errorf("lag %d, outbox depth %d; want both 0", st.Lag, st.OutboxDepth)
		}
		return nil
	})
	st := peerStats(t, f)
	if !st.Connected {
		t.Error("Stats: not connected")
	}
	if st.DroppedQoS0 != 0 || st.DiskModeSwitches != 0 {
		t.Errorf("Stats: %d QoS 0 dropped, %d disk mode switches; want 0 with the default queue bound", st.DroppedQoS0, st.DiskModeSwitches)
	}
}

func TestForwarder_ReceiverRestart(t *testing.T) {
	tests := []struct {
		name          string
		maxQueueBytes int64
	}{
		{"default-queue", 0},
		{"small-queue-disk-mode", 2 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testReceiverRestart(t, tt.maxQueueBytes) })
	}
}

// testReceiverRestart restarts the receiver, store included, while
// messages flow, and checks that every QoS 1 and 2 message arrives once.
func testReceiverRestart(t *testing.T, maxQueueBytes int64) {
	const total = 3000
	sendStore := openStore(t, t.TempDir(), storage.DurabilitySync)
	recvDir := t.TempDir()
	recvStore, err := storage.Open(storage.Config{Dir: recvDir, Logger: discard})
	if err != nil {
		t.Fatalf("open receiver store: %v", err)
	}
	d := &fakeDeliverer{store: recvStore}
	srv, addr := startReceiver(t, "127.0.0.1:0", receiverSite, d, discard)
	cfg := testConfig(sendStore, newDialer(t))
	cfg.MaxQueueBytes = maxQueueBytes
	cfg.BatchMax = 16
	f := newForwarder(t, cfg)
	f.SetPeers([]Peer{{Name: "node-b", SiteID: receiverSite, Addr: addr}})

	reliable := make(map[uint64]bool)
	done := make(chan struct{})
	publishErr := make(chan error, 1)
	go func() {
		defer close(done)
		for id := uint64(1); id <= total; id++ {
			if err := tryPublish(f, sendStore, message(id, uint32(id%3))); err != nil {
				publishErr <- err
				return
			}
			if id%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for id := uint64(1); id <= total; id++ {
		if id%3 != 0 {
			reliable[id] = true
		}
	}

	// Restart the receiver, store included, while messages flow.
	checkFor(t, 10*time.Second, func() error {
		if n := d.count(); n < total/4 {
			return fmt.Errorf("%d messages delivered before the restart, want %d", n, total/4)
		}
		return nil
	})
	srv.Stop()
	select {
	case <-done:
		t.Fatal("the publisher finished before the receiver restarted; the test no longer restarts mid-stream")
	default:
	}
	if err := recvStore.Close(); err != nil {
		t.Fatalf("close receiver store: %v", err)
	}
	d.setStore(openStore(t, recvDir, storage.DurabilitySync))
	startReceiver(t, addr, receiverSite, d, discard)

	<-done
	select {
	case err := <-publishErr:
		t.Fatalf("publisher: %v", err)
	default:
	}
	checkFor(t, 20*time.Second, reliableDelivered(d, reliable))
	checkDelivery(t, d.messages(), reliable)
	if maxQueueBytes > 0 {
		// Whether the queue overflows during the restart depends on how
		// far the sender got before it; TestForwarder_DiskModeCatchesUp checks the
		// switch itself. This run only must lose and repeat nothing.
		if st := peerStats(t, f); st.DiskModeSwitches == 0 {
			t.Logf("the %d-byte queue did not overflow during this restart", maxQueueBytes)
		}
	}
	checkFor(t, 5*time.Second, func() error {
		if st := peerStats(t, f); st.OutboxDepth != 0 {
			return fmt.Errorf("outbox depth %d, want 0", st.OutboxDepth)
		}
		return nil
	})
}

func TestForwarder_SenderRestart(t *testing.T) {
	const perRun = 300
	sendDir := t.TempDir()
	sendStore := openStore(t, sendDir, storage.DurabilitySync)
	d := &fakeDeliverer{store: openStore(t, t.TempDir(), storage.DurabilitySync)}
	_, addr := startReceiver(t, "127.0.0.1:0", receiverSite, d, discard)
	peers := []Peer{{Name: "node-b", SiteID: receiverSite, Addr: addr}}
	dial := newDialer(t)
	cfg := testConfig(sendStore, dial)
	cfg.SeqBlock = 100

	// The first run delivers a few messages, then loses its peer and
	// stages the rest into the outbox only.
	first, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	first.SetPeers(peers)
	reliable := make(map[uint64]bool)
	for id := uint64(1); id <= 10; id++ {
		publish(t, first, sendStore, message(id, 1))
		reliable[id] = true
	}
	checkFor(t, 5*time.Second, reliableDelivered(d, reliable))
	first.SetPeers(nil)
	for id := uint64(11); id <= perRun; id++ {
		publish(t, first, sendStore, message(id, 1+uint32(id%2)))
		reliable[id] = true
	}
	first.Close()
	if got := sendStore.OutboxStats(receiverSite).Depth; got < perRun-10 {
		t.Fatalf("outbox depth after the first run = %d, want at least %d", got, perRun-10)
	}
	firstMax := d.messages()[d.count()-1].Seq

	second := newForwarder(t, cfg)
	second.SetPeers(peers)
	for id := uint64(perRun + 1); id <= 2*perRun; id++ {
		publish(t, second, sendStore, message(id, 1+uint32(id%2)))
		reliable[id] = true
	}
	checkFor(t, 10*time.Second, reliableDelivered(d, reliable))
	got := d.messages()
	checkDelivery(t, got, reliable)

	for _, m := range got {
		if m.OriginId > perRun && m.Seq <= perRun {
			t.Fatalf("second run reused seq %d (origin id %d); the first run used up to %d", m.Seq, m.OriginId, perRun)
		}
	}
	if firstMax > perRun {
		t.Errorf("first run delivered seq %d, more than it staged", firstMax)
	}
	if st := peerStats(t, second); st.Resent < perRun-10 {
		t.Errorf("Stats.Resent = %d, want at least %d", st.Resent, perRun-10)
	}
}

func TestForwarder_DiskModeCatchesUp(t *testing.T) {
	const total = 2000
	sendStore := openStore(t, t.TempDir(), storage.DurabilityRelaxed)
	d := &fakeDeliverer{
		store: openStore(t, t.TempDir(), storage.DurabilityRelaxed),
		gate:  make(chan struct{}),
	}
	_, addr := startReceiver(t, "127.0.0.1:0", receiverSite, d, discard)
	cfg := testConfig(sendStore, newDialer(t))
	cfg.MaxQueueBytes = 4 << 10
	cfg.BatchMax = 32
	f := newForwarder(t, cfg)
	f.SetPeers([]Peer{{Name: "node-b", SiteID: receiverSite, Addr: addr}})

	reliable := make(map[uint64]bool)
	staged0 := 0
	for id := uint64(1); id <= total; id++ {
		m := message(id, uint32(id%3))
		m.Payload = make([]byte, 512)
		publish(t, f, sendStore, m)
		if m.Qos > 0 {
			reliable[id] = true
		} else {
			staged0++
		}
	}
	st := peerStats(t, f)
	if st.DiskModeSwitches == 0 || !st.DiskMode {
		t.Fatalf("Stats after staging behind a blocked receiver: disk mode %v, %d switches; want disk mode", st.DiskMode, st.DiskModeSwitches)
	}
	close(d.gate)

	checkFor(t, 20*time.Second, reliableDelivered(d, reliable))
	qos0 := checkDelivery(t, d.messages(), reliable)
	st = peerStats(t, f)
	if st.DroppedQoS0 == 0 {
		t.Error("Stats.DroppedQoS0 = 0, want QoS 0 messages dropped over the queue bound")
	}
	if got := uint64(qos0) + st.DroppedQoS0; got != uint64(staged0) {
		t.Errorf("%d QoS 0 delivered + %d dropped = %d, want %d staged", qos0, st.DroppedQoS0, got, staged0)
	}
	checkFor(t, 5*time.Second, func() error {
		if st := peerStats(t, f); st.DiskMode || st.QueueBytes != 0 {
			return fmt.Errorf("disk mode %v, queue bytes %d; want the sender back on an empty queue", st.DiskMode, st.QueueBytes)
		}
		return nil
	})

	// After catching up, new messages flow through the queue again.
	for id := uint64(total + 1); id <= total+10; id++ {
		publish(t, f, sendStore, message(id, 0))
	}
	checkFor(t, 5*time.Second, func() error {
		msgs := d.messages()
		if last := msgs[len(msgs)-1].OriginId; last != total+10 {
			return fmt.Errorf("last delivered origin id %d, want %d", last, total+10)
		}
		return nil
	})
}

func TestForwarder_AbortDoesNotStall(t *testing.T) {
	sendStore := openStore(t, t.TempDir(), storage.DurabilityRelaxed)
	d := &fakeDeliverer{store: openStore(t, t.TempDir(), storage.DurabilityRelaxed)}
	_, addr := startReceiver(t, "127.0.0.1:0", receiverSite, d, discard)
	f := newForwarder(t, testConfig(sendStore, newDialer(t)))
	f.SetPeers([]Peer{{Name: "node-b", SiteID: receiverSite, Addr: addr}})

	var tickets []Ticket
	for id := uint64(1); id <= 4; id++ {
		b := sendStore.NewBatch()
		tk, err := f.Stage(receiverSite, message(id, 1), b)
		if err != nil {
			t.Fatalf("Stage: %v", err)
		}
		if id != 2 {
			if err := b.Commit(); err != nil {
				t.Fatalf("Commit: %v", err)
			}
		}
		b.Close()
		tickets = append(tickets, tk)
	}
	f.Release(tickets[3])
	f.Release(tickets[2])
	f.Abort(tickets[1])
	if n := d.count(); n != 0 {
		t.Fatalf("%d messages delivered before the lowest seq was released, want 0", n)
	}
	f.Release(tickets[0])

	want := map[uint64]bool{1: true, 3: true, 4: true}
	checkFor(t, 5*time.Second, reliableDelivered(d, want))
	got := checkDelivery(t, d.messages(), want)
	if n := d.count(); n != 3 || got != 0 {
		t.Errorf("%d messages delivered, want 3", n)
	}
	if err := sendStore.ScanOutbox(receiverSite, 0, 0, func(seq uint64, _ []byte) error {
		if seq == tickets[1].Seq() {
			return fmt.Errorf("aborted seq %d is in the outbox", seq)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

func TestForwarder_WrongReceiverSiteRejected(t *testing.T) {
	sendStore := openStore(t, t.TempDir(), storage.DurabilityRelaxed)
	d := &fakeDeliverer{store: openStore(t, t.TempDir(), storage.DurabilityRelaxed)}
	_, addr := startReceiver(t, "127.0.0.1:0", "site-new", d, discard)
	logs := &logRecorder{}
	cfg := testConfig(sendStore, newDialer(t))
	cfg.Logger = slog.New(logs)
	f := newForwarder(t, cfg)
	f.SetPeers([]Peer{{Name: "node-b", SiteID: receiverSite, Addr: addr}})
	publish(t, f, sendStore, message(1, 1))

	checkFor(t, 5*time.Second, func() error {
		if !logs.find("site id differs") {
			return errors.New("no warning that the peer's site id differs")
		}
		return nil
	})
	st := peerStats(t, f)
	if st.Connected {
		t.Error("Stats: connected to a peer with another site id")
	}
	if !strings.Contains(st.LastError, codes.FailedPrecondition.String()) {
		t.Errorf("Stats.LastError = %q, want %s", st.LastError, codes.FailedPrecondition)
	}
	if st.OutboxDepth != 1 {
		t.Errorf("Stats.OutboxDepth = %d, want the message kept", st.OutboxDepth)
	}
	if n := d.count(); n != 0 {
		t.Errorf("%d messages delivered to a peer with another site id, want 0", n)
	}
}

func TestForwarder_FullAndDropPeer(t *testing.T) {
	sendStore := openStore(t, t.TempDir(), storage.DurabilityRelaxed)
	dial := newDialer(t)
	dial.disabled.Store(true)
	cfg := testConfig(sendStore, dial)
	cfg.MaxOutboxMessages = 3
	f := newForwarder(t, cfg)
	f.SetPeers([]Peer{{Name: "node-b", SiteID: receiverSite, Addr: "127.0.0.1:1"}})

	for id := uint64(1); id <= 3; id++ {
		if f.Full(receiverSite) {
			t.Fatalf("Full before message %d, want not full below 3 messages", id)
		}
		publish(t, f, sendStore, message(id, 2))
	}
	if !f.Full(receiverSite) {
		t.Fatal("Full = false with 3 messages in the outbox, want true")
	}

	if err := f.DropPeer(receiverSite); err != nil {
		t.Fatalf("DropPeer: %v", err)
	}
	if !f.Full(receiverSite) {
		t.Error("Full = false after DropPeer, want true: Stage fails for a dropped peer")
	}
	if got := sendStore.OutboxStats(receiverSite); got.Depth != 0 {
		t.Errorf("outbox depth after DropPeer = %d, want 0", got.Depth)
	}
	if _, err := f.Stage(receiverSite, message(4, 1), sendStore.NewBatch()); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("Stage after DropPeer = %v, want ErrUnknownPeer", err)
	}
	if len(f.Stats()) != 0 {
		t.Errorf("Stats after DropPeer = %+v, want none", f.Stats())
	}
}

func TestForwarder_StageErrors(t *testing.T) {
	sendStore := openStore(t, t.TempDir(), storage.DurabilityRelaxed)
	dial := newDialer(t)
	dial.disabled.Store(true)
	f := newForwarder(t, testConfig(sendStore, dial))
	f.SetPeers([]Peer{{Name: "node-b", SiteID: receiverSite, Addr: "127.0.0.1:1"}})

	if _, err := f.Stage("site-unknown", message(1, 0), nil); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("Stage to an unknown site = %v, want ErrUnknownPeer", err)
	}
	if _, err := f.Stage(receiverSite, message(1, 3), sendStore.NewBatch()); err == nil {
		t.Error("Stage of QoS 3 succeeded")
	}
	if _, err := f.Stage(receiverSite, message(1, 1), nil); err == nil {
		t.Error("Stage of QoS 1 without a batch succeeded")
	}
	f.Close()
	if _, err := f.Stage(receiverSite, message(1, 0), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Stage after Close = %v, want ErrClosed", err)
	}
}

func TestForwarder_StoppedPeerKeepsOutbox(t *testing.T) {
	sendStore := openStore(t, t.TempDir(), storage.DurabilityRelaxed)
	d := &fakeDeliverer{store: openStore(t, t.TempDir(), storage.DurabilityRelaxed)}
	_, addr := startReceiver(t, "127.0.0.1:0", receiverSite, d, discard)
	f := newForwarder(t, testConfig(sendStore, newDialer(t)))
	peers := []Peer{{Name: "node-b", SiteID: receiverSite, Addr: addr}}
	f.SetPeers(peers)
	f.SetPeers(nil)

	reliable := map[uint64]bool{}
	for id := uint64(1); id <= 5; id++ {
		publish(t, f, sendStore, message(id, 1))
		reliable[id] = true
	}
	if got := peerStats(t, f); got.Connected || got.OutboxDepth != 5 {
		t.Fatalf("stopped peer: connected %v, outbox depth %d; want not connected, 5", got.Connected, got.OutboxDepth)
	}
	f.SetPeers(peers)
	checkFor(t, 5*time.Second, reliableDelivered(d, reliable))
	checkDelivery(t, d.messages(), reliable)
}

func TestForwarder_IgnoresSelf(t *testing.T) {
	sendStore := openStore(t, t.TempDir(), storage.DurabilityRelaxed)
	f := newForwarder(t, testConfig(sendStore, newDialer(t)))
	f.SetPeers([]Peer{{Name: "node-a", SiteID: senderSite, Addr: "127.0.0.1:1"}})
	if got := f.Stats(); len(got) != 0 {
		t.Errorf("Stats = %+v, want no peer for this node's own site id", got)
	}
}

func TestConfig_Validate(t *testing.T) {
	store := openStore(t, t.TempDir(), storage.DurabilityRelaxed)
	valid := testConfig(store, newDialer(t))
	tests := []struct {
		name   string
		change func(*Config)
		field  string // expected in the error; "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"missing-store", func(c *Config) { c.Store = nil }, "Config.Store"},
		{"missing-name", func(c *Config) { c.SelfName = "" }, "Config.SelfName"},
		{"missing-site", func(c *Config) { c.SelfSiteID = "" }, "Config.SelfSiteID"},
		{"missing-dial", func(c *Config) { c.Dial = nil }, "Config.Dial"},
		{"negative-queue", func(c *Config) { c.MaxQueueBytes = -1 }, "Config.MaxQueueBytes"},
		{"negative-batch", func(c *Config) { c.BatchMax = -1 }, "Config.BatchMax"},
		{"negative-duration", func(c *Config) { c.HelloTimeout = -1 }, "durations"},
		{"backoff-order", func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Second, time.Millisecond }, "Config.MaxBackoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig naming %s", err, tt.field)
			}
		})
	}
}

// TestPeer_ReorderAndQueue drives the reorder buffer and the queue bound
// without a sender goroutine.
func TestPeer_ReorderAndQueue(t *testing.T) {
	sendStore := openStore(t, t.TempDir(), storage.DurabilityRelaxed)
	cfg := testConfig(sendStore, newDialer(t))
	cfg.MaxQueueBytes = 200
	f := newForwarder(t, cfg)
	p := newPeer(f, Peer{Name: "node-b", SiteID: receiverSite})

	stage := func(id uint64, qos uint32) Ticket {
		t.Helper()
		b := sendStore.NewBatch()
		defer b.Close()
		tk, err := p.stage(message(id, qos), b)
		if err != nil {
			t.Fatalf("stage: %v", err)
		}
		if err := b.Commit(); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		return tk
	}
	queued := func() []uint64 {
		msgs, _ := p.takeQueued(nil)
		var ids []uint64
		for _, m := range msgs {
			ids = append(ids, m.OriginId)
		}
		return ids
	}

	t1, t2, t3 := stage(1, 0), stage(2, 1), stage(3, 0)
	f.Release(t3)
	f.Release(t2)
	if got := queued(); len(got) != 0 {
		t.Fatalf("queued %v before seq 1 was released, want nothing", got)
	}
	f.Release(t1)
	if got := fmt.Sprint(queued()); got != "[1 2 3]" {
		t.Fatalf("queued %s, want [1 2 3]", got)
	}

	// Each message is about 20 bytes; fill the 200-byte queue.
	var tickets []Ticket
	for id := uint64(10); id < 30; id++ {
		tickets = append(tickets, stage(id, uint32(id%2)))
	}
	for _, tk := range tickets {
		f.Release(tk)
	}
	st := p.stats()
	if !st.DiskMode || st.DroppedQoS0 == 0 {
		t.Errorf("after overflowing the queue: disk mode %v, %d QoS 0 dropped; want disk mode and drops", st.DiskMode, st.DroppedQoS0)
	}
	if st.QueueBytes > cfg.MaxQueueBytes {
		t.Errorf("queue holds %d bytes, over the bound of %d", st.QueueBytes, cfg.MaxQueueBytes)
	}
}

func TestQueue_TakeCompacts(t *testing.T) {
	var q queue
	for i := range 3000 {
		q.push(entry{m: &clusterpb.ForwardMessage{Seq: uint64(i)}, size: 1})
	}
	var got []*clusterpb.ForwardMessage
	for q.len() > 0 {
		got = q.take(got, 100, 1<<30)
		if q.len() > 0 && q.head > len(q.items)/2 && q.head > 1024 {
			t.Fatalf("head %d of %d items was not compacted", q.head, len(q.items))
		}
	}
	for i, m := range got {
		if m.Seq != uint64(i) {
			t.Fatalf("item %d has seq %d", i, m.Seq)
		}
	}
	if q.bytes != 0 {
		t.Errorf("bytes after taking everything = %d, want 0", q.bytes)
	}
}

func TestQueue_TakeStopsAtByteBound(t *testing.T) {
	var q queue
	for i := range 10 {
		q.push(entry{m: &clusterpb.ForwardMessage{Seq: uint64(i + 1)}, size: 400})
	}
	got := q.take(nil, 100, 1000)
	if len(got) != 2 {
		t.Fatalf("took %d messages of 400 bytes under a 1000-byte bound, want 2", len(got))
	}
	got = q.take(nil, 100, 100)
	if len(got) != 1 || got[0].Seq != 3 {
		t.Fatalf("a message larger than the bound must still go alone: got %v", got)
	}
	if q.len() != 7 || q.bytes != 7*400 {
		t.Fatalf("queue holds %d messages, %d bytes; want 7, 2800", q.len(), q.bytes)
	}
}
