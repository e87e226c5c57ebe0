package node

import (
	"fmt"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/storage"
)

// sessionExpiryOf returns the Session Expiry Interval a CONNECT requests. In
// 3.1 and 3.1.1, clean session 0 means a session that never expires.
func sessionExpiryOf(cp *packet.Connect) uint32 {
	if cp.ProtocolVersion != packet.Version5 {
		if cp.CleanStart {
			return 0
		}
		return neverExpires
	}
	return cp.Properties.SessionExpiry
}

// sessionExpiryFor returns the Session Expiry Interval the node grants: the
// requested one, capped by Features.MaxSessionExpiry.
func (s *Server) sessionExpiryFor(cp *packet.Connect) uint32 {
	expiry := sessionExpiryOf(cp)
	if limit := s.cfg.Features.MaxSessionExpiry; limit != 0 && expiry > limit {
		return limit
	}
	return expiry
}

// attach binds a new connection to its session, taking it over from an older
// connection if there is one [MQTT-3.1.4-3], and sends the CONNACK followed by
// the messages the session owes the client. It returns Session Present.
func (s *Server) attach(c *conn, cp *packet.Connect, assigned string) (bool, error) {
	stripe := s.reg.lock(c.clientID)
	stripe.Lock()
	defer stripe.Unlock()

	if s.cluster != nil {
		// Another node may hold the session: it moves here first.
		if _, err := s.takeRemoteSession(c, cp); err != nil {
			return false, err
		}
	}
	old := s.reg.get(c.clientID)
	if old != nil {
		s.waitForOldConnection(old)
		old = s.reg.get(c.clientID)
	}
	if old != nil {
		// A session frozen by a move that never finished comes back to
		// life for its client here.
		old.mu.Lock()
		if old.mu.frozen {
			stopTimer(&old.mu.leaseTimer)
			old.unfreezeLocked()
		}
		old.mu.Unlock()
	}
	discard := cp.CleanStart
	if old != nil && !cp.CleanStart && !old.ownedBy(c.username()) {
		// A client id is not an identity: a session belongs to the user
		// that created it, and a client of another user starts afresh
		// rather than read the messages queued for the first one.
		s.log.Warn("session of another user discarded; the client starts a new session", keyClientID, c.clientID,
			keyRemote, c.remote, "username", c.username())
		discard = true
	}
	if old != nil && discard {
		// [MQTT-3.1.2-4] Clean start discards the previous session.
		old.mu.Lock()
		will, orphans := old.endSessionLocked(true)
		old.mu.Unlock()
		s.publishWill(old.id, will)
		s.redeliverShared(old.id, orphans)
		old = nil
	}

	sess, present := old, old != nil
	if sess == nil {
		sess = newSession(s, c.clientID)
		s.reg.put(sess)
	}

	sess.mu.Lock()
	defer sess.mu.Unlock()
	if err := sess.bindLocked(c, cp); err != nil {
		return false, err
	}
	c.send(c.connackFor(cp, present, assigned))
	c.boundVer.Store(uint32(c.version))
	sess.resendInflightLocked(c)
	sess.pumpLocked()
	s.stats.connects.Add(1)
	s.stats.connected.Add(1)
	return present, nil
}

// waitForOldConnection closes the connection that holds the session, if any,
// and waits until its reader has detached, so that nothing done on behalf of
// the old connection can touch the session afterwards.
func (s *Server) waitForOldConnection(old *session) {
	old.mu.Lock()
	oc := old.mu.conn
	last := old.mu.lastConn
	old.mu.Unlock()
	if oc != nil {
		s.stats.takeovers.Add(1)
		oc.kick(packet.ReasonSessionTakenOver)
	}
	if last != nil {
		<-last.doneChan()
	}
}

