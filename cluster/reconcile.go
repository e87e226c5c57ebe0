package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/cluster/forward"
	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/cluster/membership"
	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// reconcileInterval is how often the leader compares gossip with Raft.
const reconcileInterval = 500 * time.Millisecond

// electionTimeout returns Raft's election timeout for the profile.
func electionTimeout(p membership.Profile) time.Duration {
	conf := raft.DefaultConfig()
	raftTimings(conf, p)
	return conf.ElectionTimeout
}

// reconciler is the leader's memory of when it saw each node die. A new
// leader starts it afresh, so a grace period restarts with a change of
// leader: that only ever keeps routes longer.
type reconciler struct {
	deadSince map[string]time.Time // node name -> first seen gone in gossip
	purged    map[string]uint64    // node name -> incarnation whose non-durable routes are purged
}

// reconcileLoop runs the leader's duties while this node leads: one change
// to the Raft configuration or the node records per step.
func (c *Cluster) reconcileLoop() {
	r := &reconciler{deadSince: make(map[string]time.Time), purged: make(map[string]uint64)}
	tick := time.NewTicker(reconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		if c.raft.State() != raft.Leader {
			clear(r.deadSince)
			continue
		}
		if err := c.reconcileStep(r); err != nil {
			c.log.Warn("reconcile step failed", "err", err)
		}
	}
}

// reconcileStep makes at most one change and returns.
func (c *Cluster) reconcileStep(r *reconciler) error {
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	servers := cf.Configuration().Servers
	inConfig := make(map[string]raft.Server, len(servers))
	voters := 0
	for _, s := range servers {
		inConfig[string(s.ID)] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	alive := make(map[string]membership.Member)
	aliveSites := make(map[string]bool)
	for _, m := range c.members.Members() {
		if m.SiteID == "" || m.PeerAddr == "" {
			continue
		}
		alive[m.Name] = m
		aliveSites[m.SiteID] = true
	}
	records := c.fsm.Nodes()
	now := time.Now()

	// 1. Deaths: a committed node that gossip no longer lists.
	for _, n := range records {
		if n.SiteID == c.siteID || n.State == fsm.NodeLeft {
			continue
		}
		m, ok := alive[n.Name]
		if ok && m.SiteID == n.SiteID {
			delete(r.deadSince, n.Name)
			continue
		}
		since, seen := r.deadSince[n.Name]
		if !seen {
			r.deadSince[n.Name] = now
			since = now
		}
		if n.State != fsm.NodeDead {
			c.log.Info("node is gone; committing its death", "peer", n.Name, "site_id", n.SiteID)
			rec := &clusterpb.NodeRecord{Name: n.Name, SiteId: n.SiteID, Incarnation: n.Incarnation,
				State: clusterpb.NodeState_NODE_STATE_DEAD, PeerAddr: n.PeerAddr, MqttAddr: n.MQTTAddr}
			return c.proposeLeader(clusterpb.CommandType_COMMAND_TYPE_NODE_RECORD, rec)
		}
		if now.Sub(since) >= c.cfg.ReapTime {
			// Gone for good: its durable routes and the messages waiting
			// for it in outboxes go too (each node drops its outbox when
			// the record disappears).
			c.log.Warn("dead node reaped; its durable routes and queued messages are dropped",
				"peer", n.Name, "site_id", n.SiteID, "reap_time", c.cfg.ReapTime)
			delete(r.deadSince, n.Name)
			return c.proposeLeader(clusterpb.CommandType_COMMAND_TYPE_NODE_LEAVE,
				&clusterpb.NodeLeave{Name: n.Name, RemoveRecord: true})
		}
		if now.Sub(since) >= c.cfg.DeadGrace && r.purged[n.Name] != n.Incarnation {
			r.purged[n.Name] = n.Incarnation
			c.log.Info("dead node's grace period over; purging its non-durable routes", "peer", n.Name, "grace", c.cfg.DeadGrace)
			return c.proposeLeader(clusterpb.CommandType_COMMAND_TYPE_PURGE_ROUTES,
				&clusterpb.PurgeRoutes{SiteId: n.SiteID, NonDurableOnly: true})
		}
	}

	// 2. Members alive in gossip but missing from the Raft configuration,
	// except those that left and are on their way out.
	left := c.leftSites()
	for _, m := range alive {
		if _, ok := inConfig[m.SiteID]; ok || left[m.SiteID] {
			continue
		}
		if voters < c.cfg.Voters {
			c.log.Info("adding voter", "peer", m.Name, "site_id", m.SiteID)
			return c.raft.AddVoter(raft.ServerID(m.SiteID), raft.ServerAddress(m.PeerAddr), 0, 5*time.Second).Error()
		}
		c.log.Info("adding nonvoter", "peer", m.Name, "site_id", m.SiteID)
		return c.raft.AddNonvoter(raft.ServerID(m.SiteID), raft.ServerAddress(m.PeerAddr), 0, 5*time.Second).Error()
	}

	// 3. Servers whose node left, or whose site id was retired (the name
	// came back with a new disk), leave the configuration at once; dead
	// voters after VoterGrace.
	for _, s := range servers {
		if left[string(s.ID)] && string(s.ID) != c.siteID {
			c.log.Info("removing a node that left from the raft configuration", "site_id", s.ID)
			return c.raft.RemoveServer(s.ID, 0, 5*time.Second).Error()
		}
	}
	siteOfName := make(map[string]string)
	for _, n := range records {
		siteOfName[n.Name] = n.SiteID
	}
	for _, s := range servers {
		site := string(s.ID)
		if site == c.siteID || aliveSites[site] {
			continue
		}
		name := c.nameOfSite(site)
		retired := name == "" || (siteOfName[name] != "" && siteOfName[name] != site)
		gone, seen := r.deadSince[name]
		if retired || (seen && now.Sub(gone) >= c.cfg.VoterGrace) {
			c.log.Info("removing server from the raft configuration", "peer", name, "site_id", site, "retired", retired)
			return c.raft.RemoveServer(s.ID, 0, 5*time.Second).Error()
		}
	}

	// 4. Keep the voter count: promote a live nonvoter.
	if voters < c.cfg.Voters {
		for _, s := range servers {
			if s.Suffrage != raft.Voter && aliveSites[string(s.ID)] {
				c.log.Info("promoting nonvoter", "site_id", s.ID)
				return c.raft.AddVoter(s.ID, s.Address, 0, 5*time.Second).Error()
			}
		}
	}
	return nil
}

// proposeLeader proposes a command from the leader's own loop.
func (c *Cluster) proposeLeader(typ clusterpb.CommandType, body proto.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.propose(ctx, typ, body)
	return err
}

// peersLoop keeps the forwarder's peers equal to the committed node
// records: every node except this one that has not left, wherever it is
// now, since messages for a dead node's durable routes wait in its outbox.
func (c *Cluster) peersLoop() {
	changes, cancel := c.fsm.Subscribe(fsm.ChangeNodes)
	defer cancel()
	reaper := newOutboxReaper(c)
	for {
		var peers []forward.Peer
		nodes := c.fsm.Nodes()
		for _, n := range nodes {
			if n.SiteID == c.siteID || n.State == fsm.NodeLeft {
				continue
			}
			peers = append(peers, forward.Peer{Name: n.Name, SiteID: n.SiteID, Addr: n.PeerAddr})
		}
		c.fwd.SetPeers(peers)
		reaper.reap(nodes)
		select {
		case <-c.stop:
			return
		case <-changes:
		}
	}
}
