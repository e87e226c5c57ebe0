package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/router"
	"github.com/starling-mqtt/starling/storage"
)

// forwards are the messages of one batch staged for other nodes: the
// cluster holds each ticket until the batch commits (Release) or fails
// (Abort).
type forwards struct {
	tickets []any
	// congested is set when a stream that got one of them is behind, so
	// the publisher is slowed (waitForSlowPeers).
	congested bool
}

// routeRemote stages msg for every other node with a matching route and
// appends the tickets to fw. A shared group with a member on this node is
// served here (localGroups); one served only elsewhere goes to one node
// that has members, chosen in turn. Messages that arrived from another
// node are never forwarded again: routes are one hop.
func (s *Server) routeRemote(msg *message, b *storage.Batch, localGroups map[string][]router.Entry, fw *forwards) {
	if s.cluster == nil || msg.fromPeer || isSysTopic(msg.topic) {
		return
	}
	s.stageRetainedUpdates(msg, b, fw)
	scratch := s.matchPool.Get().(*[]router.Entry)
	defer func() {
		clear(*scratch)
		*scratch = (*scratch)[:0]
		s.matchPool.Put(scratch)
	}()
	remote := s.cluster.MatchRemote(msg.topic, (*scratch)[:0])
	*scratch = remote
	if len(remote) == 0 {
		return
	}

	// sites maps a site id to the share groups it is to serve; a plain
	// route adds the site with no group.
	sites := make(map[string][]string, len(remote))
	var groups map[string][]string // share key -> candidate sites
	for i := range remote {
		e := &remote[i]
		if e.Group == "" {
			if _, ok := sites[e.ClientID]; !ok {
				sites[e.ClientID] = nil
			}
			continue
		}
		key := shareKey(e.Group, e.Filter)
		if _, ok := localGroups[key]; ok {
			continue
		}
		if groups == nil {
			groups = make(map[string][]string)
		}
		groups[key] = append(groups[key], e.ClientID)
	}
	for key, candidates := range groups {
		candidates = s.liveSites(candidates)
		site := candidates[int(s.sharedTurn.Add(1)%uint64(len(candidates)))]
		sites[site] = append(sites[site], wireShareKey(key))
	}

	if msg.id == 0 {
		msg.id = s.store.NextID() // the origin id, unique with this node's site id
	}
	now := time.Now()
	for site, keys := range sites {
		m := msg.forwardMessage(now)
		m.ShareGroups = keys
		t, err := s.cluster.Stage(site, m, b)
		if err != nil {
			s.stats.forwardFailed.Add(1)
			s.clientWarn.log(s.log, "message not forwarded to a node", "peer_site", site, keyTopic, msg.topic, keyErr, err)
			continue
		}
		fw.tickets = append(fw.tickets, t)
		if len(m.ShareGroups) > 0 && m.Qos == 1 {
			s.putCustody(b, msg.id, site, m, now)
		}
		if s.cluster.Congested(site) {
			fw.congested = true
		}
	}
}

// liveSites returns the candidates whose death is not committed, or all of
// them when every one is dead: a durable member of a dead node still gets
// the message when its node returns.
func (s *Server) liveSites(candidates []string) []string {
	dead := 0
	for _, site := range candidates {
		if s.cluster.SiteDead(site) {
			dead++
		}
	}
	if dead == 0 || dead == len(candidates) {
		return candidates // the usual case allocates nothing
	}
	live := make([]string, 0, len(candidates)-dead)
	for _, site := range candidates {
		if !s.cluster.SiteDead(site) {
			live = append(live, site)
		}
	}
	return live
}

// wireShareKey converts a share key to the "group/filter" form of
// ForwardMessage.share_groups; a group name never contains '/'.
func wireShareKey(key string) string {
	group, filter, _ := strings.Cut(key, "\x00")
	return group + "/" + filter
}

// release hands staged messages to the cluster after their batch
// committed, or gives their sequence numbers up when it failed, and
// empties fw for reuse.
func (fw *forwards) release(c Cluster, committed bool) {
	for i, t := range fw.tickets {
		if committed {
			c.Release(t)
		} else {
			c.Abort(t)
		}
		fw.tickets[i] = nil
	}
	fw.tickets = fw.tickets[:0]
	fw.congested = false
}

// forwardFull reports whether some node that msg would be forwarded to has a
// full outbox, so a QoS 1/2 publish must be refused rather than acknowledged
// and then lost (invariant 7).
func (s *Server) forwardFull(topic string) bool {
	if s.cluster == nil {
		return false
	}
	scratch := s.matchPool.Get().(*[]router.Entry)
	defer func() {
		clear(*scratch)
		*scratch = (*scratch)[:0]
		s.matchPool.Put(scratch)
	}()
	remote := s.cluster.MatchRemote(topic, (*scratch)[:0])
	*scratch = remote
	for i := range remote {
		if s.cluster.Full(remote[i].ClientID) {
			return true
		}
	}
	return false
}

