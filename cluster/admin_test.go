package cluster

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/cluster/forward"
	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/cluster/membership"
	"github.com/starling-mqtt/starling/node"
	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage/raftstore"
)

// adminTestNode is a ready single-node cluster over a real broker, on
// loopback ports.
type adminTestNode struct {
	srv *node.Server
	cl  *Cluster
}

// startAdminTestNode starts a one-node cluster that bootstraps itself and
// stops it when the test ends.
func startAdminTestNode(t *testing.T) *adminTestNode {
	t.Helper()
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	srv, err := node.New(node.Config{
		NodeName:    "n1",
		DataDir:     dir,
		Listeners:   []node.ListenerConfig{{URL: "tcp://127.0.0.1:0"}},
		SysInterval: -1,
		Logger:      logger,
	})
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}

	cl, err := Start(context.Background(), Config{
		NodeName:       "n1",
		DataDir:        dir,
		GossipBind:     "127.0.0.1:0",
		PeerBind:       "127.0.0.1:0",
		BootstrapPeers: []string{"n1"},
		Profile:        membership.ProfileLocal,
		Logger:         logger,
	}, srv)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		t.Fatalf("cluster Start: %v", err)
	}
	srv.SetCluster(cl)

	t.Cleanup(func() {
		cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("node Shutdown: %v", err)
		}
	})
	if err := srv.Start(); err != nil {
		t.Fatalf("node Start: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.WaitReady(ctx); err != nil {
		t.Fatalf("single node not ready: %v (status %+v)", err, cl.Status())
	}
	return &adminTestNode{srv: srv, cl: cl}
}

// commit proposes a command and fails the test if it is not applied.
func (n *adminTestNode) commit(t *testing.T, typ clusterpb.CommandType, body proto.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.cl.propose(ctx, typ, body); err != nil {
		t.Fatalf("propose %s: %v", typ, err)
	}
}

// addFakePeer commits the record of a node that does not run, with one
// route, and waits until the forwarder has a sender for it.
func (n *adminTestNode) addFakePeer(t *testing.T, name, site string) {
	t.Helper()
	n.commit(t, clusterpb.CommandType_COMMAND_TYPE_NODE_RECORD, &clusterpb.NodeRecord{
		Name: name, SiteId: site, Incarnation: 1, State: clusterpb.NodeState_NODE_STATE_JOINED,
		// Port 1 on loopback has no listener on a normal host, so every
		// dial fails.
		PeerAddr: "127.0.0.1:1",
	})
	n.commit(t, clusterpb.CommandType_COMMAND_TYPE_ROUTE_BATCH, &clusterpb.RouteBatch{
		NodeSiteId: site, Incarnation: 1,
		Ops: []*clusterpb.RouteOp{{Kind: clusterpb.RouteOp_KIND_ADD, Filter: "fake/" + name, Durable: true}},
	})
	pollUntil(t, 5*time.Second, "forwarder knows "+name, func() error {
		if peerStats(n.cl, site) == nil {
			return errors.New("no sender yet")
		}
		return nil
	})
}

// stageOutbox writes one QoS 1 message into the outbox toward site.
func (n *adminTestNode) stageOutbox(t *testing.T, site string) {
	t.Helper()
	b := n.srv.Store().NewBatch()
	defer b.Close()
	tk, err := n.cl.fwd.Stage(site, &clusterpb.ForwardMessage{Topic: "fake/t", Payload: []byte("x"), Qos: 1}, b)
	if err != nil {
		t.Fatalf("Stage: %v", err)
	}
	if err := b.Commit(); err != nil {
		n.cl.fwd.Abort(tk)
		t.Fatalf("Commit: %v", err)
	}
	n.cl.fwd.Release(tk)
	if got := n.srv.Store().OutboxStats(site).Depth; got != 1 {
		t.Fatalf("outbox depth toward %s = %d, want 1", site, got)
	}
}

// peerStats returns the forwarder's figures for site, or nil.
func peerStats(c *Cluster, site string) *forward.PeerStats {
	for _, ps := range c.fwd.Stats() {
		if ps.SiteID == site {
			return &ps
		}
	}
	return nil
}

