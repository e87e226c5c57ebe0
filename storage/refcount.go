package storage

import (
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// refIndex is the in-memory view of which queue and inflight entries exist
// and which message each one references. It is rebuilt by Open from disk
// and updated by every Commit that carries reference operations.
//
// Why an index and not a read inside the batch: DeleteSession must release
// every message its client references, and PutInflight must know whether
// the packet id is new. Reading those entries from Pebble at commit time
// would put disk reads under refIndex.mu, which every message-touching
// commit takes. The index costs memory per stored entry (a map slot of two
// uint64s) but keeps the critical section to map updates.
type refIndex struct {
	mu      sync.Mutex
	counts  map[uint64]int64       // message id to references; guarded by mu
	clients map[string]*clientRefs // client id to its entries; guarded by mu

	// spare holds emptied clientRefs for reuse, guarded by mu. A connected
	// subscriber's entries often drop to zero and come back with the next
	// message, and reuse saves a struct and two maps each time.
	spare []*clientRefs
}

// clientRefs lists the message ids referenced by one client's entries.
type clientRefs struct {
	queue    map[uint64]uint64 // queue Seq to message id
	inflight map[uint16]uint64 // packet id to message id
	peak     int               // most entries held at once, which bounds the maps' memory
}

// Limits of refIndex.spare: how many emptied clientRefs it keeps, and the
// peak above which one is dropped instead. A Go map keeps the memory of its
// largest size after its entries are deleted.
const (
	maxSpareClients   = 256
	maxSparePeakItems = 64
)

func (c *clientRefs) putQueue(seq, messageID uint64) {
	c.queue[seq] = messageID
	c.notePeak()
}

func (c *clientRefs) putInflight(packetID uint16, messageID uint64) {
	c.inflight[packetID] = messageID
	c.notePeak()
}

func (c *clientRefs) notePeak() {
	c.peak = max(c.peak, len(c.queue)+len(c.inflight))
}

// refOpKind names a batch operation that changes references.
type refOpKind uint8

const (
	opPutMessage refOpKind = iota + 1
	opEnqueue
	opDequeue
	opPutInflight
	opDeleteInflight
	opDeleteSession
)

// refOp is one reference-changing operation of a batch, replayed in batch
// order against the index at commit.
type refOp struct {
	kind      refOpKind
	clientID  string
	key       uint64 // queue Seq or inflight packet id
	messageID uint64
}

func (r *refIndex) init() {
	r.counts = make(map[uint64]int64)
	r.clients = make(map[string]*clientRefs)
	r.spare = nil
}

func (r *refIndex) clientLocked(clientID string) *clientRefs {
	c := r.clients[clientID]
	if c != nil {
		return c
	}
	if n := len(r.spare); n > 0 {
		c = r.spare[n-1]
		r.spare[n-1] = nil
		r.spare = r.spare[:n-1]
	} else {
		c = &clientRefs{queue: make(map[uint64]uint64), inflight: make(map[uint16]uint64)}
	}
	r.clients[clientID] = c
	return c
}

// dropIfEmptyLocked removes a client without entries from the index, so the
// index does not grow with every client ever seen.
func (r *refIndex) dropIfEmptyLocked(clientID string, c *clientRefs) {
	if len(c.queue) == 0 && len(c.inflight) == 0 {
		delete(r.clients, clientID)
		if c.peak <= maxSparePeakItems && len(r.spare) < maxSpareClients {
			c.peak = 0
			r.spare = append(r.spare, c)
		}
	}
}

// applyLocked replays ops against the index and appends to pb a delete of
// every message body that ops touched and that ends with no reference.
// touched is scratch space, which applyLocked returns for reuse.
//
// A body is judged only after all of ops, so a batch that moves a message
// from the queue to inflight (Dequeue then PutInflight) keeps it. A body put
// by the batch without any reference at the end is deleted in the same
// commit.
func (r *refIndex) applyLocked(ops []refOp, pb *pebble.Batch, touched []uint64, key []byte) ([]uint64, error) {
	touched = touched[:0]
	for i := range ops {
		op := &ops[i]
		switch op.kind {
		case opPutMessage:
			touched = append(touched, op.messageID)
		case opEnqueue:
			c := r.clientLocked(op.clientID)
			if old, ok := c.queue[op.key]; ok {
				r.counts[old]--
				touched = append(touched, old)
			}
			c.putQueue(op.key, op.messageID)
			r.counts[op.messageID]++
		case opDequeue:
			c := r.clients[op.clientID]
			if c == nil {
				continue
			}
			if old, ok := c.queue[op.key]; ok {
				delete(c.queue, op.key)
				r.counts[old]--
				touched = append(touched, old)
				r.dropIfEmptyLocked(op.clientID, c)
			}
		case opPutInflight:
			c := r.clientLocked(op.clientID)
			packetID := uint16(op.key)
			old, ok := c.inflight[packetID]
			if ok && old == op.messageID {
				continue
			}
			if ok {
				r.counts[old]--
				touched = append(touched, old)
			}
			c.putInflight(packetID, op.messageID)
			r.counts[op.messageID]++
		case opDeleteInflight:
			c := r.clients[op.clientID]
			if c == nil {
				continue
			}
			packetID := uint16(op.key)
			if old, ok := c.inflight[packetID]; ok {
				delete(c.inflight, packetID)
				r.counts[old]--
				touched = append(touched, old)
				r.dropIfEmptyLocked(op.clientID, c)
			}
		case opDeleteSession:
			c := r.clients[op.clientID]
			if c == nil {
				continue
			}
			for _, id := range c.queue {
				r.counts[id]--
				touched = append(touched, id)
			}
			for _, id := range c.inflight {
				r.counts[id]--
				touched = append(touched, id)
			}
			delete(r.clients, op.clientID)
		}
	}

	for _, id := range touched {
		n, ok := r.counts[id]
		if ok && n > 0 {
			continue
		}
		if n < 0 {
			// Only indexed entries release references, so this is a bug in
			// this file rather than in the caller.
			panic(fmt.Sprintf("storage: message %d has %d references", id, n))
		}
		delete(r.counts, id)
		key = appendMessageKey(key[:0], id)
		if err := pb.Delete(key, nil); err != nil {
			return touched, err
		}
	}
	return touched, nil
}

// rebuildStats describes what rebuildRefs found.
type rebuildStats struct {
	messages int // bodies with at least one reference
	orphans  int // bodies without references, deleted
	dangling int // referenced message ids without a body
}

// rebuildRefs fills s.refs from the queue and inflight entries on disk and
// deletes message bodies that no entry references. Commit deletes a body in
// the same batch that drops its last reference, so such orphans appear only
// after a bug or an edit by another tool, but nothing else would ever remove
// them.
func (s *Store) rebuildRefs() (rebuildStats, error) {
	var stats rebuildStats
	r := &s.refs
	r.init()

	lower, upper := kindBounds(kindQueue)
	err := s.scan(lower, upper, func(key, value []byte) error {
		clientID, seq, err := parseQueueKey(key)
		if err != nil {
			return err
		}
		var e QueueEntry
		if err := decodeQueueEntry(value, &e); err != nil {
			return fmt.Errorf("queue entry %d of %q: %w", seq, clientID, err)
		}
		r.clientLocked(clientID).putQueue(seq, e.MessageID)
		r.counts[e.MessageID]++
		return nil
	})
	if err != nil {
		return stats, fmt.Errorf("storage: rebuild references from queues: %w", err)
	}

	lower, upper = kindBounds(kindInflight)
	err = s.scan(lower, upper, func(key, value []byte) error {
		clientID, packetID, err := parsePacketIDKey(key, kindInflight)
		if err != nil {
			return err
		}
		var e InflightEntry
		if err := decodeInflightEntry(value, &e); err != nil {
			return fmt.Errorf("inflight packet %d of %q: %w", packetID, clientID, err)
		}
		r.clientLocked(clientID).putInflight(packetID, e.MessageID)
		r.counts[e.MessageID]++
		return nil
	})
	if err != nil {
		return stats, fmt.Errorf("storage: rebuild references from inflight entries: %w", err)
	}

	pb := s.db.NewBatch()
	defer pb.Close()
	lower, upper = kindBounds(kindMessage)
	err = s.scan(lower, upper, func(key, _ []byte) error {
		id, err := parseMessageKey(key)
		if err != nil {
			return err
		}
		if r.counts[id] > 0 {
			stats.messages++
			return nil
		}
		stats.orphans++
		return pb.Delete(key, nil)
	})
	if err != nil {
		return stats, fmt.Errorf("storage: scan message bodies: %w", err)
	}
	stats.dangling = len(r.counts) - stats.messages

	if !pb.Empty() {
		if err := pb.Commit(pebble.Sync); err != nil {
			return stats, fmt.Errorf("storage: delete %d orphan message bodies: %w", stats.orphans, err)
		}
	}
	return stats, nil
}
