package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/cluster/membership"
	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage/raftstore"
)

// raftTimings returns Raft's timeouts for the gossip profile. CommitTimeout
// is short because a follower learns that an entry committed only from the
// leader's next AppendEntries, and every SUBACK of a new route waits for
// every node to apply it.
func raftTimings(conf *raft.Config, p membership.Profile) {
	conf.HeartbeatTimeout = time.Second
	conf.ElectionTimeout = time.Second
	conf.LeaderLeaseTimeout = 500 * time.Millisecond
	conf.CommitTimeout = 20 * time.Millisecond
	if p == membership.ProfileLocal {
		conf.HeartbeatTimeout = 500 * time.Millisecond
		conf.ElectionTimeout = 500 * time.Millisecond
		conf.LeaderLeaseTimeout = 250 * time.Millisecond
		conf.CommitTimeout = 10 * time.Millisecond
	}
}

// startRaft opens the log in dir/raft and the snapshots in dir, and starts
// the Raft node over the peer port.
func (c *Cluster) startRaft(dir string) error {
	var err error
	c.logs, err = raftstore.Open(raftstore.Config{Dir: filepath.Join(dir, "raft"), Logger: c.cfg.Logger})
	if err != nil {
		return fmt.Errorf("cluster: open raft log: %w", err)
	}
	hlog := newHCLogger(c.cfg.Logger.With("component", "raft", "node", c.cfg.NodeName), "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	c.snaps = snaps
	if err != nil {
		return fmt.Errorf("cluster: open raft snapshots: %w", err)
	}
	transport := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  c.port.RaftLayer(),
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hlog,
	})
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(c.siteID)
	conf.Logger = hlog
	raftTimings(conf, c.cfg.Profile)
	c.raft, err = raft.NewRaft(conf, c.fsm, c.logs, c.logs, snaps, transport)
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	return nil
}

// bootstrapLoop bootstraps the cluster when this node belongs to the
// bootstrap set and no node of the set has Raft state. It waits until every
// name of the set is alive in gossip with its site id and peer address, so
// all of them bootstrap with the same configuration. A node with Raft state
// never bootstraps again; one outside the set waits for the leader to add
// it.
func (c *Cluster) bootstrapLoop() {
	has, err := raft.HasExistingState(c.logs, c.logs, c.snaps)
	if err != nil {
		c.log.Error("cannot read raft state; not bootstrapping", "err", err)
		return
	}
	if has || (c.cfg.BootstrapExpect == 0 && len(c.cfg.BootstrapPeers) == 0) {
		return
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	logged := time.Time{}
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		if c.raft.Leader() != "" || c.raft.LastIndex() > 0 {
			return // someone bootstrapped and this node has heard of it
		}
		members := c.members.Members()
		byName := make(map[string]membership.Member, len(members))
		var names []string
		for _, m := range members {
			if m.SiteID != "" && m.PeerAddr != "" {
				byName[m.Name] = m
				names = append(names, m.Name)
			}
		}
		set, member := c.cfg.bootstrapSet(names)
		if set != nil && !member {
			c.log.Info("not in the bootstrap set; waiting for the leader to add this node", "bootstrap_set", strings.Join(set, ","))
			return
		}
		var servers []raft.Server
		for _, name := range set {
			m, ok := byName[name]
			if !ok {
				servers = nil
				break
			}
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.SiteID), Address: raft.ServerAddress(m.PeerAddr)})
		}
		if len(servers) == 0 {
			if time.Since(logged) > 5*time.Second {
				c.log.Info("waiting for the bootstrap set", "seen", strings.Join(names, ","),
					"expect", c.cfg.BootstrapExpect, "peers", strings.Join(c.cfg.BootstrapPeers, ","))
				logged = time.Now()
			}
			continue
		}
		slices.SortFunc(servers, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
		err := c.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			c.log.Error("bootstrap failed", "err", err)
			continue
		}
		c.log.Info("bootstrapped the cluster", "voters", strings.Join(set, ","))
		return
	}
}

// errNoLeader is returned by propose while no leader is known.
var errNoLeader = errors.New("cluster: no raft leader known")

// propose commits a command, on this node when it leads and through the
// leader's Propose call otherwise, and returns its log index once this
// node has applied it.
func (c *Cluster) propose(ctx context.Context, typ clusterpb.CommandType, body proto.Message) (uint64, error) {
	data, err := fsm.EncodeCommand(typ, body)
	if err != nil {
		return 0, err
	}
	index, err := c.proposeData(ctx, data)
	if err != nil {
		return 0, err
	}
	if err := c.fsm.WaitApplied(ctx, index); err != nil {
		return 0, fmt.Errorf("wait for index %d: %w", index, err)
	}
	return index, nil
}

func (c *Cluster) proposeData(ctx context.Context, data []byte) (uint64, error) {
	if c.raft.State() == raft.Leader {
		return c.applyLocal(ctx, data)
	}
	addr, id := c.raft.LeaderWithID()
	if addr == "" {
		return 0, errNoLeader
	}
	name := c.nameOfSite(string(id))
	client, err := c.clients.peerClient(name, string(addr))
	if err != nil {
		return 0, err
	}
	resp, err := client.Propose(ctx, &clusterpb.ProposeRequest{Command: data})
	if err != nil {
		if status.Code(err) == codes.FailedPrecondition {
			return 0, errNoLeader
		}
		return 0, fmt.Errorf("propose through leader %s: %w", name, err)
	}
	if resp.ApplyError != "" {
		return resp.Index, fmt.Errorf("cluster: command rejected: %s", resp.ApplyError)
	}
	return resp.Index, nil
}