// configuredSuffrage returns the suffrage of site in the Raft
// configuration, or "" when it is not in it.
func configuredSuffrage(t *testing.T, c *Cluster, site string) string {
	t.Helper()
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatalf("GetConfiguration: %v", err)
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == site {
			return s.Suffrage.String()
		}
	}
	return ""
}

// pollUntil polls cond every 10 ms until it returns nil, and fails the test
// with cond's last error when timeout passes first.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRemoveNode_DeadNonvoter(t *testing.T) {
	n := startAdminTestNode(t)
	c := n.cl
	n.addFakePeer(t, "ghost", "ghost-site")
	if err := c.raft.AddNonvoter("ghost-site", "127.0.0.1:1", 0, 5*time.Second).Error(); err != nil {
		t.Fatalf("AddNonvoter: %v", err)
	}
	n.stageOutbox(t, "ghost-site")

	ctx := context.Background()
	removed, err := c.RemoveNode(ctx, "ghost", false)
	if err != nil {
		t.Fatalf("RemoveNode(ghost): %v", err)
	}
	if removed.SiteID != "ghost-site" || removed.Suffrage != "Nonvoter" {
		t.Errorf("RemoveNode result %+v, want site ghost-site and suffrage Nonvoter", removed)
	}
	if removed.OutboxDropped != 1 {
		t.Errorf("OutboxDropped = %d, want 1", removed.OutboxDropped)
	}
	if _, ok := c.fsm.Node("ghost"); ok {
		t.Error("ghost still has a node record")
	}
	if routes := c.fsm.RoutesFor("ghost-site"); len(routes) != 0 {
		t.Errorf("ghost's routes not purged: %+v", routes)
	}
	if s := configuredSuffrage(t, c, "ghost-site"); s != "" {
		t.Errorf("ghost-site still in the raft configuration as %s", s)
	}
	if got := n.srv.Store().OutboxStats("ghost-site").Depth; got != 0 {
		t.Errorf("outbox depth toward ghost after removal = %d, want 0", got)
	}
	if ps := peerStats(c, "ghost-site"); ps != nil {
		t.Errorf("forwarder still lists ghost: %+v", *ps)
	}

	_, err = c.RemoveNode(ctx, "ghost", false)
	if !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("second RemoveNode(ghost) = %v, want ErrNodeNotFound", err)
	}
}

func TestRemoveNode_Rejects(t *testing.T) {
	n := startAdminTestNode(t)
	c := n.cl
	ctx := context.Background()

	if _, err := c.RemoveNode(ctx, "n1", true); !errors.Is(err, ErrRemoveSelf) {
		t.Errorf("RemoveNode(self) = %v, want ErrRemoveSelf", err)
	}
	if _, err := c.RemoveNode(ctx, "nobody", false); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("RemoveNode(nobody) = %v, want ErrNodeNotFound", err)
	}

	// A gossip member without a peer address, so the leader never adds it
	// to the Raft configuration.
	mcfg := membership.DefaultConfig()
	mcfg.NodeName = "alive"
	mcfg.SiteID = "alive-site"
	mcfg.BindAddr = "127.0.0.1:0"
	mcfg.Join = []string{c.members.LocalNode().Addr}
	mcfg.Profile = membership.ProfileLocal
	mcfg.Logger = slog.New(slog.DiscardHandler)
	other, err := membership.Start(ctx, mcfg)
	if err != nil {
		t.Fatalf("membership.Start: %v", err)
	}
	t.Cleanup(func() { _ = other.Close() })
	pollUntil(t, 10*time.Second, "alive in gossip", func() error {
		for _, m := range c.members.Members() {
			if m.Name == "alive" {
				return nil
			}
		}
		return errors.New("not listed yet")
	})
	n.commit(t, clusterpb.CommandType_COMMAND_TYPE_NODE_RECORD, &clusterpb.NodeRecord{
		Name: "alive", SiteId: "alive-site", Incarnation: 1, State: clusterpb.NodeState_NODE_STATE_JOINED,
	})

	if _, err := c.RemoveNode(ctx, "alive", false); !errors.Is(err, ErrNodeAlive) {
		t.Errorf("RemoveNode(alive) = %v, want ErrNodeAlive", err)
	}
	if _, ok := c.fsm.Node("alive"); !ok {
		t.Fatal("rejected removal dropped the record")
	}
	removed, err := c.RemoveNode(ctx, "alive", true)
	if err != nil {
		t.Fatalf("forced RemoveNode(alive): %v", err)
	}
	if removed.Suffrage != "" {
		t.Errorf("suffrage of a node outside the raft configuration = %q, want empty", removed.Suffrage)
	}
	if _, ok := c.fsm.Node("alive"); ok {
		t.Error("forced removal left the record")
	}
}

