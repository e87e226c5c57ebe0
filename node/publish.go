package node

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/router"
	"github.com/starling-mqtt/starling/storage"
)

// handlePublish accepts one PUBLISH from the client. Its storage writes join the
// pending batch, and the acknowledgement goes out after the batch commits
// (flushPending). So a PUBACK or PUBREC always follows a durable write.
func (c *conn) handlePublish(p *packet.Publish) error {
	srv := c.srv
	lim := srv.lim()
	srv.stats.messagesIn[min(p.QoS, 2)].Add(1)
	if c.pending == nil {
		c.pending = new(pendingPublishes) // dropped again when the connection parks
	}

	if len(p.Properties.SubscriptionIDs) > 0 {
		// [MQTT-3.3.4-6] Only the server sends Subscription Identifiers in PUBLISH.
		return packet.Errorf(packet.ReasonProtocolError, "PUBLISH from a client carries a subscription identifier")
	}
	feat := &srv.cfg.Features
	if p.QoS > *feat.MaxQoS {
		// [MQTT-3.2.2-11] A QoS above the announced Maximum QoS.
		return packet.Errorf(packet.ReasonQoSNotSupported, "QoS %d exceeds the maximum QoS %d", p.QoS, *feat.MaxQoS)
	}
	if p.Retain && feat.DisableRetain {
		// [MQTT-3.2.2-14] RETAIN set although Retain Available is 0.
		return packet.Errorf(packet.ReasonRetainNotSupported, "retained messages are disabled")
	}
	if err := c.resolveTopicAlias(p); err != nil {
		return err
	}
	if err := router.ValidateTopicName(p.Topic, lim.MaxTopicLength, lim.MaxTopicLevels); err != nil {
		// [MQTT-3.3.2-2] A topic name must not contain wildcards.
		return packet.Errorf(packet.ReasonTopicNameInvalid, "invalid topic name: %v", err)
	}

	if rt := p.Properties.ResponseTopic; rt != "" {
		// [MQTT-3.3.2-14] A Response Topic is a topic name: no wildcards.
		if err := router.ValidateTopicName(rt, lim.MaxTopicLength, lim.MaxTopicLevels); err != nil {
			return packet.Errorf(packet.ReasonProtocolError, "invalid response topic: %v", err)
		}
	}
	if isSysTopic(p.Topic) {
		// Topics under $SYS belong to the broker: a client may not publish
		// there, so no client can forge broker statistics (MQTT 4.7.2).
		srv.stats.publishRefused.Add(1)
		srv.clientWarn.log(srv.log, "client publish to a $SYS topic dropped", keyClientID, c.clientID, keyRemote, c.remote, keyTopic, p.Topic)
		return c.refusePublish(p, packet.ReasonNotAuthorized, "$SYS topics are reserved for the broker")
	}

	if !c.access.Load().mayPublish(p.Topic, p.QoS, p.Retain) {
		srv.stats.denied[deniedPublish].Add(1)
		srv.clientWarn.log(srv.log, "publish not authorized", keyClientID, c.clientID, keyRemote, c.remote,
			"username", c.username(), keyTopic, p.Topic)
		return c.refusePublish(p, packet.ReasonNotAuthorized, "not authorized to publish to this topic")
	}

	sess := c.session()
	if p.QoS > 0 {
		sess.mu.Lock()
		_, dup := sess.mu.inboundQoS2[p.PacketID]
		inbound := len(sess.mu.inboundQoS2)
		sess.mu.Unlock()
		if dup && p.QoS == 2 {
			// [MQTT-4.3.3-10] Already received: acknowledge again, deliver nothing.
			c.pending.acks = append(c.pending.acks, packet.SuccessAck{Kind: packet.TypePubrec, PacketID: p.PacketID})
			return nil
		}
		// A QoS 2 publish counts from its arrival until its PUBCOMP, through
		// the inbound table only, and a QoS 1 publish until its PUBACK.
		if c.version == packet.Version5 && inbound+c.pending.unsettled >= int(lim.ReceiveMaximum) {
			// [MQTT-3.3.4-7] The client sent more than the Receive Maximum allows.
			return packet.Errorf(packet.ReasonReceiveMaximumExceeded, "more than %d unacknowledged QoS 1 and 2 publishes", lim.ReceiveMaximum)
		}
	}

	if p.Properties.PayloadFormat == 1 && !utf8.Valid(p.Payload) {
		// The payload is declared UTF-8 but is not; MQTT 5.0 section 3.3.2.3.2
		// lets the receiver reject it with reason 0x99.
		if p.QoS == 0 {
			return packet.Errorf(packet.ReasonPayloadFormatInvalid, "payload is not valid UTF-8 although its Payload Format Indicator is 1")
		}
		return c.refusePublish(p, packet.ReasonPayloadFormatInvalid, "payload is not valid UTF-8")
	}

	var now time.Time
	if p.Properties.HasMessageExpiry {
		now = time.Now() // only an expiring message needs the clock
	}
	msg := newMessageFromPublish(p, c.clientID, now)
	if p.QoS > 0 && srv.store.OverLimit() {
		return c.refusePublish(p, packet.ReasonQuotaExceeded, "disk limit reached")
	}
	if c.pending.batch == nil {
		c.pending.batch = srv.store.NewBatch()
	}
	if msg.retain {
		code := srv.stageRetained(msg, c.pending.batch, &c.pending.retained)
		if code != packet.ReasonSuccess && p.QoS > 0 && c.version == packet.Version5 {
			return c.refusePublish(p, code, "retained store is full")
		}
		// 3.1.1 has no code for "not retained": closing the connection would
		// make a device that publishes its state as retained reconnect in a
		// loop, so the message is delivered live and acknowledged, and
		// stageRetained has logged that it was not retained.
	}
	if p.QoS > 0 && srv.forwardFull(msg.topic) {
		srv.stats.forwardRefused.Add(1)
		return c.refusePublish(p, packet.ReasonQuotaExceeded, "a peer's outbox is full")
	}
	c.pending.targets = srv.routeReserving(msg, c.pending.batch, c.pending.targets, &c.pending.forwards, &c.pending.queuedTo)

	switch p.QoS {
	case 1:
		c.pending.needSync = true
		c.pending.acks = append(c.pending.acks, packet.SuccessAck{Kind: packet.TypePuback, PacketID: p.PacketID})
		c.pending.unsettled++
	case 2:
		c.pending.needSync = true
		sess.mu.Lock()
		sess.addInboundQoS2Locked(p.PacketID)
		if sess.persistent.Load() {
			c.pending.batch.PutInboundQoS2(sess.id, p.PacketID)
		}
		sess.mu.Unlock()
		c.pending.acks = append(c.pending.acks, packet.SuccessAck{Kind: packet.TypePubrec, PacketID: p.PacketID})
	}
	if len(c.pending.acks) >= maxPendingPublishes || len(c.pending.targets) >= 4*maxPendingPublishes {
		return c.flushPending()
	}
	return nil
}