// forwardMessage converts m to its form between nodes. The sequence number
// is the cluster's to set.
func (m *message) forwardMessage(now time.Time) *clusterpb.ForwardMessage {
	// The cluster fills in OriginSiteId of a message published here, which
	// the node does not know; one handed on keeps its origin.
	fm := &clusterpb.ForwardMessage{
		OriginSiteId: m.originSite,
		OriginId:     m.id,
		Topic:        m.topic,
		Payload:      m.payload,
		Qos:          uint32(m.qos),
		Retain:       m.retain,
		Publisher:    m.publisher,
	}
	if m.fromPeer {
		fm.OriginId = m.originID
	}
	if !m.expiresAt.IsZero() {
		fm.ExpiresAtUnixMs = m.expiresAt.UnixMilli()
	}
	if p := m.props; p != nil {
		mp := &clusterpb.MessageProperties{
			PayloadFormat:   uint32(p.PayloadFormat),
			ContentType:     p.ContentType,
			ResponseTopic:   p.ResponseTopic,
			CorrelationData: p.CorrelationData,
		}
		for _, kv := range p.UserProperties {
			mp.UserProperties = append(mp.UserProperties, &clusterpb.UserProperty{Key: kv.Key, Value: kv.Value})
		}
		fm.Properties = mp
	}
	return fm
}

// messageFromForward converts a message that arrived from another node.
func messageFromForward(fm *clusterpb.ForwardMessage) (*message, error) {
	if fm.Qos > 2 {
		return nil, fmt.Errorf("QoS %d", fm.Qos)
	}
	if fm.Topic == "" {
		return nil, fmt.Errorf("empty topic")
	}
	m := &message{
		topic:      fm.Topic,
		payload:    fm.Payload,
		qos:        byte(fm.Qos),
		retain:     fm.Retain,
		publisher:  fm.Publisher,
		fromPeer:   true,
		originSite: fm.OriginSiteId,
		originID:   fm.OriginId,
		declinedBy: fm.DeclinedBy,
	}
	for _, k := range fm.ShareGroups {
		group, filter, ok := strings.Cut(k, "/")
		if !ok {
			return nil, fmt.Errorf("share group %q is not group/filter", k)
		}
		m.shareGroups = append(m.shareGroups, shareKey(group, filter))
	}
	if fm.ExpiresAtUnixMs != 0 {
		m.expiresAt = time.UnixMilli(fm.ExpiresAtUnixMs)
	}
	if mp := fm.Properties; mp != nil {
		props := packet.Properties{
			PayloadFormat:   byte(mp.PayloadFormat),
			ContentType:     mp.ContentType,
			ResponseTopic:   mp.ResponseTopic,
			CorrelationData: mp.CorrelationData,
		}
		for _, kv := range mp.UserProperties {
			props.UserProperties = append(props.UserProperties, packet.UserProperty{Key: kv.Key, Value: kv.Value})
		}
		m.props = forwardedProperties(&props)
	}
	return m, nil
}

// DeliverForwarded hands messages that another node forwarded, in order, to
// the local sessions. The deliveries to persistent sessions and the
// sender's high-water mark are written in one batch before the messages
// reach the sessions; so once it returns, the sender may forget them, and a
// resend after a crash of this node is recognised by its sequence number.
// The batch is synced only when it holds a delivery to a persistent
// session: deliveries to clean sessions die with the node anyway, and a
// high-water mark lost with them only lets through resends that nothing
// here has seen.
func (s *Server) DeliverForwarded(senderSite string, msgs []*clusterpb.ForwardMessage, highWater uint64) error {
	if s.closing.Load() {
		// The sessions are about to end with the shutdown: a message
		// acknowledged now would be lost. The sender keeps it in its
		// outbox and sends it again after the restart.
		return errShuttingDown
	}
	b := s.store.NewBatch()
	defer b.Close()
	var targets []target
	var handOn forwards
	var retained []retainedUpdate
	var settled []*message // shared messages that reached their end here
	needSync := false
	now := time.Now()
	for _, fm := range msgs {
		if fm.RetainedClock != nil {
			// A retained update: stored, delivered to nobody.
			needSync = s.stageRemoteRetained(senderSite, fm, b, &retained) || needSync
			continue
		}
		msg, err := messageFromForward(fm)
		if err != nil {
			s.log.Warn("forwarded message dropped: invalid", "peer_site", senderSite, keyErr, err)
			continue
		}
		if fm.ReceiverIncarnation != 0 && s.cluster != nil && fm.ReceiverIncarnation < s.cluster.Incarnation() {
			// Staged before this node restarted: only the persistent
			// sessions, which the durable route was kept for, wanted it.
			msg.durableOnly = true
		}
		if msg.expired(now) {
			s.stats.expired.Add(1)
			if len(msg.shareGroups) > 0 {
				settled = append(settled, msg)
			}
			continue
		}
		s.stats.forwardedIn.Add(1)
		start := len(targets)
		targets = s.route(msg, b, targets, nil)
		if len(msg.shareGroups) > 0 {
			handedOn := s.handOnShared(msg, fm, targets[start:], b, &handOn)
			if !handedOn && !awaitsSharedAck(targets[start:]) {
				settled = append(settled, msg)
			}
		}
	}
	for _, t := range targets {
		needSync = needSync || t.d.stored
	}
	b.PutForwardHighWater(senderSite, highWater)
	var err error
	if needSync {
		err = b.Commit()
	} else {
		err = b.CommitNoSync()
	}
	if err != nil {
		s.stats.storageErrors.Add(1)
		handOn.release(s.cluster, false)
		return fmt.Errorf("store forwarded messages from %s: %w", senderSite, err)
	}
	handOn.release(s.cluster, true)
	for _, msg := range settled {
		s.settleShared(msg)
	}
	s.applyRetained(retained)
	for _, t := range targets {
		t.sess.deliver(t.d)
	}
	return nil
}

