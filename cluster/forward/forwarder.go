package forward

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage"
)

// Forwarder sends published messages to the other nodes, one ordered
// Forward stream per peer. All methods are safe for concurrent use.
type Forwarder struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context // parent of every sender goroutine; Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup // tracks the sender goroutines

	mu     sync.Mutex
	peers  map[string]*peer // by site id; guarded by mu
	closed bool             // guarded by mu
}

// Ticket is a message between Stage and Release or Abort. The zero Ticket
// does nothing when released or aborted.
type Ticket struct {
	p   *peer
	seq uint64
	e   entry
}

// Seq returns the sequence number Stage assigned, or 0 for the zero Ticket.
func (t Ticket) Seq() uint64 { return t.seq }

// PeerStats are one peer's figures for metrics and ctl cluster status.
type PeerStats struct {
	Peer      string // node name
	SiteID    string
	Connected bool // a stream is established
	// Lag counts the sequence numbers assigned and not yet acknowledged,
	// including aborted ones and dropped QoS 0 messages.
	Lag         uint64
	OutboxDepth int64 // entries in the outbox on disk
	OutboxBytes int64
	QueueBytes  int64 // encoded bytes in the in-memory send queue
	// DiskMode is true while the sender reads the outbox from disk because
	// the queue overflowed.
	DiskMode         bool
	DiskModeSwitches uint64 // times the queue overflowed into disk mode
	DroppedQoS0      uint64 // QoS 0 messages dropped at the queue bound
	Resent           uint64 // outbox entries sent again after a reconnect
	LastError        string // the error that ended the last stream; empty if none did
}

// New returns a Forwarder with no peers. Call SetPeers to start sending.
func New(cfg Config) (*Forwarder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Forwarder{
		cfg:    cfg,
		log:    cfg.Logger.With(keyComponent, componentName),
		ctx:    ctx,
		cancel: cancel,
		peers:  make(map[string]*peer),
	}, nil
}

// SetPeers makes peers the set of nodes this node sends to. It starts a
// sender goroutine for each peer that is new or was removed before, and
// stops the goroutine of each peer missing from peers, waiting for it to
// exit. A stopped peer keeps its outbox and its sequence numbers, and Stage
// still accepts messages for it, which wait in its outbox until SetPeers
// names it again or DropPeer deletes them. Entries with this node's own
// site id are ignored.
func (f *Forwarder) SetPeers(peers []Peer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}

	want := make(map[string]Peer, len(peers))
	for _, info := range peers {
		if info.SiteID != "" && info.SiteID != f.cfg.SelfSiteID {
			want[info.SiteID] = info
		}
	}
	for site, p := range f.peers {
		if _, ok := want[site]; !ok && p.cancel != nil {
			f.stopLocked(p)
		}
	}
	for site, info := range want {
		p, ok := f.peers[site]
		if !ok {
			p = newPeer(f, info)
			f.peers[site] = p
		} else {
			p.setInfo(info)
		}
		if p.cancel == nil {
			f.startLocked(p)
		}
	}
}

// startLocked starts p's sender goroutine. f.mu must be held.
func (f *Forwarder) startLocked(p *peer) {
	ctx, cancel := context.WithCancel(f.ctx)
	p.cancel = cancel
	p.done = make(chan struct{})
	f.wg.Add(1)
	go func(done chan struct{}) {
		defer f.wg.Done()
		defer close(done)
		p.run(ctx)
	}(p.done)
	p.log.Info("forward sender started")
}

// stopLocked stops p's sender goroutine and waits for it. f.mu must be
// held.
func (f *Forwarder) stopLocked(p *peer) {
	p.cancel()
	<-p.done
	p.cancel, p.done = nil, nil
	p.connected.Store(false)
	p.log.Info("forward sender stopped")
}

// DropPeer stops sending to the peer with siteID, removes it from the peer
// set and deletes its outbox, for a node that was reaped. Messages for it that were staged
// and not yet committed may still reach the outbox afterwards.
//
// NOTE: such a late entry stays on disk until DropPeer runs again for the
// same site id.
func (f *Forwarder) DropPeer(siteID string) error {
	f.mu.Lock()
	p := f.peers[siteID]
	if p != nil {
		if p.cancel != nil {
			f.stopLocked(p)
		}
		delete(f.peers, siteID)
		p.markDropped()
	}
	f.mu.Unlock()

	dropped, err := f.cfg.Store.DropOutbox(siteID)
	if err != nil {
		return fmt.Errorf("forward: drop outbox of site %s: %w", siteID, err)
	}
	f.log.Info("dropped the outbox of a reaped peer",
		keySiteID, siteID, keyDepth, dropped.Depth, keyBytes, dropped.Bytes)
	return nil
}

