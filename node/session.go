package node

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/router"
	"github.com/starling-mqtt/starling/storage"
)

// neverExpires is the Session Expiry Interval that means the session never ends.
const neverExpires = 0xFFFFFFFF

// delivery is one message on its way to one session.
type delivery struct {
	msg    *message
	qos    byte // after downgrade to the granted QoS
	retain bool // RETAIN flag as sent to this subscriber
	subIDs []uint32

	seq         uint64 // storage sequence: queue entry or inflight entry key
	stored      bool   // a queue or inflight entry exists on disk for it
	pid         uint16 // packet id once in flight
	dup         bool   // resend: set DUP
	released    bool   // QoS 2: PUBREC received, PUBREL sent
	persisting  bool   // waiting for its inflight entry to be written, by the persister or the publisher's batch (reserveInflight)
	shareKey    string // shared subscription group (shareKey) the delivery was chosen for; "" if none
	redelivered bool   // a shared QoS 1 copy was already offered to another member
	pooled      bool   // from deliveryPool (route): recycled once sent at QoS 0
}

// deliveryPool recycles the deliveries that route makes. A QoS 0 delivery
// that is neither stored nor shared has no owner once its PUBLISH is queued
// on the connection (pumpLocked), so the fan-out of a QoS 0 message costs no
// allocation per subscriber.
var deliveryPool = sync.Pool{New: func() any { return new(delivery) }}

// recycleSent returns d to deliveryPool if nothing can refer to it after its
// send: the caller has just sent it at QoS 0.
func recycleSent(d *delivery) {
	if !d.pooled || d.qos != 0 || d.stored || d.shareKey != "" {
		return
	}
	*d = delivery{}
	deliveryPool.Put(d)
}

// subscription is one topic filter of a session, as subscribed.
type subscription struct {
	filter string // as in SUBSCRIBE, including any $share prefix
	group  string
	topic  string // filter without the $share prefix
	opts   packet.Subscription
	subID  uint32

	// durable is the persistence the subscription's route was counted with
	// (routeTable); it follows the session's through reflagRoutesLocked.
	durable bool
}

// session is the state of one client id: clean (memory only, ends with its
// connection) or persistent (kept in storage until it expires).
//
// While a client is connected its reader goroutine drives the session; other
// goroutines (publishers, timers) only hand it deliveries. Every field below
// mu is guarded by mu. Lock order: registry stripe lock, then session.mu, then
// conn.outMu.
type session struct {
	id  string
	srv *Server

	persistent atomic.Bool // read without mu by publishers that route to it

	mu struct {
		sync.Mutex
		conn           *conn // nil while offline
		lastConn       *conn // the latest connection; attach waits for its detach
		gen            uint64
		version        byte
		expiry         uint32 // seconds
		disconnectedAt time.Time
		// subs, inflight and inboundQoS2 stay nil until their first entry
		// (putSubscriptionLocked, setInflightLocked, addInboundQoS2Locked),
		// so that an idle session without subscriptions pays for no map.
		subs           map[string]*subscription
		inflight       map[uint16]*delivery
		queue          deliveryQueue
		retainedQ      deliveryQueue // retained messages owed after SUBSCRIBE, paced like the queue
		inboundQoS2    map[uint16]struct{}
		nextPID        uint16
		will           *willMsg // waiting for its delay
		willTimer      *time.Timer
		expiryTimer    *time.Timer
		sendQuota      int       // outbound window: min(client Receive Maximum, MaxInflight)
		flushes        *flushSet // while deliverVia or sendPersisted runs: the caller that writes the sends
		waitingWriter  bool      // QoS 0 sends wait for the writer to drain
		ended          bool
		restored       bool   // restored from disk at start-up; see DiscardStaleSession
		owner          string // user name of the client that created it; see attach
		ownerUnknown   bool   // restored or moved from a version that did not keep owners
		droppedWarned  time.Time
		droppedPending int
		// persisterWaiting counts deliveries handed to the persister and
		// not yet sent. While any wait, reserveInflight refuses, so that a
		// later message cannot overtake them [MQTT-4.6.0-6].
		persisterWaiting int

		// While a session moves here from another node (takeover.go),
		// importing holds deliveries back in importBuf, and importKeys
		// holds the origins of what was imported. frozen marks a session
		// exported from here, which collects messages until FinishExport.
		importing  bool
		importBuf  []*delivery
		importKeys map[originKey]struct{}
		// awaitingLeftovers is set when the old node died during the move:
		// importKeys stays until it hands its copy's messages over.
		awaitingLeftovers bool
		frozen            bool
		// exported holds what ExportSession handed out, in order, and
		// leaseTimer unfreezes the session with it if FinishExport does not
		// come in time.
		exported   []*delivery
		leaseTimer *time.Timer
	}
}

