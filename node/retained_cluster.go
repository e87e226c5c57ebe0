package node

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage"
)

// In a cluster every node stores every retained message. A write takes a
// hybrid logical clock reading from the cluster, is stored with it in the
// publisher's batch, and goes as a retained update (a ForwardMessage with
// retained_clock) to every other node through their outboxes. Receivers
// keep the write with the later clock (last writer wins), and keep deletes
// as tombstones until the cluster's horizon passes. The cluster compares
// digests of the index below with its peers to repair what a stream missed.

// maxDigestBuckets is the number of buckets the index hashes topics into.
// A digest of fewer buckets, a power of two, folds them together.
const maxDigestBuckets = 4096

// mergeChunk is the number of fetched entries written per batch.
const mergeChunk = 256

// retainedVersion is the clock of a topic's retained value in the index.
type retainedVersion struct {
	clock     storage.RetainedClock
	tombstone bool
}

// retainedIndex records the clock of every retained topic and tombstone,
// and a hash per bucket over them for digest comparison. Its lock is taken
// after no other lock of the node.
type retainedIndex struct {
	mu struct {
		sync.Mutex
		entries map[string]retainedVersion
		buckets [maxDigestBuckets]uint64
		// fixups maps a topic to the fixSeq of its last rewrite by
		// rewriteRetainedLocked. A write staged before a rewrite can have
		// committed after it, so applyRetained writes it again.
		fixups map[string]uint64
		fixSeq uint64
	}

	sent      atomic.Uint64 // retained updates staged for other nodes
	applied   atomic.Uint64 // remote retained writes stored here
	ignored   atomic.Uint64 // remote retained writes older than the stored one
	rewritten atomic.Uint64 // fix-ups after commits that landed out of clock order
	pruned    atomic.Uint64 // tombstones and expired messages dropped past the horizon
}

// setLocked records the version of topic and updates its bucket hash.
func (x *retainedIndex) setLocked(topic string, v retainedVersion) {
	if x.mu.entries == nil {
		x.mu.entries = make(map[string]retainedVersion)
	}
	b := digestBucket(topic)
	if old, ok := x.mu.entries[topic]; ok {
		x.mu.buckets[b] ^= entryHash(topic, old)
	}
	x.mu.entries[topic] = v
	x.mu.buckets[b] ^= entryHash(topic, v)
}

// removeLocked removes topic from the index.
func (x *retainedIndex) removeLocked(topic string) {
	old, ok := x.mu.entries[topic]
	if !ok {
		return
	}
	x.mu.buckets[digestBucket(topic)] ^= entryHash(topic, old)
	delete(x.mu.entries, topic)
	delete(x.mu.fixups, topic)
}

// lookup returns the version of topic and its fix-up count.
func (x *retainedIndex) lookup(topic string) (retainedVersion, bool, uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	v, ok := x.mu.entries[topic]
	return v, ok, x.mu.fixups[topic]
}

func digestBucket(topic string) uint32 {
	h := fnv.New64a()
	h.Write([]byte(topic))
	return uint32(h.Sum64() & (maxDigestBuckets - 1))
}

// entryHash hashes a topic with its version. The bucket hash is the XOR
// of its entries' hashes, so it does not depend on their order.
func entryHash(topic string, v retainedVersion) uint64 {
	h := fnv.New64a()
	var buf [13]byte
	h.Write([]byte(topic))
	binary.BigEndian.PutUint64(buf[:8], uint64(v.clock.WallMS))
	binary.BigEndian.PutUint32(buf[8:12], v.clock.Logical)
	if v.tombstone {
		buf[12] = 1
	}
	h.Write([]byte{0})
	h.Write(buf[:])
	h.Write([]byte(v.clock.SiteID))
	return h.Sum64()
}

func clockFromProto(c *clusterpb.HLC) storage.RetainedClock {
	if c == nil {
		return storage.RetainedClock{}
	}
	return storage.RetainedClock{WallMS: c.WallMs, Logical: c.Logical, SiteID: c.SiteId}
}

func clockToProto(c storage.RetainedClock) *clusterpb.HLC {
	return &clusterpb.HLC{WallMs: c.WallMS, Logical: c.Logical, SiteId: c.SiteID}
}

