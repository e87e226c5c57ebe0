package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/router"
	"github.com/starling-mqtt/starling/storage"
)

// SessionMover is the part of a Cluster that moves sessions between nodes.
// A Cluster without it keeps
// every session on the node its client connects to.
type SessionMover interface {
	// TakeSession claims the client id for this node at its home node. When
	// another node held the session, that node closes its connection and
	// exports the session, which keeps receiving messages there, frozen,
	// until finish fetches them. A nil state means there is nothing to
	// import. With cleanStart, other copies are discarded. rec is what the
	// home keeps of the session once the client is connected. An error
	// with a SessionUnavailable method returning true means the session is
	// on a node that is down: the client is refused and retries.
	TakeSession(ctx context.Context, clientID string, cleanStart bool, rec *clusterpb.HomeRecord) (state *clusterpb.SessionState, finish func(context.Context) ([]*clusterpb.SessionMessage, error), err error)

	// ReportSession tells the home of the client id that the client
	// disconnected, so the home forgets its will. It does not block.
	ReportSession(clientID string, persistent bool)
}

// errSessionUnavailable refuses a client whose session is on a node that is
// down, for a while, so it retries and finds its session when the node is
// back.
var errSessionUnavailable = errors.New("the node that has this session is unavailable; retry later")

// isSessionUnavailable reports whether err says the session's node is down.
func isSessionUnavailable(err error) bool {
	var u interface{ SessionUnavailable() bool }
	return errors.As(err, &u) && u.SessionUnavailable()
}

// takeoverTimeout bounds the claim and export of a session from another
// node; past it, the client is served with what this node has.
const takeoverTimeout = 10 * time.Second

// takeRemoteSession runs the cluster's claim for a connecting client and
// imports the session another node held. The caller holds the client id's
// registry stripe. It returns the imported session, or nil.
func (s *Server) takeRemoteSession(c *conn, cp *packet.Connect) (*session, error) {
	mover, ok := s.cluster.(SessionMover)
	if !ok {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), takeoverTimeout)
	defer cancel()
	rec := &clusterpb.HomeRecord{ClientId: c.clientID, Persistent: s.sessionExpiryFor(cp) > 0, Connected: true}
	if w := c.pendingWill(); w != nil {
		blob, err := encodeWill(w)
		if err == nil {
			rec.Will = blob
			rec.WillDelaySeconds = w.Properties.WillDelay
		}
	}
	state, finish, err := mover.TakeSession(ctx, c.clientID, cp.CleanStart, rec)
	if isSessionUnavailable(err) {
		return nil, errSessionUnavailable
	}
	if err != nil {
		// Availability first: serve the client with
		// what this node has.
		s.log.Warn("session claim failed; serving the client with this node's copy", keyClientID, c.clientID, keyRemote, c.remote, keyErr, err)
		return nil, nil
	}
	if state == nil {
		return nil, nil
	}
	start := time.Now()
	if local := s.reg.get(c.clientID); local != nil {
		// The home named another holder: this node's copy is stale.
		s.waitForOldConnection(local)
		local.mu.Lock()
		_, orphans := local.endSessionLocked(true)
		local.mu.Unlock()
		s.reg.remove(local)
		s.redeliverShared(local.id, orphans)
	}
	ss := newSession(s, c.clientID)
	s.reg.put(ss)
	ss.mu.Lock()
	waits, err := ss.importLocked(state)
	ss.mu.importing = true
	ss.mu.Unlock()
	if err != nil {
		s.log.Error("storing an imported session failed", keyClientID, c.clientID, keyErr, err)
	}

	// The new routes must be in force before the old node lets go, so no
	// message published meanwhile misses both copies.
	s.waitRoutes(waits)
	delta, err := finish(ctx)
	if err != nil {
		// The old node died between the export and now. The messages its
		// frozen copy collected meanwhile are on its disk: when it
		// returns it hands them over (AcceptLeftovers), and importKeys,
		// kept until then, drops those this node already has.
		s.log.Warn("fetching the messages of a moved session failed; waiting for the old node to hand them over",
			keyClientID, c.clientID, keyErr, err)
	}

	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.finishImportLocked(delta, err != nil)
	s.stats.sessionsMovedIn.Add(1)
	s.log.Info("session moved here from another node", keyClientID, c.clientID,
		"subscriptions", len(state.Subscriptions), "inflight", len(state.Inflight),
		"queued", len(state.Queued)+len(delta), "took", time.Since(start).Round(time.Millisecond))
	return ss, nil
}

