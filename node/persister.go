package node

import (
	"sync"
	"time"

	"github.com/starling-mqtt/starling/storage"
)

// persister records the packet ids of outbound QoS 1/2 messages to persistent
// sessions before their PUBLISH goes out, so that after a crash each is resent
// with DUP and its original packet id [MQTT-4.4.0-1]. One synced batch covers
// every delivery that waits, across all sessions, so a busy node pays one
// fsync for many messages and no publisher waits for it.
//
// It handles only deliveries taken from a session's queue. A message that
// finds the window open gets its inflight entry in its publisher's batch
// instead (reserveInflight). QoS 1 entries are synced too. At-least-once
// would hold without the sync, because the queue entry stays until the
// inflight entry replaces it. But the resend after a crash would then carry
// a new packet id and no DUP, against [MQTT-4.4.0-1].
//
// Its goroutine runs only while work waits; Shutdown waits for it through wg.
type persister struct {
	srv *Server
	wg  sync.WaitGroup

	mu      sync.Mutex
	pending []persistItem
	running bool
}

type persistItem struct {
	sess *session
	d    *delivery
}

// add queues a delivery whose inflight entry must be written before it is sent.
// The caller holds sess.mu and has put d in the session's inflight table.
func (p *persister) add(sess *session, d *delivery) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, persistItem{sess: sess, d: d})
	if !p.running {
		p.running = true
		p.wg.Add(1)
		go p.run()
	}
}

func (p *persister) run() {
	defer p.wg.Done()
	var items []persistItem
	var fs flushSet
	for {
		p.mu.Lock()
		if len(p.pending) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		items, p.pending = p.pending, items[:0]
		p.mu.Unlock()

		p.commit(items)
		now := time.Now()
		for i, it := range items {
			it.sess.sendPersisted(it.d, now, &fs)
			items[i] = persistItem{}
		}
		fs.flush()
	}
}

// commit writes the inflight entries of items in one synced batch. A failure
// is logged and the messages are sent anyway: the queue entries still hold
// them, so a crash can cost at most a resend with a new packet id.
func (p *persister) commit(items []persistItem) {
	b := p.srv.store.NewBatch()
	defer b.Close()
	for _, it := range items {
		it.sess.mu.Lock()
		d := it.d
		if !it.sess.mu.ended && it.sess.mu.inflight[d.pid] == d && d.stored {
			b.Dequeue(it.sess.id, d.seq, d.msg.id)
			b.PutInflight(it.sess.id, &storage.InflightEntry{
				PacketID:  d.pid,
				Seq:       d.seq,
				MessageID: d.msg.id,
				QoS:       d.qos,
				Retain:    d.retain,
				SubIDs:    d.subIDs,
			})
		}
		it.sess.mu.Unlock()
	}
	p.srv.commitSync(b, "")
}

// sendPersisted sends a delivery whose inflight entry is now written, if the
// session still has it in flight and a client connected. The write is left
// to fs (sendVia).
func (ss *session) sendPersisted(d *delivery, now time.Time, fs *flushSet) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.mu.persisterWaiting--
	ss.mu.flushes = fs
	ss.sendPersistedLocked(d, now)
	ss.mu.flushes = nil
}

// sendPersistedLocked sends d unless the session has ended, d has left the
// inflight table (exported or acknowledged) or no client is connected. A
// client that connects later gets it from resendInflightLocked.
func (ss *session) sendPersistedLocked(d *delivery, now time.Time) {
	d.persisting = false
	if ss.mu.ended || ss.mu.inflight[d.pid] != d || ss.mu.conn == nil {
		return
	}
	ss.sendLocked(ss.mu.conn, d, now)
}
