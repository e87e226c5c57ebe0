package cluster

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// Shared custody keeps the MQTT 5.0 section 4.8.2 promise across nodes: a
// QoS 1 message for a shared-subscription group that was forwarded to a
// node which dies before the member there acknowledged it goes to another
// member. The publishing node (the custodian, the node package) keeps each
// such message until the receiving node settles it. This file carries the
// settle notices between nodes, tells the custodian when a node's death is
// committed so it offers that node's messages elsewhere, and expires
// custody that is not settled within Config.SharedCustody.

// SharedCustodian is the node's side of shared custody. The cluster finds
// it by a type assertion on the Node passed to Start.
type SharedCustodian interface {
	// ReofferShared offers every message in custody at the node with site
	// id deadSite to another member of its group, here or on another node,
	// and returns how many it offered.
	ReofferShared(deadSite string) (int, error)
	// SettleCustody ends the custody of the messages with these ids.
	SettleCustody(ids []uint64)
	// ExpireCustody ends the custody of messages held longer than maxAge
	// and returns how many there were.
	ExpireCustody(maxAge time.Duration) (int, error)
}

// settleFlushInterval is how long settle notices wait to be sent in one
// call per origin node; it bounds the rate of those calls.
const settleFlushInterval = 100 * time.Millisecond

// custodySweepInterval is how often custody older than
// Config.SharedCustody is expired.
const custodySweepInterval = time.Minute

// settleCallTimeout bounds one SettleShared call.
const settleCallTimeout = 2 * time.Second

// settleQueueMax bounds the notices waiting for one origin. Above it, new
// ones are dropped and counted, so their messages stay in custody until it
// expires.
const settleQueueMax = 100_000

// settler batches settle notices per origin node.
type settler struct {
	mu      sync.Mutex
	pending map[string][]uint64 // origin site id -> origin ids

	dropped atomic.Uint64 // notices dropped: queue full or call failed
	sent    atomic.Uint64

	// dead is the set of site ids whose death is committed, read by
	// SiteDead on the publish path without touching the state machine.
	dead atomic.Pointer[map[string]struct{}]
}

// SettleShared reports that a shared-subscription message published on the
// node with site id originSite reached its end here. It does not wait for
// the network: custodyLoop sends the notice with others within
// settleFlushInterval.
func (c *Cluster) SettleShared(originSite string, originID uint64) {
	if originSite == "" {
		return
	}
	s := &c.settle
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		s.pending = make(map[string][]uint64)
	}
	q := s.pending[originSite]
	if len(q) >= settleQueueMax {
		s.dropped.Add(1)
		return
	}
	s.pending[originSite] = append(q, originID)
}

// SiteDead reports whether the death of the node with site id site is
// committed, so that a share group prefers its members on live nodes.
func (c *Cluster) SiteDead(site string) bool {
	dead := c.settle.dead.Load()
	if dead == nil {
		return false
	}
	_, ok := (*dead)[site]
	return ok
}

// custodyLoop sends settle notices, hands the custodian each committed
// death once, and expires old custody. Its owner is the Cluster (loop);
// it returns when c.stop closes.
func (c *Cluster) custodyLoop() {
	custodian, _ := c.node.(SharedCustodian)
	changes, cancel := c.fsm.Subscribe(fsm.ChangeNodes)
	defer cancel()
	flush := time.NewTicker(settleFlushInterval)
	defer flush.Stop()
	sweep := time.NewTicker(custodySweepInterval)
	defer sweep.Stop()

	handled := make(map[string]uint64) // site id -> incarnation+1 whose death was handled
	c.noteDeaths(custodian, handled)
	for {
		select {
		case <-c.stop:
			return
		case <-changes:
			c.noteDeaths(custodian, handled)
		case <-flush.C:
			c.flushSettles(custodian)
		case <-sweep.C:
			if custodian == nil {
				continue
			}
			n, err := custodian.ExpireCustody(c.cfg.SharedCustody)
			if err != nil {
				c.log.Warn("expiring shared custody failed", "err", err)
			} else if n > 0 {
				c.log.Warn("shared-subscription messages left custody unsettled; they are no longer offered elsewhere if their node dies",
					"count", n, "after", c.cfg.SharedCustody)
			}
		}
	}
}

// noteDeaths refreshes the dead set and offers the messages held by each
// newly dead node to other members.
func (c *Cluster) noteDeaths(custodian SharedCustodian, handled map[string]uint64) {
	dead := make(map[string]struct{})
	var fresh []fsm.Node
	for _, n := range c.fsm.Nodes() {
		if n.SiteID == c.siteID || (n.State != fsm.NodeDead && n.State != fsm.NodeLeft) {
			continue
		}
		dead[n.SiteID] = struct{}{}
		if handled[n.SiteID] != n.Incarnation+1 {
			handled[n.SiteID] = n.Incarnation + 1
			fresh = append(fresh, n)
		}
	}
	c.settle.dead.Store(&dead)
	if custodian == nil {
		return
	}
	for _, n := range fresh {
		count, err := custodian.ReofferShared(n.SiteID)
		switch {
		case err != nil:
			c.log.Error("offering a dead node's shared-subscription messages elsewhere failed", "peer", n.Name, "err", err)
		case count > 0:
			c.log.Info("dead node's unsettled shared-subscription messages offered to other members", "peer", n.Name, "count", count)
		}
	}
}

// flushSettles sends the waiting settle notices, one call per origin.
func (c *Cluster) flushSettles(custodian SharedCustodian) {
	s := &c.settle
	s.mu.Lock()
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()

	for _, site := range slices.Sorted(maps.Keys(pending)) {
		ids := pending[site]
		if site == c.siteID {
			if custodian != nil {
				custodian.SettleCustody(ids)
			}
			continue
		}
		if c.SiteDead(site) {
			// Its custody died with it; a call would only wait for the
			// timeout and hold up the other origins and the deaths.
			s.dropped.Add(uint64(len(ids)))
			continue
		}
		client, err := c.clientForSite(site)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), settleCallTimeout)
			_, err = client.SettleShared(ctx, &clusterpb.SettleSharedRequest{OriginIds: ids})
			cancel()
		}
		if err != nil {
			s.dropped.Add(uint64(len(ids)))
			c.log.Debug("settle notices not delivered", "peer_site", site, "count", len(ids), "err", err)
			continue
		}
		s.sent.Add(uint64(len(ids)))
	}
}

// SettleShared is the receiving end of settle notices.
func (s *service) SettleShared(_ context.Context, req *clusterpb.SettleSharedRequest) (*clusterpb.SettleSharedResponse, error) {
	if custodian, ok := s.c.node.(SharedCustodian); ok {
		custodian.SettleCustody(req.OriginIds)
	}
	return &clusterpb.SettleSharedResponse{}, nil
}
