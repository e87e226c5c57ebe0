package node

import (
	"strings"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/router"
	"github.com/starling-mqtt/starling/storage"
)

// handleSubscribe adds or replaces subscriptions. For a persistent session the
// SUBACK follows a durable write of the subscriptions. Retained messages follow
// the SUBACK, as each subscription's Retain Handling requests.
func (c *conn) handleSubscribe(p *packet.Subscribe) error {
	srv := c.srv
	sess := c.session()
	var subID uint32
	if len(p.Properties.SubscriptionIDs) > 0 {
		if srv.cfg.Features.DisableSubscriptionIDs {
			// Subscription Identifiers Available is 0, so the identifier is a
			// protocol error (MQTT 5.0 section 3.2.2.3.12).
			return packet.Errorf(packet.ReasonSubIDsNotSupported, "subscription identifiers are disabled")
		}
		subID = p.Properties.SubscriptionIDs[0]
	}

	sess.mu.Lock()
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	var b *storage.Batch
	var retained []*delivery
	var waits []<-chan struct{}
	for i, req := range p.Subscriptions {
		code, isNew, err := sess.subscribeLocked(c, req, subID, &b, &waits)
		if err != nil {
			if b != nil {
				b.Close()
			}
			sess.mu.Unlock()
			return err
		}
		codes[i] = code
		if code > packet.ReasonGrantedQoS2 {
			continue
		}
		_, topic, shared := router.ParseShared(req.Filter)
		// [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] Retain Handling. A shared
		// subscription never receives retained messages (MQTT 5.0 section 4.8.2).
		if shared || req.RetainHandling == 2 || (req.RetainHandling == 1 && !isNew) {
			continue
		}
		retained = append(retained, srv.retainedFor(topic, min(req.QoS, 2), subID)...)
	}
	if b != nil {
		err := b.Commit()
		b.Close()
		if err != nil {
			sess.mu.Unlock()
			srv.log.Error("store subscriptions failed", keyClientID, c.clientID, keyErr, err)
			return packet.Errorf(packet.ReasonUnspecifiedError, "storage failure")
		}
	}
	if len(waits) > 0 {
		// Route before SUBACK: every node the cluster reaches has the new
		// routes first. The session's lock is released meanwhile, so
		// deliveries to it go on; the spec allows a matching PUBLISH before
		// the SUBACK (MQTT 5.0 section 3.8.4).
		sess.mu.Unlock()
		srv.waitRoutes(waits)
		sess.mu.Lock()
	}
	defer sess.mu.Unlock()
	if c.version != packet.Version5 {
		for i, code := range codes {
			if code > packet.ReasonGrantedQoS2 {
				codes[i] = packet.ReasonUnspecifiedError // 3.1.1 has only 0x80 for failure
			}
		}
	}
	c.send(&packet.Suback{PacketID: p.PacketID, ReasonCodes: codes})
	sess.deliverRetainedLocked(retained)
	return nil
}