// refusePublish rejects a PUBLISH. MQTT 5.0 acknowledges a QoS 1/2 publish
// with the reason code. 3.1.1 has no such codes: a message that is not
// authorized is acknowledged and dropped [MQTT-3.3.5-2], and one the node cannot
// store closes the connection without an acknowledgement, so the client
// resends it later. QoS 0 messages are dropped.
func (c *conn) refusePublish(p *packet.Publish, code packet.ReasonCode, why string) error {
	if p.QoS == 0 {
		return nil
	}
	if c.version != packet.Version5 {
		if code == packet.ReasonNotAuthorized {
			c.pending.acks = append(c.pending.acks, ackFor(p, packet.ReasonSuccess))
			c.pending.unsettled++
			return nil
		}
		return packet.Errorf(code, "%s", why)
	}
	c.srv.stats.publishRefused.Add(1)
	c.pending.acks = append(c.pending.acks, ackFor(p, code))
	c.pending.unsettled++
	return nil
}

// ackFor returns the PUBACK or PUBREC for a QoS 1 or 2 publish.
func ackFor(p *packet.Publish, code packet.ReasonCode) packet.Packet {
	if p.QoS == 1 {
		return &packet.Puback{PacketID: p.PacketID, ReasonCode: code}
	}
	return &packet.Pubrec{PacketID: p.PacketID, ReasonCode: code}
}

// isSysTopic reports whether a topic belongs to the broker's $SYS tree.
func isSysTopic(topic string) bool {
	return topic == "$SYS" || strings.HasPrefix(topic, "$SYS/")
}