func TestNotLeaderError_Is(t *testing.T) {
	for _, e := range []*NotLeaderError{{Leader: "n2"}, {}} {
		if !errors.Is(e, ErrNotLeader) {
			t.Errorf("errors.Is(%v, ErrNotLeader) = false", e)
		}
	}
	if msg := (&NotLeaderError{Leader: "n2"}).Error(); !strings.Contains(msg, `"n2"`) {
		t.Errorf("message %q does not name the leader", msg)
	}
}

func TestOutboxReaper_DropsRemovedSite(t *testing.T) {
	n := startAdminTestNode(t)
	c := n.cl
	n.addFakePeer(t, "gone", "gone-site")
	n.stageOutbox(t, "gone-site")

	r := newOutboxReaper(c)
	r.reap(c.fsm.Nodes())
	if got := n.srv.Store().OutboxStats("gone-site").Depth; got != 1 {
		t.Fatalf("outbox depth after reap with the record present = %d, want 1", got)
	}

	n.commit(t, clusterpb.CommandType_COMMAND_TYPE_NODE_LEAVE, &clusterpb.NodeLeave{Name: "gone", RemoveRecord: true})
	r.reap(c.fsm.Nodes())
	if got := n.srv.Store().OutboxStats("gone-site").Depth; got != 0 {
		t.Errorf("outbox depth after the record is gone = %d, want 0", got)
	}
	if ps := peerStats(c, "gone-site"); ps != nil {
		t.Errorf("forwarder still lists the removed site: %+v", *ps)
	}
	if _, ok := r.known["gone-site"]; ok {
		t.Error("reaper still remembers the removed site")
	}
	if _, ok := r.known[c.siteID]; ok {
		t.Error("reaper tracks this node's own site id")
	}
}

