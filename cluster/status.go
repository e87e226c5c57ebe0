package cluster

import (
	"context"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-mqtt/starling/cluster/forward"
	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// Status is this node's view of the cluster, for the admin API.
type Status struct {
	Name         string         `json:"name"`
	SiteID       string         `json:"site_id"`
	Incarnation  uint64         `json:"incarnation"`
	Ready        bool           `json:"ready"`
	RaftState    string         `json:"raft_state"`
	Leader       string         `json:"leader"`
	AppliedIndex uint64         `json:"applied_index"`
	CommitIndex  uint64         `json:"commit_index"`
	Epoch        uint64         `json:"membership_epoch"`
	Routes       int            `json:"routes"`
	RemoteRoutes int            `json:"remote_routes"`
	RouteBatches uint64         `json:"route_batches"`
	RouteOps     uint64         `json:"route_ops"`
	Members      []MemberStatus `json:"members"`
	Streams      []StreamStatus `json:"streams"`
	Retained     RetainedStatus `json:"retained"`
}

// MemberStatus is one node as the Raft records and gossip see it.
type MemberStatus struct {
	Name     string `json:"name"`
	SiteID   string `json:"site_id"`
	State    string `json:"state"`  // committed: joined, dead, back, left
	Gossip   string `json:"gossip"` // alive or gone
	Suffrage string `json:"suffrage,omitempty"`
	PeerAddr string `json:"peer_addr"`
	MQTTAddr string `json:"mqtt_addr"`
}

// StreamStatus is the forward stream from this node to one peer.
type StreamStatus struct {
	Peer        string `json:"peer"`
	Connected   bool   `json:"connected"`
	Lag         uint64 `json:"lag"`
	OutboxDepth uint64 `json:"outbox_depth"`
	OutboxBytes uint64 `json:"outbox_bytes"`
}

// Status returns this node's view of the cluster.
func (c *Cluster) Status() Status {
	st := Status{
		Name:         c.cfg.NodeName,
		SiteID:       c.siteID,
		Incarnation:  c.incarnation.Load(),
		Ready:        c.Ready(),
		RaftState:    c.raft.State().String(),
		AppliedIndex: c.fsm.AppliedIndex(),
		CommitIndex:  c.raft.CommitIndex(),
		Epoch:        c.fsm.Epoch(),
		Routes:       len(c.fsm.RoutesFor(c.siteID)),
		RemoteRoutes: c.view.routeCount(),
		RouteBatches: c.routes.batches.Load(),
		RouteOps:     c.routes.ops.Load(),
		Retained:     c.retained.status(),
	}
	_, leaderID := c.raft.LeaderWithID()
	st.Leader = c.nameOfSite(string(leaderID))
	suffrage := make(map[string]string)
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			suffrage[string(s.ID)] = s.Suffrage.String()
		}
	}
	alive := make(map[string]bool)
	for _, m := range c.members.Members() {
		alive[m.Name] = true
	}
	for _, n := range c.fsm.Nodes() {
		g := "gone"
		if alive[n.Name] || n.SiteID == c.siteID {
			g = "alive"
		}
		st.Members = append(st.Members, MemberStatus{Name: n.Name, SiteID: n.SiteID, State: n.State.String(),
			Gossip: g, Suffrage: suffrage[n.SiteID], PeerAddr: n.PeerAddr, MQTTAddr: n.MQTTAddr})
	}
	for _, ps := range c.fwd.Stats() {
		st.Streams = append(st.Streams, streamStatus(ps))
	}
	sort.Slice(st.Streams, func(i, j int) bool { return st.Streams[i].Peer < st.Streams[j].Peer })
	return st
}

// localStatus is Status in its protobuf form, for the Status call.
func (c *Cluster) localStatus() *clusterpb.StatusResponse {
	st := c.Status()
	resp := &clusterpb.StatusResponse{Name: st.Name, SiteId: st.SiteID, RaftState: st.RaftState, Leader: st.Leader,
		AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex, RouteCount: uint64(st.Routes)}
	for _, s := range st.Streams {
		resp.Streams = append(resp.Streams, &clusterpb.PeerStream{Peer: s.Peer, Connected: s.Connected, Lag: s.Lag,
			OutboxDepth: s.OutboxDepth, OutboxBytes: s.OutboxBytes})
	}
	return resp
}

// WaitReady waits until the node is ready or ctx ends.
func (c *Cluster) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !c.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// IsLeader reports whether this node leads the Raft group.
func (c *Cluster) IsLeader() bool { return c.raft.State() == raft.Leader }

func streamStatus(ps forward.PeerStats) StreamStatus {
	return StreamStatus{Peer: ps.Peer, Connected: ps.Connected, Lag: ps.Lag, OutboxDepth: uint64(max(ps.OutboxDepth, 0)), OutboxBytes: uint64(max(ps.OutboxBytes, 0))}
}