// bindLocked makes c the session's connection and records the session's new
// parameters, in storage too for a persistent session.
func (ss *session) bindLocked(c *conn, cp *packet.Connect) error {
	srv := ss.srv
	ss.mu.gen++
	ss.mu.conn = c
	ss.mu.lastConn = c
	ss.mu.owner, ss.mu.ownerUnknown = c.username(), false
	ss.mu.version = c.version
	ss.mu.disconnectedAt = time.Time{}
	stopTimer(&ss.mu.expiryTimer)
	// [MQTT-3.1.3-9] A new connection within the will delay cancels the old will.
	stopTimer(&ss.mu.willTimer)
	ss.mu.will = nil

	quota := int(srv.lim().MaxInflight)
	if cp.Properties.HasReceiveMaximum && int(cp.Properties.ReceiveMaximum) < quota {
		quota = int(cp.Properties.ReceiveMaximum)
	}
	ss.mu.sendQuota = quota

	expiry := srv.sessionExpiryFor(cp)
	wasPersistent := ss.persistent.Load()
	ss.mu.expiry = expiry
	ss.persistent.Store(expiry > 0)
	if wasPersistent != (expiry > 0) {
		ss.reflagRoutesLocked()
	}
	c.sess.Store(ss)

	switch {
	case expiry > 0:
		b := srv.store.NewBatch()
		defer b.Close()
		if err := ss.putRecordLocked(b, c.pendingWill()); err != nil {
			return err
		}
		if err := b.Commit(); err != nil {
			return fmt.Errorf("store session %q: %w", ss.id, err)
		}
	case wasPersistent:
		// The session continues in memory but ends with this connection.
		b := srv.store.NewBatch()
		defer b.Close()
		b.DeleteSession(ss.id)
		ss.forgetStoredLocked()
		if err := b.Commit(); err != nil {
			return fmt.Errorf("delete session %q: %w", ss.id, err)
		}
	}
	return nil
}

// putRecordLocked adds the session record, with the will it would publish, to b.
func (ss *session) putRecordLocked(b *storage.Batch, will *willMsg) error {
	rec := &storage.Session{
		ClientID:        ss.id,
		ProtocolVersion: ss.mu.version,
		ExpiryInterval:  ss.mu.expiry,
		NextPacketID:    ss.mu.nextPID,
		Owner:           ss.mu.owner,
	}
	if !ss.mu.disconnectedAt.IsZero() {
		rec.DisconnectedAt = ss.mu.disconnectedAt.UnixNano()
	}
	if will != nil {
		blob, err := encodeWill(will)
		if err != nil {
			return fmt.Errorf("encode will of %q: %w", ss.id, err)
		}
		rec.Will = blob
	}
	b.PutSession(rec)
	return nil
}

// forgetStoredLocked marks every delivery as memory-only after the session's
// storage entries were deleted in one go.
func (ss *session) forgetStoredLocked() {
	for _, d := range ss.mu.inflight {
		d.stored = false
	}
	for _, q := range []*deliveryQueue{&ss.mu.queue, &ss.mu.retainedQ} {
		for _, d := range q.items[q.head:] {
			d.stored = false
		}
	}
}

// detach ends the connection's hold on its session. A clean session ends here;
// a persistent one waits offline for its expiry. A will is published unless the
// client sent a normal DISCONNECT [MQTT-3.1.2-8], after its delay or when the
// session ends, whichever comes first [MQTT-3.1.3-9].
func (c *conn) detach() {
	ss := c.session()
	if ss == nil {
		return
	}
	ss.mu.Lock()
	if ss.mu.conn != c {
		ss.mu.Unlock()
		return
	}
	ss.mu.conn = nil
	ss.mu.waitingWriter = false
	ss.mu.disconnectedAt = time.Now()
	c.srv.stats.disconnects.Add(1)
	c.srv.stats.connected.Add(-1)
	will := c.pendingWill()
	if c.normalDisconnect {
		will = nil
	}
	if c.srv.cluster != nil {
		c.srv.reportDisconnect(ss.id, ss.persistent.Load())
	}

	if !ss.persistent.Load() || ss.mu.expiry == 0 {
		ended, orphans := ss.endSessionLocked(ss.persistent.Load())
		ss.mu.Unlock()
		if will == nil {
			will = ended
		}
		c.srv.publishWill(ss.id, will)
		c.srv.redeliverShared(ss.id, orphans)
		return
	}

	var orphans []*delivery
	if c.srv.cfg.Features.SharedRedelivery == SharedRedeliverImmediate {
		orphans = ss.takeSharedForRedeliveryLocked()
	}

	delay := time.Duration(0)
	if will != nil {
		delay = time.Duration(min(will.Properties.WillDelay, ss.mu.expiry)) * time.Second
	}
	if will != nil && delay > 0 {
		ss.mu.will = will
		gen := ss.mu.gen
		ss.mu.willTimer = time.AfterFunc(delay, func() { ss.fireWill(gen) })
	}
	b := c.srv.store.NewBatch()
	if err := ss.putRecordLocked(b, ss.mu.will); err != nil {
		c.srv.log.Error("store session on disconnect failed", keyClientID, ss.id, keyErr, err)
	}
	c.srv.commitNoSync(b, ss.id)
	b.Close()
	ss.scheduleExpiryLocked()
	ss.mu.Unlock()

	if will != nil && delay == 0 {
		c.srv.publishWill(ss.id, will)
	}
	c.srv.redeliverShared(ss.id, orphans)
}

