package node

import (
	"fmt"
	"sort"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/router"
	"github.com/starling-mqtt/starling/storage"
)

// restore rebuilds retained messages and persistent sessions from the store.
// Sessions whose expiry passed while the node was down are deleted; wills of
// clients that were connected when the node stopped are scheduled, since their
// connections ended without a DISCONNECT.
func (s *Server) restore() error {
	start := time.Now()
	if err := s.restoreRetained(); err != nil {
		return err
	}
	sessions, err := s.restoreSessions(start)
	if err != nil {
		return err
	}
	if err := s.restoreSubscriptions(); err != nil {
		return err
	}
	bodies := make(map[uint64]*message)
	for _, ss := range sessions {
		if err := s.restoreSessionQueues(ss, bodies); err != nil {
			return fmt.Errorf("restore session %q: %w", ss.id, err)
		}
	}
	s.log.Info("state restored", "sessions", len(sessions), "retained", s.retained.Len(),
		"subscriptions", s.stats.subscriptions.Load(), "took", time.Since(start))
	return nil
}

// restoreSessions loads session records; it returns the live ones.
func (s *Server) restoreSessions(now time.Time) ([]*session, error) {
	var live []*session
	var dead []string
	err := s.store.Sessions(func(rec *storage.Session) error {
		disconnected := now
		if rec.DisconnectedAt != 0 {
			disconnected = time.Unix(0, rec.DisconnectedAt)
		}
		if rec.ExpiryInterval == 0 || (rec.ExpiryInterval != neverExpires &&
			now.Sub(disconnected) >= time.Duration(rec.ExpiryInterval)*time.Second) {
			dead = append(dead, rec.ClientID)
			return nil
		}
		ss := newSession(s, rec.ClientID)
		ss.persistent.Store(true)
		ss.mu.restored = true
		ss.mu.owner, ss.mu.ownerUnknown = rec.Owner, !rec.OwnerKnown
		ss.mu.version = rec.ProtocolVersion
		ss.mu.expiry = rec.ExpiryInterval
		ss.mu.disconnectedAt = disconnected
		ss.mu.nextPID = rec.NextPacketID
		if len(rec.Will) > 0 && !(s.cfg.WillsByHome && rec.DisconnectedAt == 0) {
			w, err := decodeWill(rec.Will)
			if err != nil {
				s.log.Error("stored will is unreadable; dropping it", keyClientID, rec.ClientID, keyErr, err)
			} else {
				ss.mu.will = w
			}
		}
		s.reg.put(ss)
		live = append(live, ss)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load sessions: %w", err)
	}
	if len(dead) > 0 {
		b := s.store.NewBatch()
		for _, id := range dead {
			b.DeleteSession(id)
		}
		s.commitNoSync(b, "")
		b.Close()
	}
	for _, ss := range live {
		ss.mu.Lock()
		ss.scheduleWillLocked()
		ss.scheduleExpiryLocked()
		ss.mu.Unlock()
	}
	return live, nil
}

// scheduleWillLocked arms the will of a restored session: what is left of its
// delay, counted from the disconnect.
func (ss *session) scheduleWillLocked() {
	if ss.mu.will == nil {
		return
	}
	delay := time.Duration(min(ss.mu.will.Properties.WillDelay, ss.mu.expiry))*time.Second - time.Since(ss.mu.disconnectedAt)
	gen := ss.mu.gen
	ss.mu.willTimer = time.AfterFunc(max(delay, 0), func() { ss.fireWill(gen) })
}

func (s *Server) restoreSubscriptions() error {
	var orphans []*storage.Subscription
	err := s.store.Subscriptions(func(rec *storage.Subscription) error {
		ss := s.reg.get(rec.ClientID)
		if ss == nil {
			orphans = append(orphans, rec)
			return nil
		}
		group, topic, _ := router.ParseShared(rec.Filter)
		sub := &subscription{
			filter: rec.Filter,
			group:  group,
			topic:  topic,
			opts: packet.Subscription{
				Filter:            rec.Filter,
				QoS:               rec.QoS,
				NoLocal:           rec.NoLocal,
				RetainAsPublished: rec.RetainAsPublished,
				RetainHandling:    rec.RetainHandling,
			},
			subID: rec.SubID,
		}
		ss.putSubscriptionLocked(sub)
		ss.addSubscriptionLocked(sub) // no cluster yet: SetCluster re-asserts the routes
		s.stats.subscriptions.Add(1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load subscriptions: %w", err)
	}
	if len(orphans) > 0 {
		b := s.store.NewBatch()
		for _, o := range orphans {
			b.DeleteSubscription(o.ClientID, o.Filter)
		}
		s.commitNoSync(b, "")
		b.Close()
	}
	return nil
}

// restoreSessionQueues loads a session's inflight and queued messages and its
// inbound QoS 2 packet ids. Bodies shared by several sessions are loaded once.
func (s *Server) restoreSessionQueues(ss *session, bodies map[uint64]*message) error {
	load := func(id uint64) (*message, error) {
		if m, ok := bodies[id]; ok {
			return m, nil
		}
		rec, err := s.store.Message(id)
		if err != nil {
			return nil, fmt.Errorf("load message %d: %w", id, err)
		}
		m, err := messageFromRecord(rec)
		if err != nil {
			return nil, err
		}
		bodies[id] = m
		return m, nil
	}

	var inflight []*delivery
	err := s.store.Inflight(ss.id, func(e *storage.InflightEntry) error {
		m, err := load(e.MessageID)
		if err != nil {
			return err
		}
		inflight = append(inflight, &delivery{msg: m, qos: e.QoS, retain: e.Retain, subIDs: e.SubIDs,
			seq: e.Seq, stored: true, pid: e.PacketID, released: e.Released})
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(inflight, func(i, j int) bool { return inflight[i].seq < inflight[j].seq })

	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, d := range inflight {
		ss.setInflightLocked(d)
	}
	err = s.store.Queue(ss.id, func(e *storage.QueueEntry) error {
		m, err := load(e.MessageID)
		if err != nil {
			return err
		}
		ss.mu.queue.push(&delivery{msg: m, qos: e.QoS, retain: e.Retain, subIDs: e.SubIDs, seq: e.Seq, stored: true})
		return nil
	})
	if err != nil {
		return err
	}
	return s.store.InboundQoS2(ss.id, func(pid uint16) error {
		ss.addInboundQoS2Locked(pid)
		return nil
	})
}
