package node

import (
	"fmt"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/storage"
)

// retainedUpdate is a change to the retained store that takes effect in memory
// once its storage batch has committed. msg nil deletes the topic.
type retainedUpdate struct {
	topic string
	msg   *message

	// In a cluster: the clock of the write, and the fix-up count of the
	// topic when the write was staged (see retainedIndex.fixups).
	clocked bool
	clock   storage.RetainedClock
	fixSeq  uint64
	// drop removes the topic without keeping a tombstone: a delete whose
	// clock is older than the tombstone horizon.
	drop bool
}

// stageRetained adds a retained set or delete to b and to updates. An empty
// payload deletes the topic [MQTT-3.3.1-10]. It returns ReasonQuotaExceeded when
// a new topic would pass the retained limits; the message is still routed.
func (s *Server) stageRetained(msg *message, b *storage.Batch, updates *[]retainedUpdate) packet.ReasonCode {
	if s.cluster != nil && !isSysTopic(msg.topic) {
		return s.stageRetainedClustered(msg, b, updates)
	}
	if len(msg.payload) == 0 {
		b.DeleteRetained(msg.topic)
		*updates = append(*updates, retainedUpdate{topic: msg.topic})
		return packet.ReasonSuccess
	}
	if !s.retainedFits(msg) {
		return packet.ReasonQuotaExceeded
	}
	if msg.id == 0 {
		msg.id = s.store.NextID()
	}
	b.PutRetained(msg.record())
	*updates = append(*updates, retainedUpdate{topic: msg.topic, msg: msg})
	return packet.ReasonSuccess
}

// retainedFits reports whether msg fits the retained limits in place of the
// current message of its topic, and counts and logs a rejection.
func (s *Server) retainedFits(msg *message) bool {
	lim := s.lim()
	old, exists := s.retained.Get(msg.topic)
	growth := msg.size()
	if exists {
		growth -= old.size()
	}
	// A replacement is charged for its growth, so replacing a small message
	// with a large one cannot pass the byte limit.
	if (!exists && s.stats.retainedCount.Load() >= int64(lim.MaxRetainedMessages)) ||
		(growth > 0 && s.stats.retainedBytes.Load()+growth > lim.MaxRetainedBytes) {
		s.stats.retainedRejected.Add(1)
		s.clientWarn.log(s.log, "retained store is full; message not retained", keyTopic, msg.topic,
			"max_messages", lim.MaxRetainedMessages, "max_bytes", lim.MaxRetainedBytes)
		return false
	}
	return true
}

// applyRetained makes committed retained changes visible to new subscribers.
// The retained limits count client messages only, not the $SYS topics.
//
// In a cluster two batches that write one topic can commit in the opposite
// order of their clocks, so the store may end up holding the older write.
// applyRetained runs the updates in commit order under the index lock and
// writes the newer version back when that happened.
func (s *Server) applyRetained(updates []retainedUpdate) {
	idx := &s.retainedIdx
	idx.mu.Lock()
	defer idx.mu.Unlock()
	for _, u := range updates {
		if u.clocked {
			if cur, ok := idx.mu.entries[u.topic]; ok && u.clock.Compare(cur.clock) < 0 {
				s.rewriteRetainedLocked(u.topic, cur)
				continue
			}
		}
		if old, ok := s.retained.Get(u.topic); ok {
			s.stats.retainedBytes.Add(-old.size())
			s.stats.retainedCount.Add(-1)
		}
		switch {
		case u.msg == nil && (!u.clocked || u.drop):
			idx.removeLocked(u.topic)
		case u.msg == nil:
			idx.setLocked(u.topic, retainedVersion{clock: u.clock, tombstone: true})
		default:
			idx.setLocked(u.topic, retainedVersion{clock: u.clock})
		}
		if u.msg == nil {
			s.retained.Delete(u.topic)
		} else {
			s.retained.Set(u.topic, u.msg)
			s.stats.retainedBytes.Add(u.msg.size())
			s.stats.retainedCount.Add(1)
		}
		if u.clocked && idx.mu.fixups[u.topic] != u.fixSeq {
			// A fix-up of this topic may have committed after this write
			// and overwritten it on disk.
			s.rewriteRetainedLocked(u.topic, idx.mu.entries[u.topic])
		}
	}
}

// retainedFor returns the retained messages matching a new subscription, as
// deliveries with RETAIN set [MQTT-3.3.1-8] and QoS capped at the granted QoS.
// Expired messages are skipped.
func (s *Server) retainedFor(topicFilter string, qos byte, subID uint32) []*delivery {
	now := time.Now()
	var out []*delivery
	s.retained.Match(topicFilter, func(_ string, m *message) bool {
		if m.expired(now) {
			return true
		}
		d := &delivery{msg: m, qos: min(m.qos, qos), retain: true}
		if subID != 0 {
			d.subIDs = []uint32{subID}
		}
		out = append(out, d)
		return true
	})
	return out
}

// restoreRetained loads the retained messages, their clocks and the
// tombstones. Expired messages without a clock are deleted. Expired
// messages with a clock stay until pruneRetained drops them on every node
// alike, so that the digests of the nodes keep agreeing.
func (s *Server) restoreRetained() error {
	now := time.Now()
	var expired []string
	idx := &s.retainedIdx
	idx.mu.Lock()
	defer idx.mu.Unlock()
	err := s.store.RetainedRecords(func(rec *storage.RetainedRecord) error {
		if rec.Tombstone {
			idx.setLocked(rec.Topic, retainedVersion{clock: rec.Clock, tombstone: true})
			return nil
		}
		m, err := messageFromRecord(&rec.Message)
		if err != nil {
			return err
		}
		m.stored = false // retained records are stored whole, not as shared bodies
		if m.expired(now) && rec.Clock.IsZero() {
			expired = append(expired, m.topic)
			return nil
		}
		idx.setLocked(m.topic, retainedVersion{clock: rec.Clock})
		s.retained.Set(m.topic, m)
		s.stats.retainedBytes.Add(m.size())
		s.stats.retainedCount.Add(1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load retained messages: %w", err)
	}
	if len(expired) > 0 {
		b := s.store.NewBatch()
		for _, t := range expired {
			b.DeleteRetained(t)
		}
		s.commitNoSync(b, "")
		b.Close()
	}
	return nil
}