// resolveTopicAlias applies an MQTT 5.0 Topic Alias: a topic with an alias sets
// it, an empty topic uses it [MQTT-3.3.2-12].
func (c *conn) resolveTopicAlias(p *packet.Publish) error {
	if !p.Properties.HasTopicAlias {
		if p.Topic == "" {
			return packet.Errorf(packet.ReasonProtocolError, "empty topic name without a topic alias")
		}
		return nil
	}
	alias := p.Properties.TopicAlias
	if alias == 0 || alias > c.srv.cfg.Limits.MaxTopicAlias {
		return packet.Errorf(packet.ReasonTopicAliasInvalid, "topic alias %d is outside 1..%d", alias, c.srv.cfg.Limits.MaxTopicAlias)
	}
	if p.Topic == "" {
		topic, ok := c.aliases[alias]
		if !ok {
			return packet.Errorf(packet.ReasonProtocolError, "topic alias %d is not set", alias)
		}
		p.Topic = topic
		return nil
	}
	if c.aliases == nil {
		c.aliases = make(map[uint16]string)
	}
	c.aliases[alias] = p.Topic
	return nil
}

// Releases after PUBACK and PUBCOMP are collected per connection and
// committed together, without a sync, when the reader's buffer empties
// (flushPending), before the session is detached (end calls flushPending), or
// once maxDeferredReleases wait. One commit then serves a whole read batch of
// acknowledgements instead of one each.
//
// A waiting DeleteInflight must commit before its packet id can be reused, or
// it would delete the newer entry. allocPacketIDLocked counts up through all
// 65,535 ids before it returns to one. While a release waits, at most
// maxDeferredReleases acknowledgements free window slots (a refused PUBREC
// commits the releases first). So the counter moves on by at most two
// windows plus maxDeferredReleases, which stays below 65,535 for a window of
// at most maxReleaseWindow. Larger windows release at once.
const (
	maxDeferredReleases = 64
	maxReleaseWindow    = 16384
)

// releaseBatchLocked returns the batch that collects this connection's
// releases for sess, or nil when they must be committed at once or d, the
// delivery to acknowledge, has no storage entry. The caller holds sess.mu.
func (c *conn) releaseBatchLocked(sess *session, d *delivery) *storage.Batch {
	if d == nil || !d.stored || sess.mu.sendQuota > maxReleaseWindow {
		return nil
	}
	if c.pending == nil {
		c.pending = new(pendingPublishes) // dropped again when the connection parks
	}
	if c.pending.releases == nil {
		c.pending.releases = c.srv.store.NewBatch()
	}
	return c.pending.releases
}

// commitReleasesIfFull commits the collected releases once
// maxDeferredReleases wait.
func (c *conn) commitReleasesIfFull() {
	if c.pending != nil && c.pending.releases != nil && c.pending.releases.Len() >= maxDeferredReleases {
		c.commitReleases()
	}
}

// commitReleases commits the collected releases without a sync: a release
// lost in a crash only makes the node send the message again.
func (c *conn) commitReleases() {
	pp := c.pending
	if pp == nil || pp.releases == nil {
		return
	}
	c.srv.commitNoSync(pp.releases, c.clientID)
	pp.releases.Close()
	pp.releases = nil
}

// flushPending commits the pending batch, then hands the messages to their
// sessions and sends the acknowledgements, in the order received. It commits
// the collected releases first.
func (c *conn) flushPending() error {
	c.commitReleases()
	pp := c.pending
	if pp == nil || pp.batch == nil && len(pp.acks) == 0 {
		return nil
	}
	srv := c.srv
	if pp.batch != nil {
		var err error
		switch {
		case pp.batch.Empty():
		case pp.needSync:
			// The commit may wait for an fsync: write the reader's deferred
			// packets first, and defer again for the acknowledgements.
			deferring := c.deferring
			c.flushOwnWrites()
			err = pp.batch.Commit()
			if deferring {
				c.deferOwnWrites()
			}
		default:
			err = pp.batch.CommitNoSync()
		}
		pp.batch.Close()
		pp.batch = nil
		if err != nil {
			srv.log.Error("storage commit failed; closing the publisher's connection without acknowledging",
				keyClientID, c.clientID, keyRemote, c.remote, keyErr, err)
			pp.forwards.release(srv.cluster, false)
			for _, t := range pp.targets {
				if t.d.persisting {
					t.sess.unreserveInflight(t.d)
				}
			}
			*pp = pendingPublishes{}
			return packet.Errorf(packet.ReasonUnspecifiedError, "storage failure")
		}
	}
	srv.applyRetained(pp.retained)
	slowPeers := pp.forwards.congested
	if len(pp.forwards.tickets) > 0 {
		pp.forwards.release(srv.cluster, true)
	}
	if c.flushes == nil && len(pp.targets) > 0 {
		c.flushes = new(flushSet)
	}
	var slow *session
	for i, t := range pp.targets {
		if t.sess.deliverVia(t.d, c.flushes) {
			slow = t.sess
		}
		pp.targets[i] = target{}
	}
	if c.flushes != nil {
		c.flushes.flush()
	}
	if slow != nil {
		c.waitForSlowReader(slow)
	} else if slowPeers {
		// A stream to another node is behind: the same pause as for a
		// slow local reader, before QoS 0 drops and the outbox bound.
		c.flushOwnWrites()
		c.srv.stats.publisherPauses.Add(1)
		time.Sleep(maxPublisherPause)
	}
	for i, ack := range pp.acks {
		c.send(ack)
		pp.acks[i] = nil
	}
	clear(pp.retained)
	clear(pp.queuedTo)
	pp.targets, pp.acks, pp.retained, pp.needSync = pp.targets[:0], pp.acks[:0], pp.retained[:0], false
	pp.unsettled = 0
	return nil
}