// subscribeLocked validates one subscription and applies it. It returns the
// SUBACK reason code, whether the subscription is new, and an error only for
// a protocol violation that closes the connection.
func (ss *session) subscribeLocked(c *conn, req packet.Subscription, subID uint32, b **storage.Batch, waits *[]<-chan struct{}) (packet.ReasonCode, bool, error) {
	srv := ss.srv
	lim := srv.lim()
	if err := router.ValidateFilter(req.Filter, lim.MaxTopicLength, lim.MaxTopicLevels); err != nil {
		return packet.ReasonTopicFilterInvalid, false, nil
	}
	group, topic, shared := router.ParseShared(req.Filter)
	feat := &srv.cfg.Features
	if shared && feat.DisableSharedSubscriptions {
		return packet.ReasonSharedSubsNotSupported, false, nil
	}
	if feat.DisableWildcardSubscriptions && strings.ContainsAny(topic, "+#") {
		return packet.ReasonWildcardSubsNotSupported, false, nil
	}
	if !c.access.Load().maySubscribe(req.Filter, min(req.QoS, 2)) {
		srv.stats.denied[deniedSubscribe].Add(1)
		srv.clientWarn.log(srv.log, "subscribe not authorized", keyClientID, c.clientID, keyRemote, c.remote,
			"username", c.username(), "filter", req.Filter)
		return packet.ReasonNotAuthorized, false, nil
	}
	if shared && req.NoLocal {
		// [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
		return 0, false, packet.Errorf(packet.ReasonProtocolError, "No Local set on shared subscription %q", req.Filter)
	}
	_, exists := ss.mu.subs[req.Filter]
	if !exists && len(ss.mu.subs) >= lim.MaxSubscriptionsPerClient {
		return packet.ReasonQuotaExceeded, false, nil
	}
	if !exists && srv.cluster != nil && srv.cluster.StrictLeaderless() {
		// Strict mode: a route that no leader can commit is refused, not
		// queued, so the client knows it would miss messages.
		srv.clientWarn.log(srv.log, "subscribe refused: strict mode and no cluster leader", keyClientID, c.clientID,
			keyRemote, c.remote, "filter", req.Filter)
		return packet.ReasonImplementationSpecificError, false, nil
	}
	qos := min(req.QoS, *feat.MaxQoS)
	sub := &subscription{filter: req.Filter, group: group, topic: topic, opts: req, subID: subID}
	sub.opts.QoS = qos
	if old := ss.mu.subs[req.Filter]; old != nil {
		// Same filter, same session: the route is counted already.
		sub.durable = old.durable
		srv.trie.Add(ss.subscriptionEntry(sub))
		if ch := srv.routePending(sub); ch != nil {
			*waits = append(*waits, ch)
		}
	} else if ch := ss.addSubscriptionLocked(sub); ch != nil {
		*waits = append(*waits, ch)
	}
	ss.putSubscriptionLocked(sub)
	if !exists {
		srv.stats.subscriptions.Add(1)
	}
	if ss.persistent.Load() {
		if *b == nil {
			*b = srv.store.NewBatch()
		}
		(*b).PutSubscription(&storage.Subscription{
			ClientID:          ss.id,
			Filter:            req.Filter,
			QoS:               qos,
			NoLocal:           req.NoLocal,
			RetainAsPublished: req.RetainAsPublished,
			RetainHandling:    req.RetainHandling,
			SubID:             subID,
		})
	}
	return packet.ReasonCode(qos), !exists, nil
}

// handleUnsubscribe removes subscriptions; UNSUBACK follows a durable delete for
// a persistent session.
func (c *conn) handleUnsubscribe(p *packet.Unsubscribe) error {
	srv := c.srv
	sess := c.session()
	sess.mu.Lock()
	defer sess.mu.Unlock()
	codes := make([]packet.ReasonCode, len(p.Filters))
	var b *storage.Batch
	for i, f := range p.Filters {
		sub, ok := sess.mu.subs[f]
		if !ok {
			codes[i] = packet.ReasonNoSubscriptionExisted
			continue
		}
		delete(sess.mu.subs, f)
		sess.removeSubscriptionLocked(sub)
		srv.stats.subscriptions.Add(-1)
		if sess.persistent.Load() {
			if b == nil {
				b = srv.store.NewBatch()
			}
			b.DeleteSubscription(sess.id, f)
		}
	}
	if b != nil {
		err := b.Commit()
		b.Close()
		if err != nil {
			srv.log.Error("delete subscriptions failed", keyClientID, c.clientID, keyErr, err)
			return packet.Errorf(packet.ReasonUnspecifiedError, "storage failure")
		}
	}
	ack := &packet.Unsuback{PacketID: p.PacketID}
	if c.version == packet.Version5 {
		ack.ReasonCodes = codes
	}
	c.send(ack)
	return nil
}
