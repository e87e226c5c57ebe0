package storage

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// maxScratch is the largest encoding buffer a Batch keeps between calls,
// and that Close returns to scratchPool.
const maxScratch = 64 << 10

// batchScratch is the reusable memory of a Batch. Close returns it to
// scratchPool, so that the many small batches of a busy node (one per read
// batch of publishes or acknowledgements) do not each grow new slices.
type batchScratch struct {
	ops     []refOp
	touched []uint64
	key     []byte
	val     []byte
}

var scratchPool = sync.Pool{New: func() any { return new(batchScratch) }}

// Batch collects writes that Commit applies atomically, so after a crash
// either all of them are on disk or none. A Batch is not safe for concurrent use.
// Commit or CommitNoSync may be called once. Close must be called when the
// owner is done with the batch, also after a commit.
//
// Methods that receive an invalid argument (a client id containing U+0000,
// or a QoS or retain handling above 2) record the first such error, and
// Commit returns it without writing anything.
type Batch struct {
	s          *Store
	pb         *pebble.Batch
	scratch    *batchScratch // source of ops, touched, key and val; nil after Close
	ops        []refOp       // reference-changing operations in call order
	touched    []uint64      // scratch for refIndex.applyLocked
	key        []byte        // scratch for keys
	val        []byte        // scratch for values
	err        error         // first invalid argument
	outboxPuts []outboxPut   // counted into Store.outbox after the commit
	used       bool          // Commit or CommitNoSync was called
}

// NewBatch returns an empty batch.
func (s *Store) NewBatch() *Batch {
	sc := scratchPool.Get().(*batchScratch)
	return &Batch{
		s:       s,
		pb:      s.db.NewBatch(),
		scratch: sc,
		ops:     sc.ops[:0],
		touched: sc.touched[:0],
		key:     sc.key[:0],
		val:     sc.val[:0],
	}
}

// Len returns the number of writes in the batch.
func (b *Batch) Len() int {
	if b.pb == nil {
		return 0
	}
	return int(b.pb.Count())
}

// Empty reports whether the batch contains no write.
func (b *Batch) Empty() bool {
	return b.pb == nil || b.pb.Empty()
}

func (b *Batch) invalid(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("storage: "+format, args...)
	}
}

func (b *Batch) checkClientID(clientID string) bool {
	if !validClientID(clientID) {
		b.invalid("client id %q contains U+0000", clientID)
		return false
	}
	return true
}

func (b *Batch) checkQoS(record string, qos byte) bool {
	if qos > 2 {
		b.invalid("%s has QoS %d, expected 0 to 2", record, qos)
		return false
	}
	return true
}

func (b *Batch) set(key, value []byte) {
	if b.pb == nil {
		b.invalid("batch used after Close")
		return
	}
	if err := b.pb.Set(key, value, nil); err != nil {
		b.invalid("set key %x: %v", key, err)
	}
}

func (b *Batch) delete(key []byte) {
	if b.pb == nil {
		b.invalid("batch used after Close")
		return
	}
	if err := b.pb.Delete(key, nil); err != nil {
		b.invalid("delete key %x: %v", key, err)
	}
}

func (b *Batch) deleteRange(start, end []byte) {
	if b.pb == nil {
		b.invalid("batch used after Close")
		return
	}
	if err := b.pb.DeleteRange(start, end, nil); err != nil {
		b.invalid("delete range %x to %x: %v", start, end, err)
	}
}

// PutSession writes sess, replacing the session of the same client id.
func (b *Batch) PutSession(sess *Session) {
	if !b.checkClientID(sess.ClientID) {
		return
	}
	b.key = appendSessionKey(b.key[:0], sess.ClientID)
	b.val = appendSession(b.val[:0], sess)
	b.set(b.key, b.val)
}

// DeleteSession deletes the session of clientID and all its subscriptions,
// queue entries, inflight entries and inbound QoS 2 records, and releases
// their message references. Writes for clientID added to the batch after
// DeleteSession are kept.
func (b *Batch) DeleteSession(clientID string) {
	if !b.checkClientID(clientID) {
		return
	}
	b.key = appendSessionKey(b.key[:0], clientID)
	b.delete(b.key)
	for _, kind := range childKinds {
		b.key = appendClientPrefix(b.key[:0], kind, clientID)
		start := len(b.key)
		b.key = appendClientPrefixEnd(b.key, kind, clientID)
		b.deleteRange(b.key[:start], b.key[start:])
	}
	b.ops = append(b.ops, refOp{kind: opDeleteSession, clientID: clientID})
}

