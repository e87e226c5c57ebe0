package peer

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// newTransport builds a raft.NetworkTransport on p and closes it, with its
// pooled connections, at cleanup.
func newTransport(t *testing.T, p *Port) *raft.NetworkTransport {
	t.Helper()
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  p.RaftLayer(),
		MaxPool: 2,
		Timeout: 5 * time.Second,
		Logger:  hclog.NewNullLogger(),
	})
	t.Cleanup(func() {
		trans.CloseStreams()
		_ = trans.Close()
	})
	return trans
}

func TestRaftLayer_AppendEntries(t *testing.T) {
	ca := newTestCA(t, "peer CA")
	b := startNode(t, Config{NodeName: "n2", TLS: ca.nodeFiles(t, "n2")})
	bAddr := raftAddress(b.port.Addr())
	a := startNode(t, Config{NodeName: "n1", TLS: ca.nodeFiles(t, "n1"),
		RaftPeerName: func(addr raft.ServerAddress) string {
			if addr == bAddr {
				return "n2"
			}
			return ""
		}})
	transA := newTransport(t, a.port)
	transB := newTransport(t, b.port)

	// b's Raft loop, reduced to responding to one AppendEntries.
	served := make(chan *raft.AppendEntriesRequest, 1)
	go func() {
		select {
		case rpc := <-transB.Consumer():
			req, _ := rpc.Command.(*raft.AppendEntriesRequest)
			served <- req
			rpc.Respond(&raft.AppendEntriesResponse{Term: 7, LastLog: 42, Success: true}, nil)
		case <-time.After(10 * time.Second):
			served <- nil
		}
	}()

	req := raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{
			ProtocolVersion: raft.ProtocolVersionMax,
			ID:              []byte("site-a"),
			Addr:            transA.EncodePeer("site-a", transA.LocalAddr()),
		},
		Term:              7,
		PrevLogEntry:      41,
		PrevLogTerm:       7,
		Entries:           []*raft.Log{{Index: 42, Term: 7, Type: raft.LogCommand, Data: []byte("route add")}},
		LeaderCommitIndex: 41,
	}
	var resp raft.AppendEntriesResponse
	if err := transA.AppendEntries("site-b", bAddr, &req, &resp); err != nil {
		t.Fatalf("AppendEntries: %v", err)
	}
	if !resp.Success || resp.LastLog != 42 || resp.Term != 7 {
		t.Errorf("response = %+v, want success at term 7, last log 42", resp)
	}

	got := <-served
	if got == nil {
		t.Fatal("b received no AppendEntries")
	}
	if len(got.Entries) != 1 || string(got.Entries[0].Data) != "route add" {
		t.Errorf("b received entries %+v, want one entry \"route add\"", got.Entries)
	}
	if string(got.Addr) != a.port.Addr().String() {
		t.Errorf("leader address in the header = %q, want %q", got.Addr, a.port.Addr())
	}
}

// countingFSM counts applied log entries.
type countingFSM struct{ applied atomic.Int64 }

func (f *countingFSM) Apply(*raft.Log) any {
	f.applied.Add(1)
	return nil
}

func (f *countingFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnapshot{}, nil }

func (f *countingFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

type nopSnapshot struct{}

func (nopSnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (nopSnapshot) Release()                             {}

func TestRaftLayer_TwoNodesElectLeader(t *testing.T) {
	ca := newTestCA(t, "peer CA")
	nodes := []*testNode{
		startNode(t, Config{NodeName: "n1", TLS: ca.nodeFiles(t, "n1")}),
		startNode(t, Config{NodeName: "n2", TLS: ca.nodeFiles(t, "n2")}),
	}

	var servers []raft.Server
	for i, n := range nodes {
		servers = append(servers, raft.Server{
			ID:      raft.ServerID(n.port.cfg.NodeName),
			Address: raftAddress(nodes[i].port.Addr()),
		})
	}

	rafts := make([]*raft.Raft, len(nodes))
	fsms := make([]*countingFSM, len(nodes))
	for i, n := range nodes {
		conf := raft.DefaultConfig()
		conf.LocalID = servers[i].ID
		conf.HeartbeatTimeout = 300 * time.Millisecond
		conf.ElectionTimeout = 300 * time.Millisecond
		conf.LeaderLeaseTimeout = 150 * time.Millisecond
		conf.Logger = hclog.NewNullLogger()

		store := raft.NewInmemStore()
		snaps := raft.NewInmemSnapshotStore()
		trans := newTransport(t, n.port)
		if err := raft.BootstrapCluster(conf, store, store, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
			t.Fatalf("bootstrap %s: %v", conf.LocalID, err)
		}
		fsms[i] = &countingFSM{}
		r, err := raft.NewRaft(conf, fsms[i], store, store, snaps, trans)
		if err != nil {
			t.Fatalf("NewRaft %s: %v", conf.LocalID, err)
		}
		rafts[i] = r
		t.Cleanup(func() {
			if err := r.Shutdown().Error(); err != nil {
				t.Errorf("shutdown %s: %v", conf.LocalID, err)
			}
		})
	}

	var leader *raft.Raft
	waitFor(t, 10*time.Second, "a leader", func() bool {
		for _, r := range rafts {
			if r.State() == raft.Leader {
				leader = r
				return true
			}
		}
		return false
	})
	if err := leader.Apply([]byte("route add"), 5*time.Second).Error(); err != nil {
		t.Fatalf("Apply on the leader: %v", err)
	}
	waitFor(t, 5*time.Second, "both nodes to apply the entry", func() bool {
		return fsms[0].applied.Load() == 1 && fsms[1].applied.Load() == 1
	})
}
