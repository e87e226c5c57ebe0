package node

import (
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-mqtt/starling/router"
	"github.com/starling-mqtt/starling/storage"
)

// sharedPicker holds the per-group state of the shared subscription strategies.
// NOTE: entries are never removed, so a node that sees many short-lived share
// groups keeps one small entry for each of them until it restarts.
type sharedPicker struct {
	seed     maphash.Seed
	counters sync.Map // group key -> *atomic.Uint64, for round robin
	sticky   sync.Map // group key -> client id of the current member, for sticky
}

// shareKey names one shared subscription group: its name and topic filter.
func shareKey(group, topicFilter string) string { return group + "\x00" + topicFilter }

// pickShared returns the member of a shared group that gets the next message,
// by the configured strategy, preferring connected members; exclude names a
// client that must not be chosen ("" for none). It returns nil when no member
// is left.
func (s *Server) pickShared(key string, members []router.Entry, publisher, exclude string) *router.Entry {
	candidates := make([]*router.Entry, 0, len(members))
	for i := range members {
		e := &members[i]
		if e.ClientID == exclude {
			continue
		}
		if sess := s.reg.get(e.ClientID); sess != nil && sess.online() {
			candidates = append(candidates, e)
		}
	}
	if len(candidates) == 0 {
		// No member is connected: queue for an offline persistent member.
		for i := range members {
			if members[i].ClientID != exclude {
				candidates = append(candidates, &members[i])
			}
		}
	}
	if len(candidates) == 0 {
		return nil
	}

	p := &s.shared
	switch s.cfg.Features.SharedStrategy {
	case SharedRandom:
		return candidates[rand.IntN(len(candidates))]
	case SharedHash:
		// Rendezvous hashing: one publisher keeps its member while the group
		// changes, unless that member leaves.
		var best *router.Entry
		var bestScore uint64
		for _, e := range candidates {
			score := maphash.String(p.seed, publisher+"\x00"+e.ClientID)
			if best == nil || score > bestScore {
				best, bestScore = e, score
			}
		}
		return best
	case SharedSticky:
		if v, ok := p.sticky.Load(key); ok {
			for _, e := range candidates {
				if e.ClientID == v.(string) {
					return e
				}
			}
		}
		e := candidates[rand.IntN(len(candidates))]
		p.sticky.Store(key, e.ClientID)
		return e
	default:
		// Load first: LoadOrStore would allocate the key and a counter
		// for every message.
		v, ok := p.counters.Load(key)
		if !ok {
			v, _ = p.counters.LoadOrStore(key, new(atomic.Uint64))
		}
		n := v.(*atomic.Uint64).Add(1)
		return candidates[n%uint64(len(candidates))]
	}
}

// online reports whether a client is connected to the session.
func (ss *session) online() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.mu.conn != nil
}

// takeSharedForRedeliveryLocked collects the shared-subscription messages that
// go to another member now that this member's connection is gone (MQTT 5.0
// section 4.8.2). Queued messages that were never sent move. Inflight QoS 1
// messages are copied and also stay here, so the member resends them if it
// resumes (QoS 1 allows the duplicate); each is offered elsewhere once. Inflight
// QoS 2 messages stay with this member even when its session ends
// [MQTT-4.8.2-4] [MQTT-4.8.2-5].
func (ss *session) takeSharedForRedeliveryLocked() []*delivery {
	var out []*delivery
	q := &ss.mu.queue
	kept := q.items[:0]
	for _, d := range q.items[q.head:] {
		if d.shareKey == "" {
			kept = append(kept, d)
			continue
		}
		q.bytes -= d.msg.size()
		q.gauge.Add(-1)
		ss.releaseLocked(d)
		out = append(out, d)
	}
	clear(q.items[len(kept):])
	q.items, q.head = kept, 0

	for _, d := range ss.mu.inflight {
		if d.shareKey != "" && d.qos == 1 && !d.redelivered {
			d.redelivered = true
			out = append(out, d)
		}
	}
	return out
}