// PutSubscription writes sub, replacing the subscription of the same client
// id and filter.
func (b *Batch) PutSubscription(sub *Subscription) {
	if !b.checkClientID(sub.ClientID) || !b.checkQoS("subscription", sub.QoS) {
		return
	}
	if sub.RetainHandling > 2 {
		b.invalid("subscription %q of %q has retain handling %d, expected 0 to 2", sub.Filter, sub.ClientID, sub.RetainHandling)
		return
	}
	b.key = appendSubscriptionKey(b.key[:0], sub.ClientID, sub.Filter)
	b.val = appendSubscription(b.val[:0], sub)
	b.set(b.key, b.val)
}

// DeleteSubscription deletes the subscription of clientID to filter.
func (b *Batch) DeleteSubscription(clientID, filter string) {
	if !b.checkClientID(clientID) {
		return
	}
	b.key = appendSubscriptionKey(b.key[:0], clientID, filter)
	b.delete(b.key)
}

// PutMessage writes the body of m under m.ID. The body lives as long as a
// queue or inflight entry references it. The first reference must be added
// in the same batch: a body without references when the batch commits is
// deleted by that commit. Putting the same id again replaces the body.
func (b *Batch) PutMessage(m *Message) {
	if !b.checkQoS("message", m.QoS) {
		return
	}
	b.key = appendMessageKey(b.key[:0], m.ID)
	b.val = appendMessage(b.val[:0], m)
	b.set(b.key, b.val)
	b.ops = append(b.ops, refOp{kind: opPutMessage, messageID: m.ID})
}

// Enqueue appends e to the queue of clientID and adds a reference to
// e.MessageID. An entry with the same Seq is replaced, and its reference
// released.
func (b *Batch) Enqueue(clientID string, e *QueueEntry) {
	if !b.checkClientID(clientID) || !b.checkQoS("queue entry", e.QoS) {
		return
	}
	b.key = appendQueueKey(b.key[:0], clientID, e.Seq)
	b.val = appendQueueEntry(b.val[:0], e)
	b.set(b.key, b.val)
	b.ops = append(b.ops, refOp{kind: opEnqueue, clientID: clientID, key: e.Seq, messageID: e.MessageID})
}

// Dequeue deletes the queue entry seq of clientID and releases its
// reference. It releases the message id recorded with the entry, which
// messageID is expected to match. Dequeuing a missing entry releases
// nothing.
func (b *Batch) Dequeue(clientID string, seq, messageID uint64) {
	if !b.checkClientID(clientID) {
		return
	}
	b.key = appendQueueKey(b.key[:0], clientID, seq)
	b.delete(b.key)
	b.ops = append(b.ops, refOp{kind: opDequeue, clientID: clientID, key: seq, messageID: messageID})
}

// PutInflight writes e under its packet id. A new packet id adds a
// reference to e.MessageID. Writing the same packet id again, for example
// with Released set, adds none, unless the message id changes: then the old
// message's reference is released and the new one's added.
func (b *Batch) PutInflight(clientID string, e *InflightEntry) {
	if !b.checkClientID(clientID) || !b.checkQoS("inflight entry", e.QoS) {
		return
	}
	b.key = appendInflightKey(b.key[:0], clientID, e.PacketID)
	b.val = appendInflightEntry(b.val[:0], e)
	b.set(b.key, b.val)
	b.ops = append(b.ops, refOp{kind: opPutInflight, clientID: clientID, key: uint64(e.PacketID), messageID: e.MessageID})
}

// DeleteInflight deletes the inflight entry packetID of clientID and
// releases its reference. It releases the message id recorded with the
// entry, which messageID is expected to match. Deleting a missing entry
// releases nothing.
func (b *Batch) DeleteInflight(clientID string, packetID uint16, messageID uint64) {
	if !b.checkClientID(clientID) {
		return
	}
	b.key = appendInflightKey(b.key[:0], clientID, packetID)
	b.delete(b.key)
	b.ops = append(b.ops, refOp{kind: opDeleteInflight, clientID: clientID, key: uint64(packetID), messageID: messageID})
}

// PutInboundQoS2 records that packetID was received from clientID with QoS 2
// and waits for PUBREL.
func (b *Batch) PutInboundQoS2(clientID string, packetID uint16) {
	if !b.checkClientID(clientID) {
		return
	}
	b.key = appendInboundKey(b.key[:0], clientID, packetID)
	b.set(b.key, inboundValue)
}

// DeleteInboundQoS2 deletes the inbound QoS 2 record packetID of clientID.
func (b *Batch) DeleteInboundQoS2(clientID string, packetID uint16) {
	if !b.checkClientID(clientID) {
		return
	}
	b.key = appendInboundKey(b.key[:0], clientID, packetID)
	b.delete(b.key)
}

// PutRetained writes m as the retained message of m.Topic, replacing the
// previous one. It is stored whole and takes no reference on a body.
func (b *Batch) PutRetained(m *Message) {
	if !b.checkQoS("retained message", m.QoS) {
		return
	}
	b.key = appendRetainedKey(b.key[:0], m.Topic)
	b.val = appendMessage(b.val[:0], m)
	b.set(b.key, b.val)
}