// route finds the sessions that must receive msg and returns one delivery per
// session (and per shared group) appended to out. Deliveries to persistent
// sessions at QoS 1/2 are written to b, with the message body, so that they
// survive a crash once b commits. In a cluster, the message is also staged
// for the other nodes with matching routes, and their tickets appended to
// fw; a nil fw keeps the message on this node.
func (s *Server) route(msg *message, b *storage.Batch, out []target, fw *forwards) []target {
	return s.routeReserving(msg, b, out, fw, nil)
}

// routeReserving is route that also reserves a packet id and a window slot
// (reserveInflight) for each delivery to a persistent session that would be
// sent at once, and stages its inflight entry instead of a queue entry. The
// caller must hand every target to deliverVia after b commits, or to
// unreserveInflight when the commit fails. queuedTo collects the sessions
// given a queue entry, so that no later message of the same batch overtakes
// one still on its way to the queue. A nil queuedTo reserves nothing.
func (s *Server) routeReserving(msg *message, b *storage.Batch, out []target, fw *forwards, queuedTo *map[*session]struct{}) []target {
	scratch := s.matchPool.Get().(*[]router.Entry)
	defer func() {
		clear(*scratch)
		*scratch = (*scratch)[:0]
		s.matchPool.Put(scratch)
	}()
	matches := s.trie.Match(msg.topic, (*scratch)[:0])
	*scratch = matches
	if len(matches) == 0 {
		if fw != nil {
			s.routeRemote(msg, b, nil, fw)
		}
		return out
	}

	start := len(out)
	var index map[string]int
	if len(matches) > linearMergeMax {
		index = s.indexPool.Get().(map[string]int)
		defer func() {
			clear(index)
			s.indexPool.Put(index)
		}()
	}
	var shared map[string][]router.Entry
	for i := range matches {
		e := &matches[i]
		if e.Group != "" {
			if shared == nil {
				shared = make(map[string][]router.Entry)
			}
			key := shareKey(e.Group, e.Filter)
			if msg.fromPeer && !msg.servesGroup(key) {
				continue // the sending node chose another node for this group
			}
			shared[key] = append(shared[key], *e)
			continue
		}
		// [MQTT-3.8.3-3] No Local: not back to the publisher.
		if e.NoLocal && e.ClientID == msg.publisher {
			continue
		}
		out = s.mergeTarget(out, start, index, msg, e)
	}
	for key, members := range shared {
		if s.preferRemoteMember(msg, key, members) {
			delete(shared, key) // so routeRemote offers it to another node
			continue
		}
		// [MQTT-4.8.2-3] One member per group, at the QoS granted to it.
		if e := s.pickShared(key, members, msg.publisher, ""); e != nil {
			out = s.addTarget(out, msg, e, key)
		}
	}
	for i := start; i < len(out); i++ {
		s.stageDeliveryReserving(msg, b, out[i], queuedTo)
	}
	if fw != nil {
		s.routeRemote(msg, b, shared, fw)
	}
	return out
}

// linearMergeMax is the match count up to which mergeTarget scans the targets
// instead of using an index: below it the scan is cheaper than a map.
const linearMergeMax = 16