// scheduleExpiryLocked starts the timer that ends an offline session.
func (ss *session) scheduleExpiryLocked() {
	if ss.mu.expiry == neverExpires {
		return
	}
	left := time.Duration(ss.mu.expiry)*time.Second - time.Since(ss.mu.disconnectedAt)
	gen := ss.mu.gen
	ss.mu.expiryTimer = time.AfterFunc(max(left, 0), func() { ss.srv.expire(ss, gen) })
}

// fireWill publishes a delayed will if the session is still offline.
func (ss *session) fireWill(gen uint64) {
	ss.mu.Lock()
	if ss.mu.gen != gen || ss.mu.conn != nil || ss.mu.will == nil || ss.mu.ended {
		ss.mu.Unlock()
		return
	}
	will := ss.mu.will
	ss.mu.will = nil
	ss.mu.willTimer = nil
	if ss.persistent.Load() {
		b := ss.srv.store.NewBatch()
		if err := ss.putRecordLocked(b, nil); err == nil {
			ss.srv.commitNoSync(b, ss.id)
		}
		b.Close()
	}
	ss.mu.Unlock()
	ss.srv.publishWill(ss.id, will)
}

// expire ends an offline session whose expiry interval has passed.
func (s *Server) expire(ss *session, gen uint64) {
	stripe := s.reg.lock(ss.id)
	stripe.Lock()
	defer stripe.Unlock()
	ss.mu.Lock()
	if ss.mu.gen != gen || ss.mu.conn != nil || ss.mu.ended {
		ss.mu.Unlock()
		return
	}
	will, orphans := ss.endSessionLocked(true)
	ss.mu.Unlock()
	s.stats.expiredSessions.Add(1)
	s.log.Debug("session expired", keyClientID, ss.id)
	s.publishWill(ss.id, will)
	s.redeliverShared(ss.id, orphans)
}

// endSessionLocked discards the session: its subscriptions leave the router,
// its queues are dropped, and with fromStorage its records are deleted. It
// returns a will that was still waiting for its delay and the shared
// subscription messages that must go to another member. The caller publishes
// and redelivers them after releasing the lock.
func (ss *session) endSessionLocked(fromStorage bool) (*willMsg, []*delivery) {
	srv := ss.srv
	orphans := ss.takeSharedForRedeliveryLocked()
	ss.mu.ended = true
	for _, sub := range ss.mu.subs {
		ss.removeSubscriptionLocked(sub)
	}
	srv.stats.subscriptions.Add(-int64(len(ss.mu.subs)))
	ss.mu.subs = nil
	srv.stats.inflight.Add(-int64(len(ss.mu.inflight)))
	ss.mu.inflight = nil
	ss.mu.queue.clear()
	ss.mu.retainedQ.clear()
	stopTimer(&ss.mu.expiryTimer)
	stopTimer(&ss.mu.willTimer)
	will := ss.mu.will
	ss.mu.will = nil
	if fromStorage {
		b := srv.store.NewBatch()
		b.DeleteSession(ss.id)
		srv.commitNoSync(b, ss.id)
		b.Close()
	}
	srv.reg.remove(ss)
	return will, orphans
}

func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// ownedBy reports whether a client of the user username may resume the
// session: the user that created it, or anyone when the session predates
// stored owners (it then belongs to the next client that binds it).
func (ss *session) ownedBy(username string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.mu.ownerUnknown || ss.mu.owner == username
}
