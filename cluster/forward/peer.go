package forward

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage"
)

// entry is a staged message and its encoded size. A zero entry marks an
// aborted sequence number.
type entry struct {
	m    *clusterpb.ForwardMessage
	size int64
}

// peer is the sending side of the stream toward one site: its sequence
// numbers, its reorder buffer and send queue, and the counters of its
// sender goroutine. The state outlives the goroutine: SetPeers may stop
// and restart the goroutine, and only DropPeer ends the state.
type peer struct {
	f    *Forwarder
	site string
	log  *slog.Logger

	mu struct {
		sync.Mutex
		info     Peer   // the latest from SetPeers
		seqReady bool   // next, ceiling and frontier are loaded
		next     uint64 // the sequence number Stage assigns next
		ceiling  uint64 // numbers below it are reserved on disk
		frontier uint64 // lowest number neither released nor aborted
		// resolved holds the released and aborted numbers above frontier
		// until every lower number is resolved too.
		resolved map[uint64]entry
		queue    queue
		// diskMode is set when a QoS 1 or 2 message did not fit in queue.
		// Until the sender clears it, released QoS 1 and 2 messages stay
		// only in the outbox and QoS 0 messages are dropped.
		diskMode bool
		dropped  bool // DropPeer ran; Stage rejects
		// lastQueued is the highest sequence number this process queued
		// for sending (in memory or, in disk mode, in the outbox); see
		// Forwarder.LastQueued.
		lastQueued uint64
		lastErr    string // the error that ended the last stream
	}

	// notify wakes the sender after a release. Its capacity of one keeps a
	// wake-up that arrives while the sender is busy.
	notify chan struct{}

	// sent is the highest sequence number the sender has handed to a
	// stream or passed over. Only the sender goroutine writes it, after
	// ensureSeq has set its start.
	sent atomic.Uint64
	// acked is the highest sequence number the peer acknowledged.
	acked     atomic.Uint64
	connected atomic.Bool

	droppedQoS0  atomic.Uint64
	resent       atomic.Uint64
	diskSwitches atomic.Uint64

	// deleteMu serializes outbox deletes and guards deleted, the highest
	// sequence number deleted from the outbox.
	deleteMu sync.Mutex
	deleted  uint64

	// The sender goroutine, guarded by Forwarder.mu. done is closed when it
	// exits; cancel stops it.
	cancel context.CancelFunc
	done   chan struct{}
}

func newPeer(f *Forwarder, info Peer) *peer {
	p := &peer{
		f:      f,
		site:   info.SiteID,
		log:    f.log.With(keyPeer, info.Name, keySiteID, info.SiteID),
		notify: make(chan struct{}, 1),
	}
	p.mu.info = info
	p.mu.resolved = make(map[uint64]entry)
	return p
}

// ensureSeqLocked loads the sequence state on first use: it reserves a
// block and starts at its first number, which is above every number handed
// out toward this site before, in this or an earlier process.
func (p *peer) ensureSeqLocked() error {
	if p.mu.seqReady {
		return nil
	}
	block := p.f.cfg.SeqBlock
	ceiling, err := p.f.cfg.Store.ReserveForwardSeq(p.site, block)
	if err != nil {
		return fmt.Errorf("forward: reserve sequence numbers toward %s: %w", p.site, err)
	}

	// Number 0 is never used: a receiver's high-water mark of 0 means it
	// has seen nothing.
	start := max(ceiling-block, 1)
	p.mu.next, p.mu.ceiling, p.mu.frontier = start, ceiling, start
	p.sent.Store(start - 1)
	p.mu.seqReady = true
	return nil
}

// ensureSeq is ensureSeqLocked for the sender goroutine.
func (p *peer) ensureSeq() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ensureSeqLocked()
}

// assignSeq returns the next sequence number, reserving a new block with a
// synced write when the current one is used up.
func (p *peer) assignSeq() (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.dropped {
		return 0, fmt.Errorf("%w: site %s was dropped", ErrUnknownPeer, p.site)
	}
	if err := p.ensureSeqLocked(); err != nil {
		return 0, err
	}
	if p.mu.next >= p.mu.ceiling {
		// Holding mu across the fsync stalls other publishers to this peer
		// once per SeqBlock messages.
		ceiling, err := p.f.cfg.Store.ReserveForwardSeq(p.site, p.f.cfg.SeqBlock)
		if err != nil {
			return 0, fmt.Errorf("forward: reserve sequence numbers toward %s: %w", p.site, err)
		}
		p.mu.ceiling = ceiling
	}
	seq := p.mu.next
	p.mu.next++
	return seq, nil
}

// stage assigns m its sequence number and, for QoS 1 and 2 and for
// retained updates, writes it into the outbox through b.
func (p *peer) stage(m *clusterpb.ForwardMessage, b *storage.Batch) (Ticket, error) {
	if m.Qos > 2 {
		return Ticket{}, fmt.Errorf("forward: message has QoS %d, expected 0 to 2", m.Qos)
	}
	if durable(m) && b == nil {
		return Ticket{}, fmt.Errorf("forward: a QoS %d message or retained update needs a batch for its outbox entry", m.Qos)
	}
	seq, err := p.assignSeq()
	if err != nil {
		return Ticket{}, err
	}
	m.Seq = seq

	if !durable(m) {
		return Ticket{p: p, seq: seq, e: entry{m: m, size: int64(proto.Size(m))}}, nil
	}
	buf := encodeBuffers.Get().(*[]byte)
	data, err := proto.MarshalOptions{}.MarshalAppend((*buf)[:0], m)
	if err != nil {
		encodeBuffers.Put(buf)
		p.resolve(seq, entry{})
		return Ticket{}, fmt.Errorf("forward: encode message %d toward %s: %w", seq, p.site, err)
	}
	b.PutOutbox(p.site, seq, data)
	size := int64(len(data))
	if cap(data) <= maxPooledBuffer {
		*buf = data
		encodeBuffers.Put(buf)
	}
	return Ticket{p: p, seq: seq, e: entry{m: m, size: size}}, nil
}