// redeliverShared offers each delivery to another member of its group: one
// on this node, else, in a cluster, one on another node. A delivery with no
// other member left is dropped and counted.
func (s *Server) redeliverShared(from string, ds []*delivery) {
	if len(ds) == 0 {
		return
	}
	b := s.store.NewBatch()
	defer b.Close()
	var targets []target
	var fw forwards
	handedOff := 0
	scratch := make([]router.Entry, 0, 8)
	for _, d := range ds {
		scratch = s.trie.Match(d.msg.topic, scratch[:0])
		var members []router.Entry
		for _, e := range scratch {
			if e.Group != "" && shareKey(e.Group, e.Filter) == d.shareKey {
				members = append(members, e)
			}
		}
		e := s.pickShared(d.shareKey, members, d.msg.publisher, from)
		var sess *session
		if e != nil {
			sess = s.reg.get(e.ClientID)
		}
		if sess == nil {
			if s.handOffShared(d.msg, d.shareKey, b, &fw) {
				handedOff++
				continue
			}
			s.stats.droppedNoMember.Add(1)
			s.settleShared(d.msg)
			continue
		}
		nd := &delivery{msg: d.msg, qos: min(d.msg.qos, e.QoS), shareKey: d.shareKey}
		if e.SubID != 0 {
			nd.subIDs = []uint32{e.SubID}
		}
		t := target{sess: sess, d: nd}
		s.stageDelivery(d.msg, b, t)
		targets = append(targets, t)
	}
	if !b.Empty() {
		if err := b.Commit(); err != nil {
			s.stats.storageErrors.Add(1)
			fw.release(s.cluster, false)
			s.log.Error("store shared redelivery failed; messages dropped", keyClientID, from, keyErr, err, "count", len(targets)+handedOff)
			return
		}
	}
	fw.release(s.cluster, true)
	for _, t := range targets {
		t.sess.deliver(t.d)
	}
	s.stats.sharedRedelivered.Add(uint64(len(targets) + handedOff))
}

// handOffShared stages msg, which no member of the share group key on this
// node can take any more, for another node with members, and reports
// whether there was one. A QoS 1 message published here goes into custody
// for that node (custody.go). One that came from another node stays in the
// custody of its origin, so the next node settles it with the origin.
func (s *Server) handOffShared(msg *message, key string, b *storage.Batch, fw *forwards) bool {
	if s.cluster == nil {
		return false
	}
	self := s.cluster.SiteID()
	origin := self
	if msg.fromPeer {
		origin = msg.originSite
	}
	group, filter, _ := strings.Cut(key, "\x00")
	site := s.nextSharedSite(msg.topic, group, filter, origin, []string{self})
	if site == "" {
		return false
	}
	// A copy, because other sessions may read msg: a message of this node
	// that was never stored or forwarded has no id yet.
	cp := *msg
	if !cp.fromPeer && cp.id == 0 {
		cp.id = s.store.NextID()
	}
	now := time.Now()
	next := cp.forwardMessage(now)
	next.ShareGroups = []string{group + "/" + filter}
	next.DeclinedBy = []string{self}
	t, err := s.cluster.Stage(site, next, b)
	if err != nil {
		s.stats.forwardFailed.Add(1)
		s.clientWarn.log(s.log, "shared subscription message not handed to another node", "peer_site", site, keyErr, err)
		return false
	}
	fw.tickets = append(fw.tickets, t)
	if !cp.fromPeer && cp.qos == 1 {
		s.putCustody(b, cp.id, site, next, now)
	}
	return true
}

// preferRemoteMember reports whether a message for the share group key
// should go to another node although members are here: none of them is
// connected, and another live node with members has not yet been offered the
// message. A connected member on another node then gets it at once rather
// than an offline member here in its queue. When every node is offered and
// declined, the last one queues the message for its offline member.
func (s *Server) preferRemoteMember(msg *message, key string, members []router.Entry) bool {
	if s.cluster == nil || anyOnline(s, members) {
		return false
	}
	group, filter, _ := strings.Cut(key, "\x00")
	self := s.cluster.SiteID()
	origin, declined := self, []string{self}
	if msg.fromPeer {
		origin = msg.originSite
		declined = append(slices.Clone(msg.declinedBy), self)
	}
	return s.nextSharedSite(msg.topic, group, filter, origin, declined) != ""
}

// anyOnline reports whether a client is connected to the session of one of
// the members.
func anyOnline(s *Server, members []router.Entry) bool {
	for i := range members {
		if sess := s.reg.get(members[i].ClientID); sess != nil && sess.online() {
			return true
		}
	}
	return false
}
