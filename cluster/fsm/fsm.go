package fsm

import (
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// MaxClusterVersion is the highest cluster version this build can apply.
// A SetClusterVersion above it stops the node (Apply panics).
const MaxClusterVersion = 1

// Status is the outcome of Apply for one command.
type Status uint8

const (
	// StatusApplied means the command was applied. It may still have changed
	// nothing, for example a delete of a missing record.
	StatusApplied Status = iota + 1
	// StatusStale means the command was ignored because newer state
	// supersedes it: a route batch of an old incarnation or of a retired site
	// id, a node record older than the committed one, a cluster version not
	// above the committed one.
	StatusStale
	// StatusSkipped means the command was ignored because this build cannot
	// apply it and its skippable flag allows that.
	StatusSkipped
	// StatusRejected means the command is invalid (Result.Err wraps
	// ErrInvalidCommand) and changed nothing.
	StatusRejected
)

func (s Status) String() string {
	switch s {
	case StatusApplied:
		return "applied"
	case StatusStale:
		return "stale"
	case StatusSkipped:
		return "skipped"
	case StatusRejected:
		return "rejected"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Result is the response of Apply for one log entry, as raft hands it to
// the proposer in ApplyFuture.Response.
type Result struct {
	Index  uint64 // index of the log entry
	Status Status
	Err    error // non-nil only with StatusRejected
}

// FSM is the replicated state of the cluster: routes, node records, the
// membership epoch, the cluster version and auth records. It implements
// raft.BatchingFSM. Raft calls Apply, ApplyBatch, Snapshot and Restore from
// its FSM goroutine, one at a time. The read methods may be called from any
// goroutine at any time. The zero value is not usable; call New.
type FSM struct {
	mu struct {
		sync.RWMutex
		st state
		// gen counts the snapshots taken. A route set whose gen is below it
		// may be shared with a snapshot still being persisted, so Apply
		// copies it before changing it.
		gen uint64
		// appliedCh is closed and replaced whenever the applied index moves,
		// which wakes WaitApplied.
		appliedCh chan struct{}
	}
	subs subscribers
}

var _ raft.BatchingFSM = (*FSM)(nil)

// New returns an empty FSM: no routes, nodes or auth records, epoch 0 and
// cluster version 0.
func New() *FSM {
	f := &FSM{}
	f.mu.st = newState()
	f.mu.appliedCh = make(chan struct{})
	return f
}

// Apply applies one committed log entry. It returns a Result. See the
// package documentation for when it panics.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed log entries in order and returns one Result
// per entry. Entries that are not commands (raft sends configuration
// changes too) only advance the applied index.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out, changed := f.applyBatch(logs)
	f.subs.notify(changed)
	return out
}

// applyBatch applies logs under f.mu. The deferred unlock matters when a
// command panics: the node is meant to stop, but a caller that recovers
// (a test) can still read the state of the entries before it.
func (f *FSM) applyBatch(logs []*raft.Log) ([]any, Change) {
	out := make([]any, len(logs))
	var changed Change

	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() {
		close(f.mu.appliedCh)
		f.mu.appliedCh = make(chan struct{})
	}()
	for i, l := range logs {
		var c Change
		out[i], c = f.applyLocked(l)
		changed |= c
		// Raised only after the entry applied, so an entry that panics
		// leaves no trace.
		f.mu.st.applied = max(f.mu.st.applied, l.Index)
	}
	return out, changed
}

// applyLocked applies one entry. f.mu must be held for writing.
func (f *FSM) applyLocked(l *raft.Log) (Result, Change) {
	st := &f.mu.st
	res := Result{Index: l.Index, Status: StatusApplied}
	if l.Type != raft.LogCommand {
		return res, 0
	}

	var cmd clusterpb.Command
	if err := proto.Unmarshal(l.Data, &cmd); err != nil {
		res.Status, res.Err = StatusRejected, fmt.Errorf("%w: log entry %d: decode envelope: %v", ErrInvalidCommand, l.Index, err)
		return res, 0
	}
	if cmd.ClusterVersionRequired > st.clusterVersion {
		if cmd.Skippable {
			res.Status = StatusSkipped
			return res, 0
		}
		panic(&CommandError{Index: l.Index, Type: cmd.Type, Required: cmd.ClusterVersionRequired,
			Current: st.clusterVersion, Reason: "the command requires a higher cluster version than the committed one"})
	}

	h, ok := handlers[clusterpb.CommandType(cmd.Type)]
	if !ok {
		if cmd.Skippable {
			res.Status = StatusSkipped
			return res, 0
		}
		panic(&CommandError{Index: l.Index, Type: cmd.Type, Required: cmd.ClusterVersionRequired,
			Current: st.clusterVersion, Reason: "unknown command type"})
	}

	body := h.body()
	if err := proto.Unmarshal(cmd.Body, body); err != nil {
		res.Status, res.Err = StatusRejected, fmt.Errorf("%w: log entry %d: decode %s: %v", ErrInvalidCommand, l.Index, clusterpb.CommandType(cmd.Type), err)
		return res, 0
	}
	a := applier{st: st, gen: f.mu.gen, index: l.Index, typ: clusterpb.CommandType(cmd.Type)}
	status, changed, err := h.apply(&a, body)
	if err != nil {
		res.Status, res.Err = StatusRejected, fmt.Errorf("%w: log entry %d: %s: %w", ErrInvalidCommand, l.Index, clusterpb.CommandType(cmd.Type), err)
		return res, 0
	}
	res.Status = status
	return res, changed
}

// applier carries what a command handler needs besides the body.
type applier struct {
	st    *state
	gen   uint64 // FSM.mu.gen
	index uint64
	typ   clusterpb.CommandType
}

// handler decodes and applies one command type. apply validates the whole
// body before it changes anything, so a rejected command leaves no trace.
type handler struct {
	body  func() proto.Message
	apply func(a *applier, body proto.Message) (Status, Change, error)
}

// handlers lists the command types of cluster version 1. A type added later
// must be proposed with cluster_version_required set to the version that
// introduced it, so that no node below that version applies it unless the
// proposer marked it skippable.
var handlers = map[clusterpb.CommandType]handler{
	clusterpb.CommandType_COMMAND_TYPE_ROUTE_BATCH: {
		body: func() proto.Message { return &clusterpb.RouteBatch{} },
		apply: func(a *applier, m proto.Message) (Status, Change, error) {
			return a.routeBatch(m.(*clusterpb.RouteBatch))
		},
	},
	clusterpb.CommandType_COMMAND_TYPE_NODE_RECORD: {
		body: func() proto.Message { return &clusterpb.NodeRecord{} },
		apply: func(a *applier, m proto.Message) (Status, Change, error) {
			return a.nodeRecord(m.(*clusterpb.NodeRecord))
		},
	},
	clusterpb.CommandType_COMMAND_TYPE_NODE_LEAVE: {
		body: func() proto.Message { return &clusterpb.NodeLeave{} },
		apply: func(a *applier, m proto.Message) (Status, Change, error) {
			return a.nodeLeave(m.(*clusterpb.NodeLeave))
		},
	},
	clusterpb.CommandType_COMMAND_TYPE_PURGE_ROUTES: {
		body: func() proto.Message { return &clusterpb.PurgeRoutes{} },
		apply: func(a *applier, m proto.Message) (Status, Change, error) {
			return a.purgeRoutes(m.(*clusterpb.PurgeRoutes))
		},
	},
	clusterpb.CommandType_COMMAND_TYPE_SET_CLUSTER_VERSION: {
		body: func() proto.Message { return &clusterpb.SetClusterVersion{} },
		apply: func(a *applier, m proto.Message) (Status, Change, error) {
			return a.setClusterVersion(m.(*clusterpb.SetClusterVersion))
		},
	},
	clusterpb.CommandType_COMMAND_TYPE_PUT_USER:     authPutHandler(AuthUser),
	clusterpb.CommandType_COMMAND_TYPE_DELETE_USER:  authDeleteHandler(AuthUser),
	clusterpb.CommandType_COMMAND_TYPE_PUT_GROUP:    authPutHandler(AuthGroup),
	clusterpb.CommandType_COMMAND_TYPE_DELETE_GROUP: authDeleteHandler(AuthGroup),
	clusterpb.CommandType_COMMAND_TYPE_PUT_ROLE:     authPutHandler(AuthRole),
	clusterpb.CommandType_COMMAND_TYPE_DELETE_ROLE:  authDeleteHandler(AuthRole),
	clusterpb.CommandType_COMMAND_TYPE_PUT_RULES: {
		body:  func() proto.Message { return &clusterpb.PutRules{} },
		apply: func(a *applier, m proto.Message) (Status, Change, error) { return a.putRules(m.(*clusterpb.PutRules)) },
	},
}

// setClusterVersion raises the committed cluster version. It panics above
// MaxClusterVersion, because every later command of that version would
// stop this node anyway and the leader raises the version only once every
// member reports support for it.
func (a *applier) setClusterVersion(m *clusterpb.SetClusterVersion) (Status, Change, error) {
	if m.Version > MaxClusterVersion {
		panic(&CommandError{Index: a.index, Type: uint32(a.typ), Required: m.Version, Current: MaxClusterVersion,
			Reason: "the cluster version is above what this build supports"})
	}
	if m.Version <= a.st.clusterVersion {
		return StatusStale, 0, nil
	}
	a.st.clusterVersion = m.Version
	return StatusApplied, ChangeClusterVersion, nil
}