// mergeTarget adds e to the deliveries of its client: a client with several
// matching subscriptions gets one message at the highest granted QoS, carrying
// every subscription identifier [MQTT-3.3.4-3] [MQTT-3.3.4-4]. index, when not
// nil, maps client ids to positions in out.
func (s *Server) mergeTarget(out []target, start int, index map[string]int, msg *message, e *router.Entry) []target {
	pos := -1
	if index != nil {
		if i, ok := index[e.ClientID]; ok {
			pos = i
		}
	} else {
		for i := start; i < len(out); i++ {
			if out[i].sess.id == e.ClientID && out[i].d.shareKey == "" {
				pos = i
				break
			}
		}
	}
	if pos < 0 {
		n := len(out)
		out = s.addTarget(out, msg, e, "")
		if index != nil && len(out) > n {
			index[e.ClientID] = n
		}
		return out
	}
	d := out[pos].d
	d.qos = max(d.qos, min(msg.qos, e.QoS))
	d.retain = d.retain || (msg.retain && e.RetainAsPublished)
	if e.SubID != 0 {
		d.subIDs = append(d.subIDs, e.SubID)
	}
	return out
}

// addTarget appends a delivery of msg for e's client; key names the shared
// group the client was chosen from, "" for a plain subscription.
func (s *Server) addTarget(out []target, msg *message, e *router.Entry, key string) []target {
	sess := s.reg.get(e.ClientID)
	if sess == nil || (msg.durableOnly && !sess.persistent.Load()) {
		return out
	}
	d := deliveryPool.Get().(*delivery)
	*d = delivery{
		msg:      msg,
		qos:      min(msg.qos, e.QoS),
		retain:   msg.retain && e.RetainAsPublished, // [MQTT-3.3.1-12] [MQTT-3.3.1-13]
		shareKey: key,
		pooled:   true,
	}
	if e.SubID != 0 {
		d.subIDs = []uint32{e.SubID}
	}
	return append(out, target{sess: sess, d: d})
}

// stageDelivery writes a QoS 1/2 delivery to a persistent session into b, with
// the message body the first time.
func (s *Server) stageDelivery(msg *message, b *storage.Batch, t target) {
	s.stageDeliveryReserving(msg, b, t, nil)
}

// stageDeliveryReserving is stageDelivery that writes an inflight entry in
// place of the queue entry when t.sess reserves a packet id for the delivery
// (see routeReserving for queuedTo).
//
// The inflight entry is synced with the publisher's batch, before its PUBACK
// and before the PUBLISH goes out. So after a crash the message is resent
// with DUP and the same packet id [MQTT-4.4.0-1]. The persister's synced
// batch gives the same guarantee to deliveries taken from the queue.
func (s *Server) stageDeliveryReserving(msg *message, b *storage.Batch, t target, queuedTo *map[*session]struct{}) {
	if t.d.qos == 0 || !t.sess.persistent.Load() {
		return
	}
	if !msg.stored {
		if msg.id == 0 {
			msg.id = s.store.NextID()
		}
		var rec storage.Message
		msg.fillRecord(&rec)
		b.PutMessage(&rec)
		msg.stored = true
	}
	t.d.seq = s.store.NextID()
	t.d.stored = true
	if queuedTo != nil {
		// NOTE: shared deliveries take the queue, as before, because
		// reserving them was not checked against the redelivery rules of
		// shared.go. They still mark the session, to keep the order.
		_, queued := (*queuedTo)[t.sess]
		if !queued && t.d.shareKey == "" && t.sess.reserveInflight(t.d) {
			b.PutInflight(t.sess.id, &storage.InflightEntry{
				PacketID:  t.d.pid,
				Seq:       t.d.seq,
				MessageID: msg.id,
				QoS:       t.d.qos,
				Retain:    t.d.retain,
				SubIDs:    t.d.subIDs,
			})
			return
		}
		if *queuedTo == nil {
			*queuedTo = make(map[*session]struct{})
		}
		(*queuedTo)[t.sess] = struct{}{}
	}
	b.Enqueue(t.sess.id, &storage.QueueEntry{
		Seq:       t.d.seq,
		MessageID: msg.id,
		QoS:       t.d.qos,
		Retain:    t.d.retain,
		SubIDs:    t.d.subIDs,
	})
}

// handlePuback completes an outbound QoS 1 message.
func (c *conn) handlePuback(p *packet.Puback) error {
	sess := c.session()
	sess.mu.Lock()
	d := sess.mu.inflight[p.PacketID]
	ok := sess.ackLocked(p.PacketID, 1, c.releaseBatchLocked(sess, d))
	sess.mu.Unlock()
	c.commitReleasesIfFull()
	if !ok {
		c.srv.log.Debug("PUBACK for an unknown packet id", keyClientID, c.clientID, "packet_id", p.PacketID)
		return nil
	}
	if d.shareKey != "" {
		// A positive PUBACK delivers the message and a negative one
		// discards it [MQTT-4.8.2-6]; either way it has reached its end.
		c.srv.settleShared(d.msg)
	}
	return nil
}

