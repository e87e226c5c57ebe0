package node

import (
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/storage"
)

// retainedUpdate is a change to the retained store that takes effect in memory
// once its storage batch has committed. msg nil deletes the topic.
type retainedUpdate struct {
	topic string
	msg   *message
}

// stageRetained adds a retained set or delete to b and to updates. An empty
// payload deletes the topic [MQTT-3.3.1-10]. It returns ReasonQuotaExceeded when
// a new topic would pass the retained limits; the message is still routed.
func (s *Server) stageRetained(msg *message, b *storage.Batch, updates *[]retainedUpdate) packet.ReasonCode {
	if len(msg.payload) == 0 {
		b.DeleteRetained(msg.topic)
		*updates = append(*updates, retainedUpdate{topic: msg.topic})
		return packet.ReasonSuccess
	}
	lim := &s.cfg.Limits
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
		return packet.ReasonQuotaExceeded
	}
	if msg.id == 0 {
		msg.id = s.store.NextID()
	}
	b.PutRetained(msg.record())
	*updates = append(*updates, retainedUpdate{topic: msg.topic, msg: msg})
	return packet.ReasonSuccess
}

// applyRetained makes committed retained changes visible to new subscribers.
// The retained limits count client messages only, not the $SYS topics.
func (s *Server) applyRetained(updates []retainedUpdate) {
	for _, u := range updates {
		if old, ok := s.retained.Get(u.topic); ok {
			s.stats.retainedBytes.Add(-old.size())
			s.stats.retainedCount.Add(-1)
		}
		if u.msg == nil {
			s.retained.Delete(u.topic)
			continue
		}
		s.retained.Set(u.topic, u.msg)
		s.stats.retainedBytes.Add(u.msg.size())
		s.stats.retainedCount.Add(1)
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
