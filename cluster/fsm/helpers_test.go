package fsm

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// applier builds log entries with growing indexes and applies them.
type logFeeder struct {
	t     testing.TB
	f     *FSM
	index uint64
}

func newFeeder(t testing.TB) *logFeeder { return &logFeeder{t: t, f: New()} }

// apply encodes and applies one command and returns its result.
func (lf *logFeeder) apply(typ clusterpb.CommandType, body proto.Message) Result {
	lf.t.Helper()
	data, err := EncodeCommand(typ, body)
	if err != nil {
		lf.t.Fatalf("encode %s: %v", typ, err)
	}
	return lf.applyData(data)
}

func (lf *logFeeder) applyData(data []byte) Result {
	lf.t.Helper()
	lf.index++
	res, ok := lf.f.Apply(&raft.Log{Index: lf.index, Term: 1, Type: raft.LogCommand, Data: data}).(Result)
	if !ok {
		lf.t.Fatalf("Apply returned %T, expected Result", res)
	}
	return res
}

// mustApply applies a command and fails the test unless the status is want.
func (lf *logFeeder) mustApply(want Status, typ clusterpb.CommandType, body proto.Message) {
	lf.t.Helper()
	if res := lf.apply(typ, body); res.Status != want {
		lf.t.Fatalf("apply %s %v: status %s (err %v), expected %s", typ, body, res.Status, res.Err, want)
	}
}

func nodeRec(name, site string, inc uint64, state clusterpb.NodeState) *clusterpb.NodeRecord {
	return &clusterpb.NodeRecord{Name: name, SiteId: site, Incarnation: inc, State: state,
		PeerAddr: name + ":7000", MqttAddr: name + ":1883"}
}

func add(filter, group string, durable bool) *clusterpb.RouteOp {
	return &clusterpb.RouteOp{Kind: clusterpb.RouteOp_KIND_ADD, Filter: filter, ShareGroup: group, Durable: durable}
}

func remove(filter, group string) *clusterpb.RouteOp {
	return &clusterpb.RouteOp{Kind: clusterpb.RouteOp_KIND_REMOVE, Filter: filter, ShareGroup: group}
}

func batch(site string, inc uint64, ops ...*clusterpb.RouteOp) *clusterpb.RouteBatch {
	return &clusterpb.RouteBatch{NodeSiteId: site, Incarnation: inc, Ops: ops}
}

const (
	typeRoutes  = clusterpb.CommandType_COMMAND_TYPE_ROUTE_BATCH
	typeNode    = clusterpb.CommandType_COMMAND_TYPE_NODE_RECORD
	typeLeave   = clusterpb.CommandType_COMMAND_TYPE_NODE_LEAVE
	typePurge   = clusterpb.CommandType_COMMAND_TYPE_PURGE_ROUTES
	typeVersion = clusterpb.CommandType_COMMAND_TYPE_SET_CLUSTER_VERSION
	joined      = clusterpb.NodeState_NODE_STATE_JOINED
	dead        = clusterpb.NodeState_NODE_STATE_DEAD
	back        = clusterpb.NodeState_NODE_STATE_BACK
	left        = clusterpb.NodeState_NODE_STATE_LEFT
)

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

// snapshotBytes persists a snapshot of f and returns its bytes.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed {
		t.Fatal("Persist did not close the sink")
	}
	return sink.Bytes()
}

// restored returns a new FSM restored from data.
func restored(t testing.TB, data []byte) *FSM {
	t.Helper()
	f := New()
	if err := f.Restore(nopCloser{bytes.NewReader(data)}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return f
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func routesOf(site string, rs ...Route) []Route {
	for i := range rs {
		rs[i].SiteID = site
	}
	return rs
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