// errShuttingDown refuses forwarded messages during a shutdown.
var errShuttingDown = errors.New("node: shutting down")

// awaitsSharedAck reports whether one of the deliveries is to a share group
// member at QoS 1, whose PUBACK settles the message (handlePuback).
func awaitsSharedAck(delivered []target) bool {
	for _, t := range delivered {
		if t.d.shareKey != "" && t.d.qos == 1 {
			return true
		}
	}
	return false
}

// handOnShared passes on a forwarded message for each share group it names
// that no member here took: to another node with members of the group that
// has not declined it yet, staged in b, the batch that acknowledges the
// message, so it is never lost in between. This node declines by adding
// itself to declined_by. With no node left, the message is dropped and
// counted. It reports whether it handed the message on to some node.
//
// NOTE: the design has the declining node answer the sender, which then
// offers the message to its next choice. Handing it on from here needs no
// round trip and no window in which the sender has already forgotten the
// message; the choice is the same one the sender would make.
func (s *Server) handOnShared(msg *message, fm *clusterpb.ForwardMessage, delivered []target, b *storage.Batch, fw *forwards) bool {
	handedOn := false
	for _, key := range msg.shareGroups {
		served := false
		for _, t := range delivered {
			if t.d.shareKey == key {
				served = true
				break
			}
		}
		if served {
			continue
		}
		group, filter, _ := strings.Cut(key, "\x00")
		declined := append(slices.Clone(fm.DeclinedBy), s.cluster.SiteID())
		site := s.nextSharedSite(msg.topic, group, filter, fm.OriginSiteId, declined)
		if site == "" {
			s.stats.droppedNoMember.Add(1)
			s.clientWarn.log(s.log, "shared subscription message dropped: no node has a member left",
				"share_group", group, keyTopic, msg.topic)
			continue
		}
		next := msg.forwardMessage(time.Now())
		next.ShareGroups = []string{group + "/" + filter}
		next.DeclinedBy = declined
		t, err := s.cluster.Stage(site, next, b)
		if err != nil {
			s.stats.forwardFailed.Add(1)
			s.clientWarn.log(s.log, "shared subscription message not handed on", "peer_site", site, keyErr, err)
			continue
		}
		fw.tickets = append(fw.tickets, t)
		handedOn = true
	}
	return handedOn
}

// nextSharedSite returns a node with members of the share group that is
// neither the message's origin nor in declined, or "".
func (s *Server) nextSharedSite(topic, group, filter, origin string, declined []string) string {
	scratch := s.matchPool.Get().(*[]router.Entry)
	defer func() {
		clear(*scratch)
		*scratch = (*scratch)[:0]
		s.matchPool.Put(scratch)
	}()
	remote := s.cluster.MatchRemote(topic, (*scratch)[:0])
	*scratch = remote
	var candidates []string
	for _, e := range remote {
		if e.Group == group && e.Filter == filter && e.ClientID != origin && !slices.Contains(declined, e.ClientID) &&
			!s.cluster.SiteDead(e.ClientID) {
			candidates = append(candidates, e.ClientID)
		}
	}
	if len(candidates) == 0 {
		return ""
	}
	return candidates[int(s.sharedTurn.Add(1)%uint64(len(candidates)))]
}

// ForwardHighWater returns the highest sequence number handled from the
// node with site id senderSite.
func (s *Server) ForwardHighWater(senderSite string) (uint64, error) {
	return s.store.ForwardHighWater(senderSite)
}