// applyLocal applies data on the leader and waits for the result.
func (c *Cluster) applyLocal(ctx context.Context, data []byte) (uint64, error) {
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	f := c.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, errNoLeader
		}
		return 0, fmt.Errorf("raft apply: %w", err)
	}
	if res, ok := f.Response().(fsm.Result); ok && res.Err != nil {
		return f.Index(), fmt.Errorf("cluster: command rejected: %w", res.Err)
	}
	return f.Index(), nil
}

// nameOfSite returns the node name of a site id, from the committed node
// records or gossip, or "" when neither knows it.
func (c *Cluster) nameOfSite(site string) string {
	for _, n := range c.fsm.Nodes() {
		if n.SiteID == site {
			return n.Name
		}
	}
	for _, m := range c.members.Members() {
		if m.SiteID == site {
			return m.Name
		}
	}
	return ""
}

// nameAtPeerAddr returns the node name at a Raft address, so the Raft
// dialer can require the peer certificate to name it.
func (c *Cluster) nameAtPeerAddr(addr raft.ServerAddress) string {
	for _, n := range c.fsm.Nodes() {
		if n.PeerAddr == string(addr) {
			return n.Name
		}
	}
	if c.members == nil {
		return ""
	}
	for _, m := range c.members.Members() {
		if m.PeerAddr == string(addr) {
			return m.Name
		}
	}
	return ""
}

// registerLoop commits this node's record under its new incarnation, then
// re-asserts its routes. It runs again whenever the committed record stops
// matching (the leader committed this node's death while it was cut off).
func (c *Cluster) registerLoop() {
	changes, cancel := c.fsm.Subscribe(fsm.ChangeNodes)
	defer cancel()
	backoff := 100 * time.Millisecond
	for {
		n, ok := c.fsm.Node(c.cfg.NodeName)
		current := ok && n.SiteID == c.siteID && n.Incarnation == c.incarnation.Load() &&
			(n.State == fsm.NodeJoined || n.State == fsm.NodeBack)
		if current {
			if !c.registered.Load() {
				// The replace is asked for first, so the syncer never sees
				// the node registered with no replace pending and reports
				// it ready before its routes are re-asserted.
				c.routes.replaceAll()
				c.registered.Store(true)
				c.log.Info("node record committed", "incarnation", c.incarnation.Load())
			}
			backoff = 100 * time.Millisecond
			select {
			case <-c.stop:
				return
			case <-changes:
			}
			continue
		}
		if c.leaving.Load() {
			select {
			case <-c.stop:
				return
			case <-changes:
			}
			continue
		}
		if c.registered.Swap(false) {
			c.log.Warn("this node's record changed in the cluster; registering again", "state", n.State.String())
			c.routesNotInForce()
		}
		ctx, done := context.WithTimeout(context.Background(), 5*time.Second)
		// A restarted node replays the committed log only as the leader's
		// commits reach it, so it reads its own record after catching up:
		// an earlier read would miss it and register as a new node.
		err := c.waitCaughtUp(ctx)
		if err == nil {
			n, ok = c.fsm.Node(c.cfg.NodeName)
			err = c.proposeRecord(ctx, n, ok)
		}
		done()
		if err != nil && !errors.Is(err, errNoLeader) {
			c.log.Warn("registering this node failed; retrying", "err", err, "backoff", backoff)
		}
		select {
		case <-c.stop:
			return
		case <-changes:
		case <-time.After(backoff):
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// proposeRecord proposes this node's record under its incarnation: back when
// the cluster has a record of this site id, joined otherwise.
func (c *Cluster) proposeRecord(ctx context.Context, n fsm.Node, ok bool) error {
	state := clusterpb.NodeState_NODE_STATE_JOINED
	if ok && n.SiteID == c.siteID {
		state = clusterpb.NodeState_NODE_STATE_BACK
	}
	inc := c.incarnation.Load()
	if ok && n.SiteID == c.siteID && n.Incarnation >= inc {
		// The cluster marked this run dead: a record needs a higher
		// incarnation to replace it, and the routes go with it.
		inc = n.Incarnation + 1
		c.incarnation.Store(inc)
	}
	_, err := c.propose(ctx, clusterpb.CommandType_COMMAND_TYPE_NODE_RECORD, &clusterpb.NodeRecord{
		Name: c.cfg.NodeName, SiteId: c.siteID, Incarnation: inc, State: state,
		PeerAddr: c.peerAdvertise(), MqttAddr: c.cfg.MQTTAddr,
	})
	return err
}

// waitCaughtUp waits until this node has applied the leader's commit index.
// It returns errNoLeader while no leader is known.
func (c *Cluster) waitCaughtUp(ctx context.Context) error {
	if c.raft.State() == raft.Leader {
		return c.raft.Barrier(5 * time.Second).Error()
	}
	addr, id := c.raft.LeaderWithID()
	if addr == "" {
		return errNoLeader
	}
	client, err := c.clients.peerClient(c.nameOfSite(string(id)), string(addr))
	if err != nil {
		return err
	}
	st, err := client.Status(ctx, &clusterpb.StatusRequest{})
	if err != nil {
		return fmt.Errorf("read the leader's commit index: %w", err)
	}
	// Raft's applied index, not the state machine's: the last entries may
	// be a leader's no-op or a configuration change, which never reach the
	// state machine, and waiting for those there would wait forever.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for c.raft.AppliedIndex() < st.CommitIndex {
		select {
		case <-ctx.Done():
			return fmt.Errorf("catch up to index %d (at %d): %w", st.CommitIndex, c.raft.AppliedIndex(), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// peerAdvertise returns the peer address this node advertises.
func (c *Cluster) peerAdvertise() string {
	return c.members.LocalNode().PeerAddr
}