// reportDisconnect tells the home of a client id that its client is gone,
// in a cluster that moves sessions.
func (s *Server) reportDisconnect(clientID string, persistent bool) {
	if mover, ok := s.cluster.(SessionMover); ok {
		mover.ReportSession(clientID, persistent)
	}
}

// PublishStoredWill publishes a will that the home of a client id kept
// because the node the client was connected to died. The will is checked against the rules of its user as
// they are now.
func (s *Server) PublishStoredWill(clientID string, blob []byte) error {
	w, err := decodeWill(blob)
	if err != nil {
		return fmt.Errorf("decode the will of %q: %w", clientID, err)
	}
	s.publishWill(clientID, w)
	return nil
}

// originKey identifies a message across the cluster, for removing the
// duplicates a move can produce; the zero key means unknown.
type originKey struct {
	site string
	id   uint64
}

func (s *Server) originOf(m *message) originKey {
	if m.fromPeer {
		return originKey{site: m.originSite, id: m.originID}
	}
	if m.id == 0 || s.cluster == nil {
		return originKey{}
	}
	return originKey{site: s.cluster.SiteID(), id: m.id}
}

// importLocked builds the session from state: subscriptions (returning the
// channels of their routes), inflight messages to resend with DUP, queued
// messages and inbound QoS 2 packet ids, stored for a persistent session.
func (ss *session) importLocked(state *clusterpb.SessionState) ([]<-chan struct{}, error) {
	srv := ss.srv
	ss.mu.version = byte(state.ProtocolVersion)
	ss.mu.expiry = state.ExpirySeconds
	ss.mu.nextPID = uint16(state.NextPacketId)
	ss.mu.owner, ss.mu.ownerUnknown = state.Owner, !state.OwnerKnown
	ss.persistent.Store(state.Persistent)
	var b *storage.Batch
	if state.Persistent {
		b = srv.store.NewBatch()
		defer b.Close()
		if err := ss.putRecordLocked(b, nil); err != nil {
			return nil, err
		}
	}

	var waits []<-chan struct{}
	for _, sp := range state.Subscriptions {
		group, topic, _ := router.ParseShared(sp.Filter)
		sub := &subscription{filter: sp.Filter, group: group, topic: topic, subID: sp.SubscriptionId,
			opts: packet.Subscription{Filter: sp.Filter, QoS: byte(sp.Qos), NoLocal: sp.NoLocal,
				RetainAsPublished: sp.RetainAsPublished, RetainHandling: byte(sp.RetainHandling)}}
		ss.putSubscriptionLocked(sub)
		if ch := ss.addSubscriptionLocked(sub); ch != nil {
			waits = append(waits, ch)
		}
		srv.stats.subscriptions.Add(1)
		if b != nil {
			b.PutSubscription(&storage.Subscription{ClientID: ss.id, Filter: sp.Filter, QoS: byte(sp.Qos),
				NoLocal: sp.NoLocal, RetainAsPublished: sp.RetainAsPublished, RetainHandling: byte(sp.RetainHandling),
				SubID: sp.SubscriptionId})
		}
	}
	ss.mu.importKeys = make(map[originKey]struct{})
	for _, sm := range state.Inflight {
		d, err := srv.importedDelivery(sm)
		if err != nil {
			return waits, err
		}
		d.pid = uint16(sm.PacketId)
		d.released = sm.Released
		d.dup = true
		ss.setInflightLocked(d)
		ss.noteImportedLocked(d)
		srv.persistImported(ss, b, d, true)
	}
	for _, sm := range state.Queued {
		d, err := srv.importedDelivery(sm)
		if err != nil {
			return waits, err
		}
		ss.mu.queue.push(d)
		ss.noteImportedLocked(d)
		srv.persistImported(ss, b, d, false)
	}
	for _, pid := range state.InboundQos2 {
		ss.addInboundQoS2Locked(uint16(pid))
		if b != nil {
			b.PutInboundQoS2(ss.id, uint16(pid))
		}
	}
	if b != nil {
		if err := b.Commit(); err != nil {
			return waits, fmt.Errorf("store imported session: %w", err)
		}
	}
	return waits, nil
}