// stageRetainedClustered is stageRetained in a cluster: it stores the write
// with a new clock reading, and marks msg so that routeRemote stages the
// retained update for every other node in the same batch. A peer whose
// outbox is full makes it refuse the write, since the update could not
// be kept for that peer (invariant 7).
func (s *Server) stageRetainedClustered(msg *message, b *storage.Batch, updates *[]retainedUpdate) packet.ReasonCode {
	tombstone := len(msg.payload) == 0
	if !tombstone && !s.retainedFits(msg) {
		return packet.ReasonQuotaExceeded
	}
	for _, site := range s.cluster.RetainedPeers() {
		if s.cluster.Full(site) {
			s.stats.retainedRejected.Add(1)
			s.clientWarn.log(s.log, "outbox of a node is full; retained message not stored", keyTopic, msg.topic, "peer_site", site)
			return packet.ReasonQuotaExceeded
		}
	}
	clock := clockFromProto(s.cluster.RetainedClock())
	if msg.id == 0 {
		msg.id = s.store.NextID()
	}
	msg.retainedClock = &clock
	rec := &storage.RetainedRecord{Clock: clock, Tombstone: tombstone}
	if tombstone {
		rec.Topic = msg.topic
	} else {
		rec.Message = *msg.record()
	}
	b.PutRetainedRecord(rec)

	_, _, fixSeq := s.retainedIdx.lookup(msg.topic)
	u := retainedUpdate{topic: msg.topic, clocked: true, clock: clock, fixSeq: fixSeq}
	if !tombstone {
		u.msg = msg
	}
	*updates = append(*updates, u)
	return packet.ReasonSuccess
}

// stageRetainedUpdates stages the retained update of msg, which
// stageRetainedClustered stored, for every other node, and appends the
// tickets to fw. The updates go through the outboxes whatever the QoS.
func (s *Server) stageRetainedUpdates(msg *message, b *storage.Batch, fw *forwards) {
	if msg.retainedClock == nil {
		return
	}
	now := time.Now()
	for _, site := range s.cluster.RetainedPeers() {
		m := msg.forwardMessage(now)
		m.Retain = true
		m.RetainedClock = clockToProto(*msg.retainedClock)
		t, err := s.cluster.Stage(site, m, b)
		if err != nil {
			s.stats.forwardFailed.Add(1)
			s.clientWarn.log(s.log, "retained update not staged for a node; digest repair will copy it", "peer_site", site, keyTopic, msg.topic, keyErr, err)
			continue
		}
		fw.tickets = append(fw.tickets, t)
		s.retainedIdx.sent.Add(1)
	}
}

// stageRemoteRetained stages a retained write from another node into b when
// its clock is later than the one stored for the topic, or than one staged
// earlier in updates, and reports whether it did. The write reaches no
// subscriber: the ordinary forwarded copy of the publish does that.
func (s *Server) stageRemoteRetained(senderSite string, fm *clusterpb.ForwardMessage, b *storage.Batch, updates *[]retainedUpdate) bool {
	clock := clockFromProto(fm.RetainedClock)
	if s.cluster != nil {
		s.cluster.ObserveRetainedClock(fm.RetainedClock)
	}
	cur, exists, fixSeq := s.retainedIdx.lookup(fm.Topic)
	for i := len(*updates) - 1; i >= 0; i-- {
		if u := &(*updates)[i]; u.topic == fm.Topic && u.clocked {
			cur, exists = retainedVersion{clock: u.clock, tombstone: u.msg == nil}, true
			break
		}
	}
	if exists && clock.Compare(cur.clock) <= 0 {
		s.retainedIdx.ignored.Add(1)
		return false
	}

	if len(fm.Payload) == 0 {
		if clock.WallMS < time.Now().Add(-s.retainedHorizon()).UnixMilli() {
			// Past the horizon every node drops tombstones: delete what is
			// older here without keeping one.
			if !exists || cur.tombstone {
				s.retainedIdx.ignored.Add(1)
				return false
			}
			b.DeleteRetained(fm.Topic)
			*updates = append(*updates, retainedUpdate{topic: fm.Topic, clocked: true, clock: clock, fixSeq: fixSeq, drop: true})
			s.retainedIdx.applied.Add(1)
			return true
		}
		b.PutRetainedRecord(&storage.RetainedRecord{Message: storage.Message{Topic: fm.Topic}, Clock: clock, Tombstone: true})
		*updates = append(*updates, retainedUpdate{topic: fm.Topic, clocked: true, clock: clock, fixSeq: fixSeq})
		s.retainedIdx.applied.Add(1)
		return true
	}

	msg, err := messageFromForward(fm)
	if err != nil {
		s.clientWarn.log(s.log, "retained update dropped: invalid", "peer_site", senderSite, keyErr, err)
		return false
	}
	msg.fromPeer, msg.shareGroups = false, nil
	msg.retain = true
	msg.id = s.store.NextID()
	if !s.retainedFits(msg) {
		// NOTE: a node that rejects a remote write at its retained limits
		// differs from the others until the topic is written again.
		return false
	}
	b.PutRetainedRecord(&storage.RetainedRecord{Message: *msg.record(), Clock: clock})
	*updates = append(*updates, retainedUpdate{topic: fm.Topic, msg: msg, clocked: true, clock: clock, fixSeq: fixSeq})
	s.retainedIdx.applied.Add(1)
	return true
}

