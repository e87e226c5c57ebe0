package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// Leave takes this node out of the cluster for good, as a scale-down does:
// it stops registering itself, commits a leave,
// which purges all its routes at once, hands leadership over if it holds
// it, and waits until the leader has removed it from the Raft
// configuration. A plain shutdown is not a leave; only this is.
func (c *Cluster) Leave(ctx context.Context) error {
	c.leaving.Store(true)
	c.ready.Store(false)
	if c.raft.State() == raft.Leader {
		if err := c.raft.LeadershipTransfer().Error(); err != nil {
			c.log.Warn("leadership transfer before leaving failed", "err", err)
		}
	}
	for {
		_, err := c.propose(ctx, clusterpb.CommandType_COMMAND_TYPE_NODE_RECORD, &clusterpb.NodeRecord{
			Name: c.cfg.NodeName, SiteId: c.siteID, Incarnation: c.incarnation.Load(),
			State: clusterpb.NodeState_NODE_STATE_LEFT, PeerAddr: c.peerAdvertise(), MqttAddr: c.cfg.MQTTAddr,
		})
		if err == nil {
			break
		}
		if !errors.Is(err, errNoLeader) {
			return fmt.Errorf("cluster: commit the leave: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: commit the leave: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.log.Info("leave committed; waiting for the leader to remove this node from raft")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if !c.inConfiguration() {
			c.log.Info("left the cluster")
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: wait for the removal from raft: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// inConfiguration reports whether this node's site id is in the Raft
// configuration as this node last applied it.
func (c *Cluster) inConfiguration() bool {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return true
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == c.siteID {
			return true
		}
	}
	return false
}

// leftSites returns the site ids whose committed record says left, for the
// leader to remove from the Raft configuration.
func (c *Cluster) leftSites() map[string]bool {
	out := make(map[string]bool)
	for _, n := range c.fsm.Nodes() {
		if n.State == fsm.NodeLeft {
			out[n.SiteID] = true
		}
	}
	return out
}
