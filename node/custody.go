package node

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/router"
	"github.com/starling-mqtt/starling/storage"
)

// Shared custody (cluster/custody.go gives the whole picture): a QoS 1
// message published here and forwarded to another node for a share group is
// kept on disk, in the publish's batch, until that node settles it. If that
// node's death is committed first, the message is offered to another member
// of the group, here or on a third node. QoS 1 allows the duplicate that
// results when the dead node returns with the message still in a member's
// session, which the design accepts for shared groups.
//
// NOTE: QoS 2 messages are not kept in custody, because the spec keeps a
// QoS 2 message with the member it was sent to. One that reached a node that
// died waits there (or in this node's outbox) for that node to return. A
// message that the receiving node handed on to a third node stays in custody
// for the second one; if the third dies, it is lost once its custody expires.

// putCustody stages the custody of m, just staged for site, in b.
func (s *Server) putCustody(b *storage.Batch, id uint64, site string, m *clusterpb.ForwardMessage, now time.Time) {
	raw, err := proto.Marshal(m)
	if err != nil {
		// A message that was just staged always encodes; log and go on
		// without custody rather than refuse the publish.
		s.log.Error("shared custody not kept: message does not encode", keyTopic, m.Topic, keyErr, err)
		return
	}
	b.PutCustody(id, site, now, raw)
}

// settleShared reports to the node a shared-subscription message came from
// that the message reached its end here. Messages of this node have no custody to settle.
func (s *Server) settleShared(msg *message) {
	if s.cluster == nil || !msg.fromPeer || msg.qos != 1 || msg.originSite == "" {
		return
	}
	s.cluster.SettleShared(msg.originSite, msg.originID)
}

// SettleCustody ends the custody of the messages with these ids: the node
// they were forwarded to settled them.
func (s *Server) SettleCustody(ids []uint64) {
	if err := s.store.DeleteCustody(ids); err != nil {
		s.stats.storageErrors.Add(1)
		s.log.Warn("settling shared custody failed", "count", len(ids), keyErr, err)
	}
}

// ExpireCustody ends the custody of messages kept longer than maxAge and
// returns how many there were.
func (s *Server) ExpireCustody(maxAge time.Duration) (int, error) {
	cutoff := time.Now().Add(-maxAge)
	var ids []uint64
	err := s.store.Custody(func(e storage.CustodyEntry) error {
		if e.Since.Before(cutoff) {
			ids = append(ids, e.MessageID)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read shared custody: %w", err)
	}
	if err := s.store.DeleteCustody(ids); err != nil {
		return 0, err
	}
	s.stats.custodyExpired.Add(uint64(len(ids)))
	return len(ids), nil
}

// ReofferShared offers each message in custody at the node with site id
// deadSite, whose death is committed, to another member of its group: one
// on this node first, else one on another live node. It returns how many
// messages found a member.
func (s *Server) ReofferShared(deadSite string) (int, error) {
	if s.cluster == nil {
		return 0, nil
	}
	var entries []storage.CustodyEntry
	err := s.store.Custody(func(e storage.CustodyEntry) error {
		if e.Site == deadSite {
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read shared custody: %w", err)
	}
	if len(entries) == 0 {
		return 0, nil
	}

	b := s.store.NewBatch()
	defer b.Close()
	var (
		fw      forwards
		targets []target
		offered int
	)
	now := time.Now()
	for _, e := range entries {
		b.DeleteCustody(e.MessageID)
		fm := new(clusterpb.ForwardMessage)
		if err := proto.Unmarshal(e.Message, fm); err != nil {
			s.log.Warn("shared custody entry dropped: does not decode", "message_id", e.MessageID, keyErr, err)
			continue
		}
		msg, err := messageFromForward(fm)
		if err != nil {
			s.log.Warn("shared custody entry dropped: invalid", "message_id", e.MessageID, keyErr, err)
			continue
		}
		if msg.expired(now) {
			s.stats.expired.Add(1)
			continue
		}
		for _, key := range msg.shareGroups {
			var ok bool
			targets, ok = s.offerLocal(msg, key, b, targets)
			if !ok {
				ok = s.offerRemote(msg, e.MessageID, key, deadSite, b, &fw, now)
			}
			if ok {
				offered++
				continue
			}
			s.stats.droppedNoMember.Add(1)
			group, _, _ := strings.Cut(key, "\x00")
			s.clientWarn.log(s.log, "shared subscription message of a dead node dropped: no member left",
				"share_group", group, keyTopic, msg.topic)
		}
	}
	if err := b.Commit(); err != nil {
		s.stats.storageErrors.Add(1)
		fw.release(s.cluster, false)
		return 0, fmt.Errorf("store messages offered again: %w", err)
	}
	fw.release(s.cluster, true)
	for _, t := range targets {
		t.sess.deliver(t.d)
	}
	s.stats.sharedRedelivered.Add(uint64(offered))
	return offered, nil
}

// offerLocal gives msg to a member of the share group key on this node.
func (s *Server) offerLocal(msg *message, key string, b *storage.Batch, targets []target) ([]target, bool) {
	matches := s.trie.Match(msg.topic, nil)
	var members []router.Entry
	for _, e := range matches {
		if e.Group != "" && shareKey(e.Group, e.Filter) == key {
			members = append(members, e)
		}
	}
	e := s.pickShared(key, members, msg.publisher, "")
	if e == nil {
		return targets, false
	}
	n := len(targets)
	targets = s.addTarget(targets, msg, e, key)
	if len(targets) == n {
		return targets, false
	}
	s.stageDelivery(msg, b, targets[n])
	return targets, true
}

// offerRemote stages msg for a live node, other than deadSite, with members
// of the share group key, and keeps it in custody for that node.
func (s *Server) offerRemote(msg *message, id uint64, key, deadSite string, b *storage.Batch, fw *forwards, now time.Time) bool {
	group, filter, _ := strings.Cut(key, "\x00")
	site := s.nextSharedSite(msg.topic, group, filter, s.cluster.SiteID(), []string{deadSite})
	if site == "" {
		return false
	}
	next := msg.forwardMessage(now)
	next.ShareGroups = []string{group + "/" + filter}
	t, err := s.cluster.Stage(site, next, b)
	if err != nil {
		s.stats.forwardFailed.Add(1)
		s.clientWarn.log(s.log, "shared subscription message not offered to another node", "peer_site", site, keyErr, err)
		return false
	}
	fw.tickets = append(fw.tickets, t)
	if msg.qos == 1 {
		s.putCustody(b, id, site, next, now)
	}
	return true
}