// retainedHorizon returns how long tombstones are kept.
func (s *Server) retainedHorizon() time.Duration {
	if s.cluster == nil {
		return 24 * time.Hour
	}
	return s.cluster.RetainedHorizon()
}

// rewriteRetainedLocked writes the indexed version cur of topic back to the
// store after a commit of an older version overwrote it. The caller holds
// s.retainedIdx.mu.
func (s *Server) rewriteRetainedLocked(topic string, cur retainedVersion) {
	idx := &s.retainedIdx
	rec := &storage.RetainedRecord{Clock: cur.clock, Tombstone: cur.tombstone}
	if cur.tombstone {
		rec.Topic = topic
	} else if m, ok := s.retained.Get(topic); ok {
		rec.Message = *m.record()
	} else {
		return
	}
	b := s.store.NewBatch()
	defer b.Close()
	b.PutRetainedRecord(rec)
	s.commitSync(b, "")
	idx.mu.fixSeq++
	if idx.mu.fixups == nil {
		idx.mu.fixups = make(map[string]uint64)
	}
	idx.mu.fixups[topic] = idx.mu.fixSeq
	idx.rewritten.Add(1)
}

// RetainedDigest returns one hash per bucket over the topics and clocks of
// the retained messages and tombstones. buckets must be a power of two
// from 1 to 4096.
func (s *Server) RetainedDigest(buckets uint32) ([]uint64, error) {
	if err := checkBuckets(buckets); err != nil {
		return nil, err
	}
	out := make([]uint64, buckets)
	idx := &s.retainedIdx
	idx.mu.Lock()
	defer idx.mu.Unlock()
	for i, h := range idx.mu.buckets {
		out[uint32(i)&(buckets-1)] ^= h
	}
	return out, nil
}

func checkBuckets(n uint32) error {
	if n == 0 || n > maxDigestBuckets || n&(n-1) != 0 {
		return fmt.Errorf("node: %d retained digest buckets is invalid: use a power of two from 1 to %d", n, maxDigestBuckets)
	}
	return nil
}

// RetainedEntries calls fn with every retained message and tombstone in
// the buckets want of a digest of buckets buckets, or with all of them when
// want is empty, each as a ForwardMessage with its retained clock. It
// copies the index first, so fn may block.
func (s *Server) RetainedEntries(buckets uint32, want []uint32, fn func(*clusterpb.ForwardMessage) error) error {
	if err := checkBuckets(buckets); err != nil {
		return err
	}
	wanted := make(map[uint32]bool, len(want))
	for _, w := range want {
		wanted[w] = true
	}
	type entry struct {
		topic string
		v     retainedVersion
		msg   *message
	}
	var list []entry
	idx := &s.retainedIdx
	idx.mu.Lock()
	for topic, v := range idx.mu.entries {
		if len(want) > 0 && !wanted[digestBucket(topic)&(buckets-1)] {
			continue
		}
		e := entry{topic: topic, v: v}
		if !v.tombstone {
			m, ok := s.retained.Get(topic)
			if !ok {
				continue
			}
			e.msg = m
		}
		list = append(list, e)
	}
	idx.mu.Unlock()

	now := time.Now()
	for _, e := range list {
		fm := &clusterpb.ForwardMessage{Topic: e.topic, Retain: true}
		if e.msg != nil {
			fm = e.msg.forwardMessage(now)
			fm.Retain = true
		}
		fm.RetainedClock = clockToProto(e.v.clock)
		if err := fn(fm); err != nil {
			return err
		}
	}
	return nil
}