func newSession(srv *Server, id string) *session {
	s := &session{id: id, srv: srv}
	s.mu.queue.gauge = &srv.stats.queued
	s.mu.retainedQ.gauge = &srv.stats.queued
	return s
}

// deliveryQueue is a FIFO of deliveries with a byte count.
type deliveryQueue struct {
	items []*delivery
	head  int
	bytes int64
	gauge *atomic.Int64 // the node's count of queued deliveries
}

func (q *deliveryQueue) len() int { return len(q.items) - q.head }

func (q *deliveryQueue) push(d *delivery) {
	q.gauge.Add(1)
	q.items = append(q.items, d)
	q.bytes += d.msg.size()
}

func (q *deliveryQueue) peek() *delivery { return q.items[q.head] }

func (q *deliveryQueue) pop() *delivery {
	q.gauge.Add(-1)
	d := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	q.bytes -= d.msg.size()
	if q.head == len(q.items) {
		q.items = q.items[:0]
		q.head = 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	return d
}

func (q *deliveryQueue) clear() []*delivery {
	rest := q.items[q.head:]
	q.gauge.Add(-int64(len(rest)))
	q.items, q.head, q.bytes = nil, 0, 0
	return rest
}

// full reports whether the session queue has reached its limits.
func (s *session) fullLocked() bool {
	lim := s.srv.lim()
	return s.mu.queue.len() >= lim.MaxQueuedMessages || s.mu.queue.bytes >= lim.MaxQueuedBytes
}

// deliver hands one delivery to the session. It never blocks on the client:
// the delivery is queued and sent when the outbound window allows.
//
// It returns whether a connected client has fallen behind: its queue is at
// least half full. The publisher then slows down briefly (see flushPending),
// which keeps a reader that is merely slower than its publishers from losing
// messages to the overflow policy, without ever blocking this hand-off.
func (s *session) deliver(d *delivery) bool {
	return s.deliverVia(d, nil)
}

// deliverVia is deliver with the connection's writes left to fs (sendVia):
// the caller flushes fs after its burst of deliveries.
func (s *session) deliverVia(d *delivery, fs *flushSet) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.flushes = fs
	defer func() { s.mu.flushes = nil }()
	if s.mu.ended {
		if s.srv.closing.Load() {
			// Ended by the shutdown, not for good: a stored delivery stays
			// on disk for the restart (a forwarded batch may still be on
			// its way in while the node stops).
			return false
		}
		s.releaseLocked(d)
		return false
	}
	if d.persisting {
		// Reserved in the window while staged: the publisher's batch that
		// wrote its inflight entry has committed.
		s.sendPersistedLocked(d, time.Now())
		return s.congestedLocked()
	}
	if s.mu.importing {
		s.mu.importBuf = append(s.mu.importBuf, d)
		return false
	}
	if s.fullLocked() {
		if s.srv.lim().QueueOverflow == OverflowDropNewest {
			s.dropLocked(d, "queue full, dropped newest")
			return true
		}
		// Drop as many of the oldest as it takes: one large message may
		// replace several small ones under max_queued_bytes.
		for s.mu.queue.len() > 0 && s.fullLocked() {
			s.dropLocked(s.mu.queue.pop(), "queue full, dropped oldest")
		}
	}
	s.mu.queue.push(d)
	s.pumpLocked()
	return s.congestedLocked()
}

// congestedLocked reports whether the session's client is connected and its
// queue is at least half full.
func (s *session) congestedLocked() bool {
	lim := s.srv.lim()
	return s.mu.conn != nil && (s.mu.queue.len()*2 >= lim.MaxQueuedMessages || s.mu.queue.bytes*2 >= lim.MaxQueuedBytes)
}

func (s *session) congested() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.congestedLocked()
}

// deliverRetained queues retained messages owed to a new subscription. They are
// kept apart from the live queue so that a large retained set is sent in full,
// paced by the outbound window, instead of overflowing the queue.
func (s *session) deliverRetainedLocked(ds []*delivery) {
	for _, d := range ds {
		s.mu.retainedQ.push(d)
	}
	s.pumpLocked()
}

// dropLocked discards a delivery that will not be sent, counts it and logs at
// most one line per ten seconds per session.
func (s *session) dropLocked(d *delivery, why string) {
	s.releaseLocked(d)
	s.srv.stats.droppedQueueFull.Add(1)
	s.mu.droppedPending++
	now := time.Now()
	if now.Sub(s.mu.droppedWarned) >= 10*time.Second {
		s.srv.log.Warn("messages dropped for session; starling_messages_dropped_total counts them all",
			keyClientID, s.id, keyReason, why, "dropped_since_last_line", s.mu.droppedPending)
		s.mu.droppedWarned = now
		s.mu.droppedPending = 0
	}
}

