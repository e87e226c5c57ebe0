package fsm

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// raftNode is one in-process Raft server with an FSM.
type raftNode struct {
	id    raft.ServerID
	fsm   *FSM
	raft  *raft.Raft
	trans *raft.InmemTransport
}

func newRaftNode(t *testing.T, id string) *raftNode {
	t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(id)
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.TrailingLogs = 4
	conf.SnapshotThreshold = 1 << 20 // snapshots only when the test requests one
	conf.Logger = hclog.NewNullLogger()

	_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	store := raft.NewInmemStore()
	n := &raftNode{id: conf.LocalID, fsm: New(), trans: trans}
	r, err := raft.NewRaft(conf, n.fsm, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatalf("start raft %s: %v", id, err)
	}
	n.raft = r
	t.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			t.Errorf("shut down raft %s: %v", id, err)
		}
	})
	return n
}

func connectAll(nodes []*raftNode) {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.trans.LocalAddr(), b.trans)
			}
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func leaderOf(nodes []*raftNode) *raftNode {
	for _, n := range nodes {
		if n.raft.State() == raft.Leader {
			return n
		}
	}
	return nil
}

func propose(t *testing.T, leader *raftNode, typ clusterpb.CommandType, body proto.Message) uint64 {
	t.Helper()
	data, err := EncodeCommand(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	f := leader.raft.Apply(data, 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatalf("apply %s: %v", typ, err)
	}
	if res := f.Response().(Result); res.Status != StatusApplied {
		t.Fatalf("apply %s: status %s (err %v), expected applied", typ, res.Status, res.Err)
	}
	return f.Index()
}

func TestFSM_RaftCluster(t *testing.T) {
	var nodes []*raftNode
	var servers []raft.Server
	for i := 1; i <= 3; i++ {
		n := newRaftNode(t, fmt.Sprintf("site-%d", i))
		nodes = append(nodes, n)
		servers = append(servers, raft.Server{ID: n.id, Address: n.trans.LocalAddr()})
	}
	connectAll(nodes)
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	waitFor(t, 10*time.Second, "a leader", func() bool { return leaderOf(nodes) != nil })
	leader := leaderOf(nodes)

	propose(t, leader, typeVersion, &clusterpb.SetClusterVersion{Version: 1})
	for i, n := range nodes {
		propose(t, leader, typeNode, nodeRec(fmt.Sprintf("node-%d", i+1), string(n.id), 1, joined))
	}
	for i := range 20 {
		site := string(nodes[i%3].id)
		propose(t, leader, typeRoutes, batch(site, 1, add(fmt.Sprintf("t/%d/#", i), "", i%2 == 0), add("shared/x", "g", false)))
	}
	propose(t, leader, clusterpb.CommandType_COMMAND_TYPE_PUT_USER, &clusterpb.AuthPut{Name: "alice", Record: []byte(`{"name":"alice"}`)})
	propose(t, leader, clusterpb.CommandType_COMMAND_TYPE_PUT_RULES, &clusterpb.PutRules{Rules: []byte(`[]`)})

	// Compact the leader's log so that a new server must be sent the
	// snapshot, then add one and let it catch up.
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	late := newRaftNode(t, "site-4")
	nodes = append(nodes, late)
	connectAll(nodes)
	if err := leader.raft.AddNonvoter(late.id, late.trans.LocalAddr(), 0, 5*time.Second).Error(); err != nil {
		t.Fatalf("add nonvoter: %v", err)
	}
	last := propose(t, leader, typeRoutes, batch(string(nodes[0].id), 1, remove("t/0/#", "")))

	for _, n := range nodes {
		waitFor(t, 10*time.Second, fmt.Sprintf("%s to apply index %d", n.id, last), func() bool {
			return n.fsm.AppliedIndex() >= last
		})
	}
	if got := late.raft.Stats()["last_snapshot_index"]; got == "0" {
		t.Errorf("late server's last_snapshot_index = %s, expected it to be restored from a snapshot", got)
	}

	want := snapshotBytes(t, leader.fsm)
	for _, n := range nodes {
		if got := snapshotBytes(t, n.fsm); !bytes.Equal(got, want) {
			t.Errorf("%s: state differs from the leader's", n.id)
		}
	}
	if got := len(leader.fsm.Routes()); got != 22 {
		t.Errorf("leader has %d routes, expected 22 (19 plain, 3 shared)", got)
	}
	if _, ok := late.fsm.AuthRecord(AuthUser, "alice"); !ok {
		t.Error("late server has no user alice")
	}

	// A snapshot kept by raft restores into a fresh FSM with the same state.
	snaps, err := raftSnapshotOf(leader)
	if err != nil {
		t.Fatal(err)
	}
	fresh := New()
	if err := fresh.Restore(io.NopCloser(bytes.NewReader(snaps))); err != nil {
		t.Fatalf("restore the leader's raft snapshot: %v", err)
	}
	if len(fresh.Nodes()) != 3 {
		t.Errorf("restored FSM has %d nodes, expected 3", len(fresh.Nodes()))
	}
}

// raftSnapshotOf returns the bytes of the newest snapshot that raft stored
// for n, opened through raft's user snapshot API.
func raftSnapshotOf(n *raftNode) ([]byte, error) {
	f := n.raft.Snapshot()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("take snapshot: %w", err)
	}
	_, rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