// MergeRetained stores the entries that are newer than what this node has,
// last writer wins, and returns how many it applied and ignored.
//
// A non-zero staleBeforeMS (unix ms) marks entries as a full snapshot taken
// after this node was cut off for longer than the tombstone horizon. A
// local topic missing from the snapshot whose clock is older than
// staleBeforeMS was deleted elsewhere and its tombstone dropped since, so
// it is dropped here too. Newer local writes stay, and the other nodes
// fetch them in their digest repair.
func (s *Server) MergeRetained(entries []*clusterpb.ForwardMessage, staleBeforeMS int64) (applied, ignored int, err error) {
	before := s.retainedIdx.applied.Load()
	beforeIgnored := s.retainedIdx.ignored.Load()
	for start := 0; start < len(entries); start += mergeChunk {
		chunk := entries[start:min(start+mergeChunk, len(entries))]
		b := s.store.NewBatch()
		var updates []retainedUpdate
		for _, fm := range chunk {
			if fm.RetainedClock == nil || fm.Topic == "" {
				continue
			}
			s.stageRemoteRetained("", fm, b, &updates)
		}
		err := b.Commit()
		b.Close()
		if err != nil {
			s.stats.storageErrors.Add(1)
			return 0, 0, fmt.Errorf("store fetched retained messages: %w", err)
		}
		s.applyRetained(updates)
	}
	if staleBeforeMS != 0 {
		in := make(map[string]bool, len(entries))
		for _, fm := range entries {
			in[fm.Topic] = true
		}
		if err := s.dropRetainedWhere(func(topic string, v retainedVersion, _ *message) bool {
			return !in[topic] && v.clock.WallMS < staleBeforeMS
		}); err != nil {
			return 0, 0, err
		}
	}
	return int(s.retainedIdx.applied.Load() - before), int(s.retainedIdx.ignored.Load() - beforeIgnored), nil
}

// PruneRetained drops the tombstones whose clock is older than horizon and
// the messages that expired more than horizon ago. Every node applies the
// same rule, so their digests agree again after each has pruned.
func (s *Server) PruneRetained(horizon time.Duration) error {
	now := time.Now()
	cutoff := now.Add(-horizon)
	return s.dropRetainedWhere(func(_ string, v retainedVersion, m *message) bool {
		if v.tombstone {
			return v.clock.WallMS < cutoff.UnixMilli()
		}
		return !v.clock.IsZero() && m != nil && !m.expiresAt.IsZero() && m.expiresAt.Before(cutoff)
	})
}

// dropRetainedWhere deletes, without tombstones, the topics for which drop
// returns true.
func (s *Server) dropRetainedWhere(drop func(topic string, v retainedVersion, m *message) bool) error {
	var updates []retainedUpdate
	b := s.store.NewBatch()
	defer b.Close()
	idx := &s.retainedIdx
	idx.mu.Lock()
	for topic, v := range idx.mu.entries {
		m, _ := s.retained.Get(topic)
		if drop(topic, v, m) {
			b.DeleteRetained(topic)
			updates = append(updates, retainedUpdate{topic: topic, clocked: true, clock: v.clock, fixSeq: idx.mu.fixups[topic], drop: true})
		}
	}
	idx.mu.Unlock()
	if len(updates) == 0 {
		return nil
	}
	if err := b.Commit(); err != nil {
		s.stats.storageErrors.Add(1)
		return fmt.Errorf("drop retained messages: %w", err)
	}
	s.applyRetained(updates)
	s.retainedIdx.pruned.Add(uint64(len(updates)))
	return nil
}

// RetainedSyncs returns when this node last completed a retained sync with
// each peer, by site id.
func (s *Server) RetainedSyncs() (map[string]time.Time, error) {
	ms, err := s.store.RetainedSyncs()
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(ms))
	for site, at := range ms {
		out[site] = time.UnixMilli(at)
	}
	return out, nil
}

// RecordRetainedSync records durably that a retained sync with the peer of
// site id site completed at at.
func (s *Server) RecordRetainedSync(site string, at time.Time) error {
	b := s.store.NewBatch()
	defer b.Close()
	b.PutRetainedSync(site, at.UnixMilli())
	if err := b.Commit(); err != nil {
		return fmt.Errorf("record retained sync with %s: %w", site, err)
	}
	return nil
}

// RetainedCounters returns how many retained updates this node staged
// for other nodes, and how many remote writes it applied and ignored as
// older than the one it had.
func (s *Server) RetainedCounters() (sent, applied, ignored uint64) {
	idx := &s.retainedIdx
	return idx.sent.Load(), idx.applied.Load(), idx.ignored.Load()
}

// RetainedMaxClock returns the latest clock in the retained index, so the
// cluster's clock starts past every write this node stored before a
// restart.
func (s *Server) RetainedMaxClock() *clusterpb.HLC {
	idx := &s.retainedIdx
	idx.mu.Lock()
	defer idx.mu.Unlock()
	var latest storage.RetainedClock
	for _, v := range idx.mu.entries {
		if v.clock.Compare(latest) > 0 {
			latest = v.clock
		}
	}
	return clockToProto(latest)
}