// releaseLocked removes the storage entry that backs a delivery, if any.
func (s *session) releaseLocked(d *delivery) {
	s.releaseIntoLocked(d, nil)
}

// releaseIntoLocked is releaseLocked that adds the removal to b, for the
// caller to commit, or commits it at once without a sync when b is nil.
func (s *session) releaseIntoLocked(d *delivery, b *storage.Batch) {
	if !d.stored {
		return
	}
	own := b == nil
	if own {
		b = s.srv.store.NewBatch()
		defer b.Close()
	}
	if d.pid != 0 {
		b.DeleteInflight(s.id, d.pid, d.msg.id)
	} else {
		b.Dequeue(s.id, d.seq, d.msg.id)
	}
	d.stored = false
	if own {
		s.srv.commitNoSync(b, s.id)
	}
}

// pumpLocked sends what the outbound window allows: retained backlog first,
// then the queue, in order. QoS 1/2 sends are bounded by the inflight window
// [MQTT-3.3.4-9]; QoS 0 sends by the bytes buffered for the socket.
func (s *session) pumpLocked() {
	c := s.mu.conn
	if c == nil {
		return
	}
	// The clock is read once, and only for a message with an expiry: a
	// message without one never uses now.
	var now time.Time
	for {
		q := &s.mu.retainedQ
		if q.len() == 0 {
			q = &s.mu.queue
		}
		if q.len() == 0 {
			return
		}
		d := q.peek()
		if now.IsZero() && !d.msg.expiresAt.IsZero() {
			now = time.Now()
		}
		if d.msg.expired(now) {
			q.pop()
			s.srv.stats.expired.Add(1)
			s.releaseLocked(d)
			continue
		}
		if !c.access.Load().mayRead(d.msg.topic, d.qos) {
			// A wide subscription never delivers a topic the rules do not
			// grant, retained and queued messages included.
			q.pop()
			s.srv.stats.denied[deniedDelivery].Add(1)
			s.releaseLocked(d)
			continue
		}
		if !c.fitsPacketSize(d, now) {
			// [MQTT-3.1.2-25] Too large for the client: discarded as if delivered.
			q.pop()
			s.srv.stats.tooLarge.Add(1)
			s.releaseLocked(d)
			continue
		}
		if d.qos == 0 {
			if c.outboundFull(s.srv.lim().MaxOutboundBytes) {
				s.mu.waitingWriter = true
				return
			}
			q.pop()
			s.sendLocked(c, d, now)
			recycleSent(d)
			continue
		}
		if len(s.mu.inflight) >= s.mu.sendQuota {
			return
		}
		q.pop()
		d.pid = s.allocPacketIDLocked()
		s.setInflightLocked(d)
		if d.stored {
			// Sent by the persister once the packet id is on disk.
			d.persisting = true
			s.mu.persisterWaiting++
			s.srv.persister.add(s, d)
			continue
		}
		s.sendLocked(c, d, now)
	}
}

// reserveInflight gives d a packet id and a slot in the outbound window while
// a publisher stages it, when the session would send it at once. That is
// when its client is connected, the window has room, and nothing is queued
// or waiting for the persister ahead of it. The publisher then writes the
// inflight entry in its own synced batch, in place of a queue entry, and
// deliverVia sends d once that batch has committed. This saves the
// persister's second synced batch per message. It returns false, reserving
// nothing, when d must take the queue.
func (s *session) reserveInflight(d *delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mu.conn
	if c == nil || s.mu.ended || s.mu.importing || s.mu.frozen || s.mu.persisterWaiting > 0 ||
		s.mu.queue.len() > 0 || s.mu.retainedQ.len() > 0 || len(s.mu.inflight) >= s.mu.sendQuota {
		return false
	}
	now := time.Now()
	if d.msg.expired(now) || !c.access.Load().mayRead(d.msg.topic, d.qos) || !c.fitsPacketSize(d, now) {
		return false // pumpLocked discards it and counts why
	}
	d.pid = s.allocPacketIDLocked()
	d.persisting = true
	s.setInflightLocked(d)
	return true
}

// unreserveInflight undoes reserveInflight after the publisher's batch failed
// to commit. Nothing was written, and the publisher, which gets no
// acknowledgement, sends the message again.
func (s *session) unreserveInflight(d *delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.persisting = false
	d.stored = false
	if s.mu.ended || s.mu.inflight[d.pid] != d {
		return
	}
	s.deleteInflightLocked(d.pid)
	s.pumpLocked()
}