func TestCollector_SingleNode(t *testing.T) {
	n := startAdminTestNode(t)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(n.cl.Collector()); err != nil {
		t.Fatalf("Register: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	byName := make(map[string]*dto.MetricFamily)
	for _, f := range families {
		byName[f.GetName()] = f
	}
	value := func(name string, labels ...string) (float64, bool) {
		f := byName[name]
		if f == nil {
			return 0, false
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
					return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}) {
					continue metrics
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
		return 0, false
	}

	checks := []struct {
		name   string
		labels []string
		want   func(float64) bool
		about  string
	}{
		{"starling_cluster_is_leader", nil, eq(1), "1"},
		{"starling_cluster_ready", nil, eq(1), "1"},
		{"starling_cluster_raft_state", []string{"state", "leader"}, eq(1), "1"},
		{"starling_cluster_raft_state", []string{"state", "follower"}, eq(0), "0"},
		{"starling_cluster_members", []string{"state", "joined"}, eq(1), "1"},
		{"starling_cluster_members", []string{"state", "dead"}, eq(0), "0"},
		{"starling_cluster_raft_servers", []string{"suffrage", "voter"}, eq(1), "1"},
		{"starling_cluster_gossip_members", nil, eq(1), "1"},
		{"starling_cluster_raft_last_contact_seconds", nil, eq(0), "0 on the leader"},
		{"starling_cluster_raft_applied_index", nil, atLeast(2), ">= 2"},
		{"starling_cluster_raft_commit_index", nil, atLeast(2), ">= 2"},
		{"starling_cluster_raft_term", nil, atLeast(1), ">= 1"},
		{"starling_cluster_membership_epoch", nil, atLeast(1), ">= 1"},
		{"starling_cluster_route_batches_total", nil, atLeast(1), ">= 1, the replace batch at registration"},
		{"starling_cluster_route_batch_seconds", nil, atLeast(1), ">= 1 observation"},
		{"starling_cluster_route_ops_total", nil, atLeast(0), "present"},
		{"starling_cluster_route_wait_misses_total", nil, eq(0), "0"},
		{"starling_cluster_routes_local", nil, eq(0), "0"},
		{"starling_cluster_routes_remote", nil, eq(0), "0"},
	}
	for _, ck := range checks {
		got, ok := value(ck.name, ck.labels...)
		if !ok {
			t.Errorf("%s%v missing", ck.name, ck.labels)
			continue
		}
		if !ck.want(got) {
			t.Errorf("%s%v = %v, want %s", ck.name, ck.labels, got, ck.about)
		}
	}

	n.addFakePeer(t, "ghost", "ghost-site")
	n.stageOutbox(t, "ghost-site")
	families, err = reg.Gather()
	if err != nil {
		t.Fatalf("second Gather: %v", err)
	}
	clear(byName)
	for _, f := range families {
		byName[f.GetName()] = f
	}
	if got, ok := value("starling_cluster_outbox_messages", "peer", "ghost"); !ok || got != 1 {
		t.Errorf("outbox_messages{peer=ghost} = %v (present %v), want 1", got, ok)
	}
	if got, ok := value("starling_cluster_forward_connected", "peer", "ghost"); !ok || got != 0 {
		t.Errorf("forward_connected{peer=ghost} = %v (present %v), want 0", got, ok)
	}
	if got, ok := value("starling_cluster_routes_remote"); !ok || got != 1 {
		t.Errorf("routes_remote = %v (present %v), want 1", got, ok)
	}
	for _, name := range []string{"starling_cluster_forward_lag", "starling_cluster_outbox_bytes",
		"starling_cluster_forward_dropped_qos0_total", "starling_cluster_forward_resent_total"} {
		if _, ok := value(name, "peer", "ghost"); !ok {
			t.Errorf("%s{peer=ghost} missing", name)
		}
	}
}

func eq(want float64) func(float64) bool     { return func(v float64) bool { return v == want } }
func atLeast(min float64) func(float64) bool { return func(v float64) bool { return v >= min } }

// bootstrapStoredRaft writes the Raft state of a stopped one-server
// cluster into dataDir/cluster, as a node leaves it: a bootstrap
// configuration at index 1 and the node's own record at index 2. It
// returns the node's site id.
func bootstrapStoredRaft(t *testing.T, dataDir string) string {
	t.Helper()
	dir := filepath.Join(dataDir, "cluster")
	site, err := membership.LoadOrCreateSiteID(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := raftstore.Open(raftstore.Config{Dir: filepath.Join(dir, "raft"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(site)
	conf.Logger = hclog.NewNullLogger()
	boot := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(site), Address: "127.0.0.1:7001"}}}
	if err := raft.BootstrapCluster(conf, logs, logs, snaps, trans, boot); err != nil {
		t.Fatalf("BootstrapCluster: %v", err)
	}
	data, err := fsm.EncodeCommand(clusterpb.CommandType_COMMAND_TYPE_NODE_RECORD, &clusterpb.NodeRecord{
		Name: "n1", SiteId: site, Incarnation: 1, State: clusterpb.NodeState_NODE_STATE_JOINED, PeerAddr: "127.0.0.1:7001",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := logs.StoreLog(&raft.Log{Index: 2, Term: 1, Type: raft.LogCommand, Data: data}); err != nil {
		t.Fatalf("StoreLog: %v", err)
	}
	return site
}

func TestRecover_ReplacesConfiguration(t *testing.T) {
	dataDir := t.TempDir()
	site := bootstrapStoredRaft(t, dataDir)
	logger := slog.New(slog.DiscardHandler)

	before, err := StoredConfiguration(dataDir, logger)
	if err != nil {
		t.Fatalf("StoredConfiguration before: %v", err)
	}
	if len(before.Servers) != 1 || string(before.Servers[0].ID) != site {
		t.Fatalf("stored configuration before recovery = %+v, want only %s", before.Servers, site)
	}

	servers := []RecoverServer{
		{Name: "n1", SiteID: site, Address: "127.0.0.1:7101"},
		{Name: "n4", SiteID: "site-4", Address: "127.0.0.1:7104"},
	}
	if err := Recover(dataDir, servers, logger); err != nil {
		t.Fatalf("Recover: %v", err)
	}

	st, err := openStoredRaft(dataDir, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	f := fsm.New()
	after, err := raft.GetConfiguration(st.raftConfig(), f, st.logs, st.logs, st.snaps, st.trans)
	if err != nil {
		t.Fatalf("GetConfiguration after: %v", err)
	}
	want := []raft.Server{
		{Suffrage: raft.Voter, ID: raft.ServerID(site), Address: "127.0.0.1:7101"},
		{Suffrage: raft.Voter, ID: "site-4", Address: "127.0.0.1:7104"},
	}
	if !slices.Equal(after.Servers, want) {
		t.Errorf("configuration after recovery = %+v, want %+v", after.Servers, want)
	}
	if n, ok := f.Node("n1"); !ok || n.SiteID != site {
		t.Errorf("recovered state lost the node record of index 2: %+v, %v", n, ok)
	}
}

func TestRecover_Rejects(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	cases := []struct {
		name    string
		state   bool // bootstrap Raft state first
		servers func(site string) []RecoverServer
		want    string
	}{
		{"no-state", false, func(string) []RecoverServer {
			return []RecoverServer{{Name: "n1", SiteID: "s1", Address: "127.0.0.1:7001"}}
		}, "no cluster state"},
		{"empty-list", true, func(string) []RecoverServer { return nil }, "at least one server"},
		{"self-missing", true, func(string) []RecoverServer {
			return []RecoverServer{{Name: "n2", SiteID: "other", Address: "127.0.0.1:7002"}}
		}, "is not among the servers"},
		{"duplicate-site", true, func(site string) []RecoverServer {
			return []RecoverServer{{Name: "n1", SiteID: site, Address: "127.0.0.1:7001"}, {Name: "n2", SiteID: site, Address: "127.0.0.1:7002"}}
		}, "listed twice"},
		{"duplicate-name", true, func(site string) []RecoverServer {
			return []RecoverServer{{Name: "n1", SiteID: site, Address: "127.0.0.1:7001"}, {Name: "n1", SiteID: "s2", Address: "127.0.0.1:7002"}}
		}, "listed twice"},
		{"missing-address", true, func(site string) []RecoverServer {
			return []RecoverServer{{Name: "n1", SiteID: site}}
		}, "incomplete"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			site := ""
			if tc.state {
				site = bootstrapStoredRaft(t, dataDir)
			}
			err := Recover(dataDir, tc.servers(site), logger)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Recover = %v, want an error containing %q", err, tc.want)
			}
			if !tc.state {
				return
			}
			conf, err := StoredConfiguration(dataDir, logger)
			if err != nil {
				t.Fatalf("StoredConfiguration: %v", err)
			}
			if len(conf.Servers) != 1 || string(conf.Servers[0].ID) != site {
				t.Errorf("rejected recovery changed the configuration to %+v", conf.Servers)
			}
		})
	}
}

func TestRecover_NodeRunning(t *testing.T) {
	dataDir := t.TempDir()
	site := bootstrapStoredRaft(t, dataDir)
	lockedStore, err := raftstore.Open(raftstore.Config{Dir: filepath.Join(dataDir, "cluster", "raft"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer lockedStore.Close()
	err = Recover(dataDir, []RecoverServer{{Name: "n1", SiteID: site, Address: "127.0.0.1:7001"}}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("Recover while the raft store is open = %v, want an error saying the node may be running", err)
	}
}