// DeleteRetained deletes the retained message of topic.
func (b *Batch) DeleteRetained(topic string) {
	b.key = appendRetainedKey(b.key[:0], topic)
	b.delete(b.key)
}

// Commit applies the batch under the Store's durability policy: with
// DurabilitySync it returns after the WAL fsync, with DurabilityRelaxed
// after the write reaches the WAL buffer. It blocks on the fsync, on other
// commits that change message references (for the time they take to enter
// the WAL, not for their fsync), and on Pebble write stalls.
//
// An error other than one from an invalid argument or ErrClosed fails the
// store: later writes return an error wrapping ErrFailed.
func (b *Batch) Commit() error {
	return b.commit(b.s.cfg.Durability == DurabilitySync)
}

// CommitNoSync applies the batch without waiting for an fsync, whatever
// the durability policy. Use it for writes whose loss only causes a
// harmless redelivery. The write becomes durable with the next synced commit
// or, at the latest, one SyncInterval later.
func (b *Batch) CommitNoSync() error {
	return b.commit(false)
}

func (b *Batch) commit(sync bool) error {
	if b.used {
		return errors.New("storage: batch committed twice")
	}
	b.used = true
	if b.err != nil {
		return b.err
	}
	if b.Empty() {
		return nil
	}

	s := b.s
	if !s.gate.enter() {
		return ErrClosed
	}
	defer s.gate.exit()
	if err := s.failure(); err != nil {
		return err
	}

	var err error
	if len(b.ops) == 0 {
		err = s.db.Apply(b.pb, writeOptions(sync))
	} else {
		err = b.applyWithRefs(sync)
	}
	if err != nil {
		// Pebble may still own the batch after a failed apply, so it is
		// dropped rather than returned to Pebble's pool by Close.
		b.pb = nil
		s.setFailed(err)
		return fmt.Errorf("storage: commit batch: %w", markPebble(err))
	}
	if !sync {
		s.dirty.Store(true)
	}
	s.outbox.add(b.outboxPuts)
	return nil
}

// applyWithRefs updates the reference index and writes the batch to Pebble
// while holding refs.mu, then waits for the fsync after releasing it.
//
// Holding the lock until Pebble has sequenced the batch makes Pebble's
// commit order equal the order in which batches updated the counts. Without
// that, a batch that re-puts a body could be decided after, but written
// before, a batch that deletes the same body at count zero, and the delete
// would win. Holding the lock across the fsync too was rejected because it
// would serialize fsyncs and lose Pebble's group commit: ApplyNoSyncWait
// returns once the batch is in the WAL buffer and visible, and SyncWait
// then waits for the shared fsync.
//
// NOTE: pebble v2.1.7 marks ApplyNoSyncWait as experimental and meant for
// CockroachDB. Plain Apply under the lock would be the fallback, at the cost
// of group commit for message-touching batches.
func (b *Batch) applyWithRefs(sync bool) error {
	s := b.s
	s.refs.mu.Lock()
	touched, err := s.refs.applyLocked(b.ops, b.pb, b.touched, b.key)
	b.touched = touched
	if err == nil {
		if sync {
			err = s.db.ApplyNoSyncWait(b.pb, pebble.Sync)
		} else {
			err = s.db.Apply(b.pb, pebble.NoSync)
		}
	}
	s.refs.mu.Unlock()
	if err != nil {
		// The index already contains this batch's changes. The caller fails
		// the store, and the next Open rebuilds the index from disk.
		return err
	}
	if sync {
		return b.pb.SyncWait()
	}
	return nil
}

// Close releases the batch. Uncommitted writes are discarded. Close is
// idempotent.
func (b *Batch) Close() {
	if b.pb != nil {
		_ = b.pb.Close()
		b.pb = nil
	}
	if sc := b.scratch; sc != nil {
		clear(b.ops) // drops the client id strings
		sc.ops, sc.touched, sc.key, sc.val = b.ops[:0], b.touched[:0], b.key[:0], b.val[:0]
		if cap(sc.ops) > maxScratch/16 {
			sc.ops = nil
		}
		if cap(sc.touched) > maxScratch/8 {
			sc.touched = nil
		}
		if cap(sc.key) > maxScratch {
			sc.key = nil
		}
		if cap(sc.val) > maxScratch {
			sc.val = nil
		}
		b.scratch = nil
		scratchPool.Put(sc)
	}
	b.ops, b.touched, b.key, b.val = nil, nil, nil, nil
}

func writeOptions(sync bool) *pebble.WriteOptions {
	if sync {
		return pebble.Sync
	}
	return pebble.NoSync
}