// durable reports whether m goes through the outbox: a QoS 1 or 2
// message, or a retained update, which must reach every node whatever the
// QoS of its publish.
func durable(m *clusterpb.ForwardMessage) bool {
	return m.Qos > 0 || m.RetainedClock != nil
}

// maxPooledBuffer is the largest encoding buffer kept for reuse.
const maxPooledBuffer = 64 << 10

// encodeBuffers holds *[]byte scratch buffers for outbox values, which
// PutOutbox copies.
var encodeBuffers = sync.Pool{New: func() any { return new([]byte) }}

// resolve records that seq was released with e, or aborted when e.m is nil,
// and moves every message whose lower numbers are all resolved into the
// send queue, in sequence order.
func (p *peer) resolve(seq uint64, e entry) {
	p.mu.Lock()
	if p.mu.dropped || seq < p.mu.frontier {
		p.mu.Unlock()
		return
	}
	if seq != p.mu.frontier {
		p.mu.resolved[seq] = e
		p.mu.Unlock()
		return
	}

	p.pushLocked(e)
	p.mu.frontier++
	for {
		next, ok := p.mu.resolved[p.mu.frontier]
		if !ok {
			break
		}
		delete(p.mu.resolved, p.mu.frontier)
		p.pushLocked(next)
		p.mu.frontier++
	}
	p.mu.Unlock()
	p.wake()
}

// pushLocked appends a message that is next in sequence order to the send
// queue, or applies the overflow policy.
func (p *peer) pushLocked(e entry) {
	if e.m == nil {
		return
	}
	qos0 := !durable(e.m)
	if p.mu.diskMode {
		if qos0 {
			p.droppedQoS0.Add(1)
			return
		}
		p.mu.lastQueued = e.m.Seq
		return
	}
	if p.mu.queue.bytes+e.size > p.f.cfg.MaxQueueBytes {
		if qos0 {
			p.droppedQoS0.Add(1)
			return
		}
		p.mu.diskMode = true
		p.diskSwitches.Add(1)
		p.mu.lastQueued = e.m.Seq
		return
	}
	p.mu.queue.push(e)
	p.mu.lastQueued = e.m.Seq
}

// wake notifies the sender without blocking.
func (p *peer) wake() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *peer) info() Peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.info
}

func (p *peer) setInfo(info Peer) {
	p.mu.Lock()
	p.mu.info = info
	p.mu.Unlock()
}

// markDropped makes later Stage calls fail and frees the queued messages.
func (p *peer) markDropped() {
	p.mu.Lock()
	p.mu.dropped = true
	p.mu.queue = queue{}
	p.mu.resolved = nil
	p.mu.Unlock()
}

func (p *peer) setLastErr(err error) {
	p.mu.Lock()
	p.mu.lastErr = err.Error()
	p.mu.Unlock()
}

// stats returns the peer's figures for Forwarder.Stats.
func (p *peer) stats() PeerStats {
	p.mu.Lock()
	st := PeerStats{
		Peer:       p.mu.info.Name,
		SiteID:     p.site,
		QueueBytes: p.mu.queue.bytes,
		DiskMode:   p.mu.diskMode,
		LastError:  p.mu.lastErr,
	}
	var assigned uint64
	if p.mu.seqReady {
		assigned = p.mu.next - 1
	}
	p.mu.Unlock()

	st.Connected = p.connected.Load()
	if acked := p.acked.Load(); assigned > acked {
		st.Lag = assigned - acked
	}
	outbox := p.f.cfg.Store.OutboxStats(p.site)
	st.OutboxDepth, st.OutboxBytes = outbox.Depth, outbox.Bytes
	st.DroppedQoS0 = p.droppedQoS0.Load()
	st.Resent = p.resent.Load()
	st.DiskModeSwitches = p.diskSwitches.Load()
	return st
}

// queue is a FIFO of entries in sequence order with their total size.
type queue struct {
	items []entry
	head  int
	bytes int64
}

func (q *queue) push(e entry) {
	q.items = append(q.items, e)
	q.bytes += e.size
}

func (q *queue) len() int { return len(q.items) - q.head }

// take appends up to n messages of at most maxBytes in all from the front
// to dst; the first message goes whatever its size.
func (q *queue) take(dst []*clusterpb.ForwardMessage, n int, maxBytes int64) []*clusterpb.ForwardMessage {
	end := min(q.head+n, len(q.items))
	var size int64
	i := q.head
	for ; i < end; i++ {
		if i > q.head && size+q.items[i].size > maxBytes {
			break
		}
		size += q.items[i].size
		dst = append(dst, q.items[i].m)
		q.bytes -= q.items[i].size
		q.items[i] = entry{}
	}
	q.head = i

	// Reuse the array once it is empty, and move the rest to the front
	// once the taken part is most of it, so it does not grow forever.
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head > len(q.items)/2 && q.head > 1024:
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return dst
}