// Stage assigns m the next sequence number toward siteID and, for QoS 1
// and 2, writes it into the peer's outbox through b, so that the publisher's
// acknowledgement can follow the commit of b. b may be nil for QoS 0. The
// caller must then call exactly one of Release, after b committed, or
// Abort, if it failed, and must not modify m after Stage. The stream waits
// at that number until one of them is called.
//
// Stage blocks on a synced write once per Config.SeqBlock messages toward a
// peer, and on the first message after New.
func (f *Forwarder) Stage(siteID string, m *clusterpb.ForwardMessage, b *storage.Batch) (Ticket, error) {
	f.mu.Lock()
	closed, p := f.closed, f.peers[siteID]
	f.mu.Unlock()
	if closed {
		return Ticket{}, ErrClosed
	}
	if p == nil {
		return Ticket{}, fmt.Errorf("%w: site %s", ErrUnknownPeer, siteID)
	}
	return p.stage(m, b)
}

// Release hands the message of t to the peer's sender once every lower
// sequence number is released or aborted. It does not wait for the network,
// only for the peer's lock, which Stage holds across the fsync of a
// sequence block reservation.
func (f *Forwarder) Release(t Ticket) {
	if t.p != nil {
		t.p.resolve(t.seq, t.e)
	}
}

// Abort skips the sequence number of t, whose batch failed.
func (f *Forwarder) Abort(t Ticket) {
	if t.p != nil {
		t.p.resolve(t.seq, entry{})
	}
}

// Full reports whether the outbox toward siteID has reached
// Config.MaxOutboxBytes or Config.MaxOutboxMessages. The node then rejects
// new QoS 1 and 2 publishes that need it (MQTT 5.0 reason code 0x97,
// Quota exceeded). It reads only memory.
//
// It also reports true when Stage would fail: the Forwarder is closed or
// does not know the peer yet, so the node refuses the publish rather than
// acknowledge a message it cannot store for that peer.
func (f *Forwarder) Full(siteID string) bool {
	f.mu.Lock()
	closed, p := f.closed, f.peers[siteID]
	f.mu.Unlock()
	if closed || p == nil {
		return true
	}
	st := f.cfg.Store.OutboxStats(siteID)
	return st.Bytes >= f.cfg.MaxOutboxBytes || st.Depth >= f.cfg.MaxOutboxMessages
}

// LastQueued returns the highest sequence number this process has queued
// for sending toward siteID, or 0: a released message that the stream will
// carry. Aborted numbers and dropped QoS 0 messages do not count, so a
// receiver that waits for this number gets it. While staged messages wait
// for their batch to commit, it returns the highest staged number instead,
// because those messages are on their way too (unless their batch fails).
//
// NOTE: outbox entries written before a restart of this node and not yet
// acknowledged are not counted until they are queued again.
func (f *Forwarder) LastQueued(siteID string) uint64 {
	f.mu.Lock()
	p := f.peers[siteID]
	f.mu.Unlock()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.seqReady && p.mu.frontier < p.mu.next {
		return p.mu.next - 1
	}
	return p.mu.lastQueued
}

// Stats returns the figures of every known peer, ordered by site id.
func (f *Forwarder) Stats() []PeerStats {
	f.mu.Lock()
	peers := make([]*peer, 0, len(f.peers))
	for _, p := range f.peers {
		peers = append(peers, p)
	}
	f.mu.Unlock()

	out := make([]PeerStats, 0, len(peers))
	for _, p := range peers {
		out = append(out, p.stats())
	}
	slices.SortFunc(out, func(a, b PeerStats) int { return strings.Compare(a.SiteID, b.SiteID) })
	return out
}

// Close stops every sender goroutine and waits for them. Outboxes stay on
// disk for the next Forwarder. Stage returns ErrClosed afterwards. Close is
// idempotent.
func (f *Forwarder) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
}

// Congested reports whether the stream toward siteID is behind: its send
// queue is over half its bound, or it reads the outbox from disk. The node
// then holds its publishers' acknowledgements back for a moment, so a
// sustained overload slows publishers before QoS 0 messages are dropped
// and before the outbox fills.
func (f *Forwarder) Congested(siteID string) bool {
	f.mu.Lock()
	p := f.peers[siteID]
	f.mu.Unlock()
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.diskMode || p.mu.queue.bytes > f.cfg.MaxQueueBytes/2
}