// setInflightLocked and deleteInflightLocked keep the node's inflight gauge
// in step with the session's inflight table.
func (s *session) setInflightLocked(d *delivery) {
	if _, ok := s.mu.inflight[d.pid]; !ok {
		s.srv.stats.inflight.Add(1)
	}
	if s.mu.inflight == nil {
		s.mu.inflight = make(map[uint16]*delivery)
	}
	s.mu.inflight[d.pid] = d
}

// putSubscriptionLocked stores sub under its filter, replacing an earlier
// subscription to the same filter.
func (s *session) putSubscriptionLocked(sub *subscription) {
	if s.mu.subs == nil {
		s.mu.subs = make(map[string]*subscription)
	}
	s.mu.subs[sub.filter] = sub
}

// addInboundQoS2Locked records an inbound QoS 2 packet id that waits for its
// PUBREL.
func (s *session) addInboundQoS2Locked(pid uint16) {
	if s.mu.inboundQoS2 == nil {
		s.mu.inboundQoS2 = make(map[uint16]struct{})
	}
	s.mu.inboundQoS2[pid] = struct{}{}
}

func (s *session) deleteInflightLocked(pid uint16) {
	if _, ok := s.mu.inflight[pid]; ok {
		s.srv.stats.inflight.Add(-1)
		delete(s.mu.inflight, pid)
	}
}

func (s *session) allocPacketIDLocked() uint16 {
	for {
		s.mu.nextPID++
		if s.mu.nextPID == 0 {
			s.mu.nextPID = 1
		}
		if _, used := s.mu.inflight[s.mu.nextPID]; !used {
			return s.mu.nextPID
		}
	}
}

// sendLocked writes one PUBLISH for d to the connection.
func (s *session) sendLocked(c *conn, d *delivery, now time.Time) {
	op := publishPool.Get().(*outPublish)
	pub := &op.Publish
	*pub = packet.Publish{
		Dup:      d.dup,
		QoS:      d.qos,
		Retain:   d.retain,
		Topic:    d.msg.topic,
		PacketID: d.pid,
		Payload:  d.msg.payload,
	}
	if c.version == packet.Version5 {
		pub.Properties = d.msg.properties()
		pub.Properties.SubscriptionIDs = d.subIDs
		if !d.msg.expiresAt.IsZero() {
			pub.Properties.HasMessageExpiry = true
			pub.Properties.MessageExpiry = d.msg.remainingExpiry(now)
		}
	}
	if !c.sendVia(op, s.mu.flushes) {
		*op = outPublish{}
		publishPool.Put(op)
	}
	s.srv.stats.messagesOut[d.qos].Add(1)
}

// resendInflightLocked resends the unacknowledged outbound messages on a new
// connection, in their original order, with DUP set and the same packet ids
// [MQTT-4.4.0-1]; a QoS 2 message whose PUBREC arrived gets its PUBREL again.
func (s *session) resendInflightLocked(c *conn) {
	if len(s.mu.inflight) == 0 {
		return
	}
	ds := make([]*delivery, 0, len(s.mu.inflight))
	for _, d := range s.mu.inflight {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].seq < ds[j].seq })
	now := time.Now()
	for _, d := range ds {
		if d.persisting {
			continue // sent once its inflight entry is written
		}
		if d.released {
			c.send(packet.SuccessAck{Kind: packet.TypePubrel, PacketID: d.pid})
			continue
		}
		d.dup = true
		s.sendLocked(c, d, now)
	}
}

// ackLocked completes an outbound QoS 1 (PUBACK) or QoS 2 (PUBCOMP) message.
// The removal of its storage entry goes into rb, which the caller commits, or
// is committed at once when rb is nil.
func (s *session) ackLocked(pid uint16, wantQoS byte, rb *storage.Batch) bool {
	d, ok := s.mu.inflight[pid]
	if !ok || d.qos != wantQoS {
		return false
	}
	s.deleteInflightLocked(pid)
	s.releaseIntoLocked(d, rb)
	s.pumpLocked()
	return true
}

// subscriptionEntry converts a session subscription to its router form.
func (s *session) subscriptionEntry(sub *subscription) router.Entry {
	return router.Entry{
		ClientID:          s.id,
		Group:             sub.group,
		Filter:            sub.topic,
		QoS:               sub.opts.QoS,
		NoLocal:           sub.opts.NoLocal,
		RetainAsPublished: sub.opts.RetainAsPublished,
		SubID:             sub.subID,
	}
}

// writerDrained is called by the connection writer when its buffer empties, so
// that QoS 0 messages waiting for room are sent.
func (s *session) writerDrained(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.conn != c || !s.mu.waitingWriter {
		return
	}
	s.mu.waitingWriter = false
	s.pumpLocked()
}