// noteImportedLocked remembers the origin of an imported delivery.
func (ss *session) noteImportedLocked(d *delivery) {
	if k := ss.srv.originOf(d.msg); k != (originKey{}) {
		ss.mu.importKeys[k] = struct{}{}
	}
}

// finishImportLocked appends the messages the old node got while the session
// was frozen there, then those this node got meanwhile, each once, and ends
// the import: deliveries go straight to the queue again.
func (ss *session) finishImportLocked(delta []*clusterpb.SessionMessage, awaitLeftovers bool) {
	ss.queueImportedLocked(delta)
	for _, d := range ss.mu.importBuf {
		if ss.seenImportedLocked(d) {
			ss.releaseLocked(d)
			continue
		}
		ss.mu.queue.push(d)
	}
	ss.mu.importBuf = nil
	ss.mu.importing = false
	ss.mu.awaitingLeftovers = awaitLeftovers
	if !awaitLeftovers {
		ss.mu.importKeys = nil
	}
}

// queueImportedLocked queues, and stores for a persistent session, the moved
// messages that the session does not have yet by origin, and returns how
// many it queued.
func (ss *session) queueImportedLocked(msgs []*clusterpb.SessionMessage) int {
	srv := ss.srv
	var b *storage.Batch
	if ss.persistent.Load() {
		b = srv.store.NewBatch()
		defer b.Close()
	}
	added := 0
	for _, sm := range msgs {
		d, err := srv.importedDelivery(sm)
		if err != nil {
			srv.log.Warn("moved message dropped: unreadable", keyClientID, ss.id, keyErr, err)
			continue
		}
		if ss.seenImportedLocked(d) {
			continue
		}
		ss.mu.queue.push(d)
		srv.persistImported(ss, b, d, false)
		added++
	}
	if b != nil && !b.Empty() {
		if err := b.Commit(); err != nil {
			srv.log.Error("storing the messages of a moved session failed", keyClientID, ss.id, keyErr, err)
		}
	}
	return added
}