// handlePubrec moves an outbound QoS 2 message to its second step. A reason code
// of 0x80 or above ends the flow [MQTT-4.3.3-4].
func (c *conn) handlePubrec(p *packet.Pubrec) error {
	// A refused PUBREC frees a window slot outside the count that
	// maxReleaseWindow relies on.
	c.commitReleases()
	sess := c.session()
	sess.mu.Lock()
	defer sess.mu.Unlock()
	d, ok := sess.mu.inflight[p.PacketID]
	if !ok || d.qos != 2 {
		if c.version == packet.Version5 {
			c.send(&packet.Pubrel{PacketID: p.PacketID, ReasonCode: packet.ReasonPacketIDNotFound})
		} else {
			c.send(packet.SuccessAck{Kind: packet.TypePubrel, PacketID: p.PacketID})
		}
		return nil
	}
	if p.ReasonCode >= packet.ReasonUnspecifiedError {
		sess.deleteInflightLocked(p.PacketID)
		sess.releaseLocked(d)
		sess.pumpLocked()
		return nil
	}
	if !d.released {
		d.released = true
		if d.stored {
			// Synced before the PUBREL: after a crash the node must resend PUBREL,
			// never the PUBLISH, which the client would take for a new message.
			b := c.srv.store.NewBatch()
			b.PutInflight(sess.id, &storage.InflightEntry{
				PacketID: d.pid, Seq: d.seq, MessageID: d.msg.id, QoS: d.qos,
				Retain: d.retain, SubIDs: d.subIDs, Released: true,
			})
			c.srv.commitSync(b, sess.id)
			b.Close()
		}
	}
	c.send(packet.SuccessAck{Kind: packet.TypePubrel, PacketID: p.PacketID})
	return nil
}

// handlePubcomp completes an outbound QoS 2 message.
func (c *conn) handlePubcomp(p *packet.Pubcomp) error {
	sess := c.session()
	sess.mu.Lock()
	ok := sess.ackLocked(p.PacketID, 2, c.releaseBatchLocked(sess, sess.mu.inflight[p.PacketID]))
	sess.mu.Unlock()
	c.commitReleasesIfFull()
	if !ok {
		c.srv.log.Debug("PUBCOMP for an unknown packet id", keyClientID, c.clientID, "packet_id", p.PacketID)
	}
	return nil
}

// handlePubrel releases an inbound QoS 2 packet id [MQTT-4.3.3-11]; the message
// was delivered when the PUBLISH arrived.
func (c *conn) handlePubrel(p *packet.Pubrel) error {
	sess := c.session()
	sess.mu.Lock()
	_, ok := sess.mu.inboundQoS2[p.PacketID]
	delete(sess.mu.inboundQoS2, p.PacketID)
	if ok && sess.persistent.Load() {
		// Synced before the PUBCOMP: a packet id still marked after a crash
		// would make the node drop the client's next message with that id.
		b := c.srv.store.NewBatch()
		b.DeleteInboundQoS2(sess.id, p.PacketID)
		c.srv.commitSync(b, sess.id)
		b.Close()
	}
	sess.mu.Unlock()
	if !ok && c.version == packet.Version5 {
		c.send(&packet.Pubcomp{PacketID: p.PacketID, ReasonCode: packet.ReasonPacketIDNotFound})
		return nil
	}
	c.send(packet.SuccessAck{Kind: packet.TypePubcomp, PacketID: p.PacketID})
	return nil
}

// maxPublisherPause bounds how long one batch of publishes waits for a
// subscriber that has fallen behind, so a stuck subscriber slows its
// publishers by at most this much per batch and then the overflow policy
// applies.
const maxPublisherPause = 20 * time.Millisecond

// waitForSlowReader holds this publisher's acknowledgements back while the
// session's queue stays at least half full, up to maxPublisherPause. A client
// that waits for acknowledgements then sends more slowly: backpressure
// instead of drops for a reader that keeps up on average.
func (c *conn) waitForSlowReader(ss *session) {
	c.flushOwnWrites()
	c.srv.stats.publisherPauses.Add(1)
	deadline := time.Now().Add(maxPublisherPause)
	for ss.congested() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}
