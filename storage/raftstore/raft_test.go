package raftstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// hashFSM is a trivial state machine over numbered commands: it applies
// command n only when n equals the number of commands applied so far, and
// keeps an FNV hash over them in order. Skipping other numbers makes a
// command resubmitted after a leader change harmless, and two replicas
// agree only if they applied the same commands in the same order.
type hashFSM struct {
	mu    sync.Mutex
	count uint64
	hash  uint64
}

func (f *hashFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(l.Data) != 8 || binary.BigEndian.Uint64(l.Data) != f.count {
		return nil
	}
	h := fnv.New64a()
	_ = binary.Write(h, binary.BigEndian, f.hash)
	h.Write(l.Data)
	f.hash = h.Sum64()
	f.count++
	return nil
}

func (f *hashFSM) state() (count, hash uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count, f.hash
}

func (f *hashFSM) Snapshot() (raft.FSMSnapshot, error) {
	count, hash := f.state()
	return hashSnapshot{count: count, hash: hash}, nil
}

func (f *hashFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var buf [16]byte
	if _, err := io.ReadFull(rc, buf[:]); err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count = binary.BigEndian.Uint64(buf[:8])
	f.hash = binary.BigEndian.Uint64(buf[8:])
	return nil
}

type hashSnapshot struct{ count, hash uint64 }

func (s hashSnapshot) Persist(sink raft.SnapshotSink) error {
	var buf [16]byte
	binary.BigEndian.PutUint64(buf[:8], s.count)
	binary.BigEndian.PutUint64(buf[8:], s.hash)
	if _, err := sink.Write(buf[:]); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (hashSnapshot) Release() {}

// syncBuffer collects raft's log output from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// raftNode is one member of the test cluster. Its store and snapshots live
// in dir and survive a restart, but its FSM and transport do not.
type raftNode struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	dir   string
	store *Store
	fsm   *hashFSM
	trans *raft.InmemTransport
	raft  *raft.Raft
}

// raftCluster is an in-process raft group whose members use Store for their
// log and stable state, connected by raft's in-memory transport.
type raftCluster struct {
	t      *testing.T
	nodes  []*raftNode
	logOut *syncBuffer
}

func newRaftCluster(t *testing.T, n int) *raftCluster {
	t.Helper()
	c := &raftCluster{t: t, logOut: &syncBuffer{}}
	var servers []raft.Server
	for i := range n {
		node := &raftNode{
			id:   raft.ServerID(fmt.Sprintf("node%d", i)),
			addr: raft.ServerAddress(fmt.Sprintf("inmem-node%d", i)),
			dir:  t.TempDir(),
		}
		c.nodes = append(c.nodes, node)
		servers = append(servers, raft.Server{ID: node.id, Address: node.addr, Suffrage: raft.Voter})
	}
	// Cleanups run in reverse order, so registering this one after the
	// temporary directories stops raft before they are removed.
	t.Cleanup(func() {
		c.shutdownAll()
		if t.Failed() {
			t.Logf("raft log:\n%s", c.logOut.String())
		}
	})
	for _, node := range c.nodes {
		c.start(node)
	}
	if err := c.nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return c
}