// AcceptLeftovers takes the messages that the frozen copy of a moved
// session collected on a node that died before it could hand them over, and
// that the node sends after its restart. It queues those this node does not
// have yet, by origin, and reports whether it was waiting for them: a node
// that was not (the client got a fresh session meanwhile) gets false and
// discards them.
func (s *Server) AcceptLeftovers(clientID string, msgs []*clusterpb.SessionMessage) bool {
	stripe := s.reg.lock(clientID)
	stripe.Lock()
	defer stripe.Unlock()
	ss := s.reg.get(clientID)
	if ss == nil {
		return false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.mu.awaitingLeftovers || ss.mu.ended {
		return false
	}

	added := ss.queueImportedLocked(msgs)
	ss.mu.awaitingLeftovers = false
	ss.mu.importKeys = nil
	if ss.mu.conn != nil {
		ss.pumpLocked()
	}
	s.log.Info("messages of a moved session handed over by its old node", keyClientID, clientID,
		"received", len(msgs), "new", added)
	return true
}

// StaleLeftovers returns the messages of a session restored from disk that
// no client has used since the restart, inflight first, for the node that
// owns the session now. It returns nil for any other session.
func (s *Server) StaleLeftovers(clientID string) []*clusterpb.SessionMessage {
	ss := s.reg.get(clientID)
	if ss == nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.untouchedRestoredLocked() {
		return nil
	}
	now := time.Now()
	site := ""
	if s.cluster != nil {
		site = s.cluster.SiteID()
	}
	var out []*clusterpb.SessionMessage
	for _, d := range ss.inflightInOrderLocked() {
		out = append(out, exportDelivery(d, now, site))
	}
	for _, q := range []*deliveryQueue{&ss.mu.retainedQ, &ss.mu.queue} {
		for _, d := range q.items[q.head:] {
			out = append(out, exportDelivery(d, now, site))
		}
	}
	return out
}

// seenImportedLocked reports whether d's message is already in the session,
// and remembers it if not.
func (ss *session) seenImportedLocked(d *delivery) bool {
	k := ss.srv.originOf(d.msg)
	if k == (originKey{}) {
		return false
	}
	if _, dup := ss.mu.importKeys[k]; dup {
		return true
	}
	ss.mu.importKeys[k] = struct{}{}
	return false
}

// importedDelivery converts a delivery that another node exported.
func (s *Server) importedDelivery(sm *clusterpb.SessionMessage) (*delivery, error) {
	if sm.Message == nil {
		return nil, fmt.Errorf("session message without a message")
	}
	m, err := messageFromForward(sm.Message)
	if err != nil {
		return nil, err
	}
	return &delivery{msg: m, qos: byte(sm.Qos), retain: sm.Retain, subIDs: sm.SubscriptionIds, shareKey: sm.ShareKey}, nil
}

// persistImported writes an imported QoS 1/2 delivery of a persistent
// session to b, body first.
func (s *Server) persistImported(ss *session, b *storage.Batch, d *delivery, inflight bool) {
	if b == nil || d.qos == 0 {
		return
	}
	m := d.msg
	m.id = s.store.NextID()
	b.PutMessage(m.record())
	m.stored = true
	d.seq = s.store.NextID()
	d.stored = true
	if inflight {
		b.PutInflight(ss.id, &storage.InflightEntry{PacketID: d.pid, Seq: d.seq, MessageID: m.id, QoS: d.qos,
			Retain: d.retain, SubIDs: d.subIDs, Released: d.released})
		return
	}
	b.Enqueue(ss.id, &storage.QueueEntry{Seq: d.seq, MessageID: m.id, QoS: d.qos, Retain: d.retain, SubIDs: d.subIDs})
}

// HasSession reports whether this node holds a session for the client id,
// and whether its client is connected. The cluster asks it when the home of
// the id has no record.
func (s *Server) HasSession(clientID string) (has, connected bool) {
	ss := s.reg.get(clientID)
	if ss == nil {
		return false, false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.mu.ended {
		return false, false
	}
	return true, ss.mu.conn != nil
}

// ExportSession closes the client's connection here (v5 reason 0x8E) and
// returns its session for another node. The session stays here, frozen: it
// keeps its subscriptions and collects new messages until FinishExport. With
// discard, the session ends here instead, as a clean start requires.
func (s *Server) ExportSession(clientID string, discard bool) *clusterpb.SessionState {
	stripe := s.reg.lock(clientID)
	stripe.Lock()
	defer stripe.Unlock()
	ss := s.reg.get(clientID)
	if ss == nil {
		return nil
	}
	s.waitForOldConnection(ss)
	ss.mu.Lock()
	if ss.mu.ended {
		ss.mu.Unlock()
		return nil
	}
	if ss.mu.frozen {
		// An earlier move of this session never finished (its target
		// failed); this export takes everything the session holds.
		stopTimer(&ss.mu.leaseTimer)
		ss.unfreezeLocked()
	}
	if discard {
		will, orphans := ss.endSessionLocked(true)
		ss.mu.Unlock()
		s.reg.remove(ss)
		s.publishWill(ss.id, will)
		s.redeliverShared(ss.id, orphans)
		return nil
	}
	defer ss.mu.Unlock()

	// The session continues elsewhere, so a will still waiting for its
	// delay is cancelled, as a reconnect here would [MQTT-3.1.3-9].
	stopTimer(&ss.mu.willTimer)
	stopTimer(&ss.mu.expiryTimer)
	ss.mu.will = nil
	now := time.Now()
	st := &clusterpb.SessionState{
		ClientId:        ss.id,
		ProtocolVersion: uint32(ss.mu.version),
		ExpirySeconds:   ss.mu.expiry,
		NextPacketId:    uint32(ss.mu.nextPID),
		Persistent:      ss.persistent.Load(),
		Owner:           ss.mu.owner,
		OwnerKnown:      !ss.mu.ownerUnknown,
	}
	for _, sub := range ss.mu.subs {
		st.Subscriptions = append(st.Subscriptions, &clusterpb.SessionSubscription{Filter: sub.filter,
			Qos: uint32(sub.opts.QoS), NoLocal: sub.opts.NoLocal, RetainAsPublished: sub.opts.RetainAsPublished,
			RetainHandling: uint32(sub.opts.RetainHandling), SubscriptionId: sub.subID})
	}
	site := ""
	if s.cluster != nil {
		site = s.cluster.SiteID()
	}
	ss.mu.exported = ss.mu.exported[:0]
	for _, d := range ss.inflightInOrderLocked() {
		sm := exportDelivery(d, now, site)
		sm.PacketId = uint32(d.pid)
		sm.Released = d.released
		st.Inflight = append(st.Inflight, sm)
		ss.deleteInflightLocked(d.pid)
		ss.mu.exported = append(ss.mu.exported, d)
	}
	for _, q := range []*deliveryQueue{&ss.mu.retainedQ, &ss.mu.queue} {
		for q.len() > 0 {
			d := q.pop()
			st.Queued = append(st.Queued, exportDelivery(d, now, site))
			ss.mu.exported = append(ss.mu.exported, d)
		}
	}
	for pid := range ss.mu.inboundQoS2 {
		st.InboundQos2 = append(st.InboundQos2, uint32(pid))
	}
	ss.mu.frozen = true
	stopTimer(&ss.mu.leaseTimer)
	ss.mu.leaseTimer = time.AfterFunc(s.exportLease(), func() { s.expireExport(ss) })
	s.stats.sessionsMovedOut.Add(1)
	return st
}

// exportLease returns Config.ExportLease or its default.
func (s *Server) exportLease() time.Duration {
	if s.cfg.ExportLease > 0 {
		return s.cfg.ExportLease
	}
	return 3 * takeoverTimeout
}

// expireExport unfreezes ss when the node it was exported to never finished
// the move (unfreezeLocked). The session then waits for its client as any
// offline session does. The records on disk were never deleted, so a
// restart finds the same. Its owner is the lease timer set by ExportSession.
func (s *Server) expireExport(ss *session) {
	stripe := s.reg.lock(ss.id)
	stripe.Lock()
	defer stripe.Unlock()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.mu.frozen || ss.mu.ended || s.reg.get(ss.id) != ss {
		return
	}
	ss.mu.leaseTimer = nil
	n := ss.unfreezeLocked()
	if ss.mu.conn == nil {
		ss.scheduleExpiryLocked()
	}
	s.log.Warn("session move not finished in time; the session is unfrozen here", keyClientID, ss.id,
		"messages", n, "lease", s.exportLease())
}

// unfreezeLocked undoes an export. What was in flight goes back in flight,
// to be resent with DUP (or as PUBREL) on the next connection, and what was
// queued goes back to the queue ahead of what arrived since. It returns how
// many messages the session has again.
func (ss *session) unfreezeLocked() int {
	ss.mu.frozen = false
	back := ss.mu.exported
	ss.mu.exported = nil
	for q := &ss.mu.queue; q.len() > 0; {
		back = append(back, q.pop())
	}
	for _, d := range back {
		if d.pid != 0 {
			ss.setInflightLocked(d)
			continue
		}
		ss.mu.queue.push(d)
	}
	return len(back)
}

// FinishExport ends a session that ExportSession froze and returns the
// messages it collected since.
func (s *Server) FinishExport(clientID string) []*clusterpb.SessionMessage {
	stripe := s.reg.lock(clientID)
	stripe.Lock()
	defer stripe.Unlock()
	ss := s.reg.get(clientID)
	if ss == nil {
		return nil
	}
	ss.mu.Lock()
	if !ss.mu.frozen || ss.mu.ended {
		ss.mu.Unlock()
		return nil
	}
	stopTimer(&ss.mu.leaseTimer)
	ss.mu.exported = nil
	now := time.Now()
	site := ""
	if s.cluster != nil {
		site = s.cluster.SiteID()
	}
	var out []*clusterpb.SessionMessage
	for ss.mu.queue.len() > 0 {
		out = append(out, exportDelivery(ss.mu.queue.pop(), now, site))
	}
	_, orphans := ss.endSessionLocked(true)
	ss.mu.Unlock()
	s.reg.remove(ss)
	s.redeliverShared(ss.id, orphans)
	return out
}

// inflightInOrderLocked returns the inflight deliveries in the order they
// were sent: by storage sequence, then packet id.
func (ss *session) inflightInOrderLocked() []*delivery {
	out := make([]*delivery, 0, len(ss.mu.inflight))
	for _, d := range ss.mu.inflight {
		out = append(out, d)
	}
	slices.SortFunc(out, func(x, y *delivery) int {
		if x.seq != y.seq {
			return cmp.Compare(x.seq, y.seq)
		}
		return cmp.Compare(x.pid, y.pid)
	})
	return out
}

// exportDelivery converts a delivery for another node; site is this node's
// site id, the origin of a message published here.
func exportDelivery(d *delivery, now time.Time, site string) *clusterpb.SessionMessage {
	fm := d.msg.forwardMessage(now)
	if !d.msg.fromPeer && d.msg.id != 0 {
		fm.OriginSiteId = site
	}
	return &clusterpb.SessionMessage{Message: fm, Qos: uint32(d.qos), Retain: d.retain,
		SubscriptionIds: d.subIDs, ShareKey: d.shareKey}
}

// RestoredSessions returns the client ids of the sessions restored from disk
// at start-up that no client has connected to since, for the cluster to check
// with their homes.
func (s *Server) RestoredSessions() []string {
	var ids []string
	for _, ss := range s.reg.all() {
		ss.mu.Lock()
		if ss.untouchedRestoredLocked() {
			ids = append(ids, ss.id)
		}
		ss.mu.Unlock()
	}
	return ids
}

// DiscardStaleSession ends the session of clientID that was restored from
// disk, because the client got a session on another node while this one was
// down. It leaves a session alone that a client has connected to since the
// restart, or that replaced the restored one. The will is not published: the
// home of the client id already did, when this node's death was committed.
func (s *Server) DiscardStaleSession(clientID string) bool {
	stripe := s.reg.lock(clientID)
	stripe.Lock()
	defer stripe.Unlock()
	ss := s.reg.get(clientID)
	if ss == nil {
		return false
	}
	ss.mu.Lock()
	if !ss.untouchedRestoredLocked() {
		ss.mu.Unlock()
		return false
	}
	stopTimer(&ss.mu.willTimer)
	ss.mu.will = nil
	_, orphans := ss.endSessionLocked(true)
	ss.mu.Unlock()
	s.reg.remove(ss)
	s.redeliverShared(ss.id, orphans)
	s.log.Info("stale session discarded: the client has a newer session on another node", keyClientID, clientID)
	return true
}

// untouchedRestoredLocked reports whether the session was restored from disk
// at start-up and no client has connected to it since.
func (ss *session) untouchedRestoredLocked() bool {
	return ss.mu.restored && ss.mu.gen == 0 && ss.mu.conn == nil && !ss.mu.ended
}