// start opens node's store and snapshots from its directory and starts raft
// with a fresh FSM and transport, connected to every other running node.
func (c *raftCluster) start(node *raftNode) {
	t := c.t
	t.Helper()
	store, err := Open(testConfig(filepath.Join(node.dir, "raft")))
	if err != nil {
		t.Fatalf("open store of %s: %v", node.id, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(node.dir, "snapshots"), 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("snapshot store of %s: %v", node.id, err)
	}
	_, trans := raft.NewInmemTransport(node.addr)
	for _, other := range c.nodes {
		if other == node || other.raft == nil {
			continue
		}
		other.trans.Disconnect(node.addr)
		other.trans.Connect(node.addr, trans)
		trans.Connect(other.addr, other.trans)
	}

	conf := raft.DefaultConfig()
	conf.LocalID = node.id
	// Timeouts several times raft's own test values keep leadership stable
	// under -race on a small machine, where a lost leader would fail apply.
	conf.HeartbeatTimeout = 200 * time.Millisecond
	conf.ElectionTimeout = 200 * time.Millisecond
	conf.LeaderLeaseTimeout = 200 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	// Snapshot and compact often, so that the test runs DeleteRange on
	// every node and a restarted follower may need InstallSnapshot.
	conf.SnapshotInterval = 100 * time.Millisecond
	conf.SnapshotThreshold = 64
	conf.TrailingLogs = 32
	conf.Logger = hclog.New(&hclog.LoggerOptions{Name: string(node.id), Level: hclog.Warn, Output: c.logOut})

	node.store, node.fsm, node.trans = store, &hashFSM{}, trans
	node.raft, err = raft.NewRaft(conf, node.fsm, store, store, snaps, trans)
	if err != nil {
		t.Fatalf("start raft on %s: %v", node.id, err)
	}
}

// stop shuts node's raft down and closes its store.
func (c *raftCluster) stop(node *raftNode) {
	c.t.Helper()
	if node.raft == nil {
		return
	}
	if err := node.raft.Shutdown().Error(); err != nil {
		c.t.Errorf("shut down %s: %v", node.id, err)
	}
	node.raft = nil
	if err := node.store.Close(); err != nil {
		c.t.Errorf("close store of %s: %v", node.id, err)
	}
}

func (c *raftCluster) shutdownAll() {
	for _, node := range c.nodes {
		c.stop(node)
	}
}

// leader waits up to 10 s for a running node to become leader.
func (c *raftCluster) leader() *raftNode {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, node := range c.nodes {
			if node.raft != nil && node.raft.State() == raft.Leader {
				return node
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no leader elected within 10s")
	return nil
}

// apply applies commands first to first+n-1 through the leader and waits
// until each is committed and applied there. After a leader change it
// submits them again, up to 5 times, which hashFSM makes harmless.
func (c *raftCluster) apply(first, n uint64) {
	c.t.Helper()
	const attempts = 5
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		leader := c.leader()
		futures := make([]raft.ApplyFuture, 0, n)
		for i := first; i < first+n; i++ {
			futures = append(futures, leader.raft.Apply(binary.BigEndian.AppendUint64(nil, i), 5*time.Second))
		}
		err = nil
		for _, f := range futures {
			if ferr := f.Error(); ferr != nil && err == nil {
				err = ferr
			}
		}
		if err == nil {
			return
		}
		c.t.Logf("apply commands %d to %d on %s, attempt %d of %d: %v", first, first+n-1, leader.id, attempt, attempts, err)
	}
	c.t.Fatalf("apply commands %d to %d: %v", first, first+n-1, err)
}

// waitConverged waits up to 10 s until every running node applied want
// commands and all agree on the hash.
func (c *raftCluster) waitConverged(want uint64) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var states []string
	for time.Now().Before(deadline) {
		states = states[:0]
		done := true
		var hash uint64
		for i, node := range c.nodes {
			if node.raft == nil {
				continue
			}
			count, h := node.fsm.state()
			states = append(states, fmt.Sprintf("%s: count %d hash %x", node.id, count, h))
			if i == 0 {
				hash = h
			}
			if count != want || h != hash {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("nodes did not converge on %d commands within 10s: %v", want, states)
}

// TestRaft_ClusterRestartCatchesUp runs a three-node raft group on Store,
// restarts one follower from its directory while the others go on, and
// checks that it comes back with its term and log and catches up.
func TestRaft_ClusterRestartCatchesUp(t *testing.T) {
	c := newRaftCluster(t, 3)
	c.apply(0, 300)
	c.waitConverged(300)

	leader := c.leader()
	var follower *raftNode
	for _, node := range c.nodes {
		if node != leader {
			follower = node
			break
		}
	}
	lastBefore, err := follower.store.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex of %s: %v", follower.id, err)
	}
	// Snapshots run on a timer, so wait for one to have compacted the
	// follower's log through DeleteRange.
	deadline := time.Now().Add(5 * time.Second)
	for first, _ := follower.store.FirstIndex(); first <= 1; first, _ = follower.store.FirstIndex() {
		if time.Now().After(deadline) {
			t.Fatalf("FirstIndex of %s is still %d after 5s, want compaction to have removed the head of the log", follower.id, first)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.stop(follower)

	// Read the stopped node's store directly: the log and term must be on
	// disk.
	s := openStore(t, testConfig(filepath.Join(follower.dir, "raft")))
	if last, _ := s.LastIndex(); last < lastBefore {
		t.Errorf("LastIndex of %s after reopen = %d, want at least %d", follower.id, last, lastBefore)
	}
	if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term == 0 {
		t.Errorf("CurrentTerm of %s after reopen = %d, %v, want a positive term", follower.id, term, err)
	}
	var l raft.Log
	if err := s.GetLog(lastBefore, &l); err != nil {
		t.Errorf("GetLog(%d) of %s after reopen: %v", lastBefore, follower.id, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	c.apply(300, 100)
	c.start(follower)
	c.apply(400, 50)
	c.waitConverged(450)

	if last, _ := follower.store.LastIndex(); last <= lastBefore {
		t.Errorf("LastIndex of %s after catching up = %d, want above %d", follower.id, last, lastBefore)
	}
}
