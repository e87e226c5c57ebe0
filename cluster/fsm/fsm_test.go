package fsm

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

func TestFSM_Commands(t *testing.T) {
	tests := []struct {
		name  string
		run   func(lf *logFeeder)
		check func(t *testing.T, f *FSM)
	}{
		{
			name: "node-record-creates-and-raises-epoch",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
				lf.mustApply(StatusApplied, typeNode, nodeRec("n2", "s2", 1, joined))
			},
			check: func(t *testing.T, f *FSM) {
				want := []Node{
					{Name: "n1", SiteID: "s1", Incarnation: 1, State: NodeJoined, PeerAddr: "n1:7000", MQTTAddr: "n1:1883"},
					{Name: "n2", SiteID: "s2", Incarnation: 1, State: NodeJoined, PeerAddr: "n2:7000", MQTTAddr: "n2:1883"},
				}
				if got := f.Nodes(); !reflect.DeepEqual(got, want) {
					t.Errorf("Nodes = %+v, expected %+v", got, want)
				}
				if got := f.Epoch(); got != 2 {
					t.Errorf("Epoch = %d, expected 2", got)
				}
			},
		},
		{
			name: "address-change-keeps-epoch",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
				r := nodeRec("n1", "s1", 1, joined)
				r.PeerAddr = "10.0.0.9:7000"
				lf.mustApply(StatusApplied, typeNode, r)
			},
			check: func(t *testing.T, f *FSM) {
				if got := f.Epoch(); got != 1 {
					t.Errorf("Epoch = %d, expected 1", got)
				}
				if n, _ := f.Node("n1"); n.PeerAddr != "10.0.0.9:7000" {
					t.Errorf("PeerAddr = %q, expected the new address", n.PeerAddr)
				}
			},
		},
		{
			name: "state-change-raises-epoch",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, dead))
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 2, back))
			},
			check: func(t *testing.T, f *FSM) {
				if got := f.Epoch(); got != 3 {
					t.Errorf("Epoch = %d, expected 3", got)
				}
			},
		},
		{
			name: "older-node-record-is-stale",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 5, joined))
				lf.mustApply(StatusStale, typeNode, nodeRec("n1", "s1", 4, dead))
			},
			check: func(t *testing.T, f *FSM) {
				if n, _ := f.Node("n1"); n.Incarnation != 5 || n.State != NodeJoined {
					t.Errorf("node = %+v, expected incarnation 5, joined", n)
				}
			},
		},
		{
			name: "site-id-of-another-node-rejected",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
				res := lf.apply(typeNode, nodeRec("n2", "s1", 1, joined))
				if res.Status != StatusRejected || !errors.Is(res.Err, ErrInvalidCommand) {
					lf.t.Errorf("result = %+v, expected rejected with ErrInvalidCommand", res)
				}
			},
			check: func(t *testing.T, f *FSM) {
				if _, ok := f.Node("n2"); ok {
					t.Error("node n2 exists after a rejected record")
				}
			},
		},
		{
			name: "route-batch-adds-and-removes",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
				lf.mustApply(StatusApplied, typeRoutes, batch("s1", 1, add("a/#", "", false), add("b/+", "g", true), add("c", "", false)))
				lf.mustApply(StatusApplied, typeRoutes, batch("s1", 1, remove("c", ""), add("a/#", "", true)))
			},
			check: func(t *testing.T, f *FSM) {
				want := routesOf("s1", Route{Filter: "a/#", Durable: true}, Route{Filter: "b/+", ShareGroup: "g", Durable: true})
				if got := f.RoutesFor("s1"); !reflect.DeepEqual(got, want) {
					t.Errorf("RoutesFor = %+v, expected %+v", got, want)
				}
			},
		},
		{
			name: "route-batch-of-unknown-site-is-stale",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusStale, typeRoutes, batch("s9", 1, add("a", "", false)))
			},
			check: func(t *testing.T, f *FSM) {
				if got := f.Routes(); len(got) != 0 {
					t.Errorf("Routes = %+v, expected none", got)
				}
			},
		},
		{
			name: "route-batch-with-empty-filter-rejected",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
				lf.mustApply(StatusRejected, typeRoutes, batch("s1", 1, add("a", "", false), add("", "", false)))
			},
			check: func(t *testing.T, f *FSM) {
				if got := f.Routes(); len(got) != 0 {
					t.Errorf("Routes = %+v, expected none: a rejected batch applies no op", got)
				}
			},
		},
		{
			name: "replace-swaps-on-last-batch",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
				lf.mustApply(StatusApplied, typeRoutes, batch("s1", 1, add("old", "", false)))
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 2, back))
				b := batch("s1", 2, add("new1", "", false))
				b.Replace = true
				lf.mustApply(StatusApplied, typeRoutes, b)
				if got := lf.f.RoutesFor("s1"); len(got) != 1 || got[0].Filter != "old" {
					lf.t.Errorf("RoutesFor before the last batch = %+v, expected the old route", got)
				}
				lf.mustApply(StatusApplied, typeRoutes, batch("s1", 2, add("delta", "", true)))
				b = batch("s1", 2, add("new2", "", false))
				b.Replace, b.ReplaceLast = true, true
				lf.mustApply(StatusApplied, typeRoutes, b)
			},
			check: func(t *testing.T, f *FSM) {
				want := routesOf("s1", Route{Filter: "delta", Durable: true}, Route{Filter: "new1"}, Route{Filter: "new2"})
				if got := f.RoutesFor("s1"); !reflect.DeepEqual(got, want) {
					t.Errorf("RoutesFor = %+v, expected %+v", got, want)
				}
			},
		},
		{
			name: "purge-non-durable-keeps-durable",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
				lf.mustApply(StatusApplied, typeRoutes, batch("s1", 1, add("a", "", false), add("b", "", true)))
				lf.mustApply(StatusApplied, typePurge, &clusterpb.PurgeRoutes{SiteId: "s1", NonDurableOnly: true})
			},
			check: func(t *testing.T, f *FSM) {
				want := routesOf("s1", Route{Filter: "b", Durable: true})
				if got := f.RoutesFor("s1"); !reflect.DeepEqual(got, want) {
					t.Errorf("RoutesFor = %+v, expected %+v", got, want)
				}
			},
		},
		{
			name: "purge-all",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
				lf.mustApply(StatusApplied, typeRoutes, batch("s1", 1, add("a", "", false), add("b", "", true)))
				lf.mustApply(StatusApplied, typePurge, &clusterpb.PurgeRoutes{SiteId: "s1"})
			},
			check: func(t *testing.T, f *FSM) {
				if got := f.RoutesFor("s1"); got != nil {
					t.Errorf("RoutesFor = %+v, expected nil", got)
				}
			},
		},
		{
			name: "leave-purges-and-marks-left",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
				lf.mustApply(StatusApplied, typeRoutes, batch("s1", 1, add("a", "", true)))
				lf.mustApply(StatusApplied, typeLeave, &clusterpb.NodeLeave{Name: "n1"})
				lf.mustApply(StatusStale, typeRoutes, batch("s1", 1, add("b", "", true)))
			},
			check: func(t *testing.T, f *FSM) {
				if got := f.Routes(); len(got) != 0 {
					t.Errorf("Routes = %+v, expected none", got)
				}
				if n, _ := f.Node("n1"); n.State != NodeLeft {
					t.Errorf("state = %s, expected left", n.State)
				}
				if got := f.Epoch(); got != 2 {
					t.Errorf("Epoch = %d, expected 2", got)
				}
			},
		},
		{
			name: "leave-with-remove-drops-record",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
				lf.mustApply(StatusApplied, typeLeave, &clusterpb.NodeLeave{Name: "n1", RemoveRecord: true})
				lf.mustApply(StatusStale, typeLeave, &clusterpb.NodeLeave{Name: "n1"})
			},
			check: func(t *testing.T, f *FSM) {
				if got := f.Nodes(); len(got) != 0 {
					t.Errorf("Nodes = %+v, expected none", got)
				}
			},
		},
		{
			name: "cluster-version-only-rises",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, typeVersion, &clusterpb.SetClusterVersion{Version: 1})
				lf.mustApply(StatusStale, typeVersion, &clusterpb.SetClusterVersion{Version: 1})
				lf.mustApply(StatusStale, typeVersion, &clusterpb.SetClusterVersion{Version: 0})
			},
			check: func(t *testing.T, f *FSM) {
				if got := f.ClusterVersion(); got != 1 {
					t.Errorf("ClusterVersion = %d, expected 1", got)
				}
			},
		},
		{
			name: "auth-put-and-delete",
			run: func(lf *logFeeder) {
				lf.mustApply(StatusApplied, clusterpb.CommandType_COMMAND_TYPE_PUT_USER, &clusterpb.AuthPut{Name: "bob", Record: []byte(`{"name":"bob"}`)})
				lf.mustApply(StatusApplied, clusterpb.CommandType_COMMAND_TYPE_PUT_USER, &clusterpb.AuthPut{Name: "al", Record: []byte(`{"name":"al"}`)})
				lf.mustApply(StatusApplied, clusterpb.CommandType_COMMAND_TYPE_PUT_GROUP, &clusterpb.AuthPut{Name: "ops", Record: []byte(`{"name":"ops"}`)})
				lf.mustApply(StatusApplied, clusterpb.CommandType_COMMAND_TYPE_PUT_ROLE, &clusterpb.AuthPut{Name: "r", Record: []byte(`{}`)})
				lf.mustApply(StatusApplied, clusterpb.CommandType_COMMAND_TYPE_DELETE_ROLE, &clusterpb.AuthDelete{Name: "r"})
				lf.mustApply(StatusApplied, clusterpb.CommandType_COMMAND_TYPE_PUT_RULES, &clusterpb.PutRules{Rules: []byte(`[]`)})
				lf.mustApply(StatusRejected, clusterpb.CommandType_COMMAND_TYPE_DELETE_USER, &clusterpb.AuthDelete{})
			},
			check: func(t *testing.T, f *FSM) {
				users := f.AuthRecords(AuthUser)
				if len(users) != 2 || users[0].Name != "al" || users[1].Name != "bob" {
					t.Errorf("users = %+v, expected al and bob in order", users)
				}
				if data, ok := f.AuthRecord(AuthGroup, "ops"); !ok || string(data) != `{"name":"ops"}` {
					t.Errorf("group ops = %q, %v", data, ok)
				}
				if _, ok := f.AuthRecord(AuthRole, "r"); ok {
					t.Error("role r exists after its delete")
				}
				if data, ok := f.AuthRecord(AuthRules, RulesName); !ok || string(data) != "[]" {
					t.Errorf("rules = %q, %v", data, ok)
				}
			},
		},
		{
			name: "undecodable-envelope-rejected",
			run: func(lf *logFeeder) {
				res := lf.applyData([]byte{0xff, 0xff})
				if res.Status != StatusRejected || !errors.Is(res.Err, ErrInvalidCommand) {
					lf.t.Errorf("result = %+v, expected rejected with ErrInvalidCommand", res)
				}
			},
			check: func(t *testing.T, f *FSM) {
				if got := f.AppliedIndex(); got != 1 {
					t.Errorf("AppliedIndex = %d, expected 1", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lf := newFeeder(t)
			tt.run(lf)
			tt.check(t, lf.f)

			// Every state must survive a snapshot round trip byte for byte.
			data := snapshotBytes(t, lf.f)
			if again := snapshotBytes(t, restored(t, data)); string(again) != string(data) {
				t.Error("snapshot of the restored FSM differs from the original snapshot")
			}
		})
	}
}

func TestFSM_StaleIncarnationIgnored(t *testing.T) {
	lf := newFeeder(t)
	lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 3, joined))
	lf.mustApply(StatusApplied, typeRoutes, batch("s1", 3, add("a", "", false)))

	lf.mustApply(StatusStale, typeRoutes, batch("s1", 2, add("old", "", false), remove("a", "")))
	lf.mustApply(StatusStale, typeRoutes, batch("s1", 4, add("ahead", "", false)))

	want := routesOf("s1", Route{Filter: "a"})
	if got := lf.f.RoutesFor("s1"); !reflect.DeepEqual(got, want) {
		t.Errorf("RoutesFor = %+v, expected %+v", got, want)
	}
}

func TestFSM_SiteIDChangePurgesRoutes(t *testing.T) {
	lf := newFeeder(t)
	lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "old", 1, joined))
	lf.mustApply(StatusApplied, typeRoutes, batch("old", 1, add("a", "", true), add("b", "g", false)))
	staged := batch("old", 1, add("c", "", false))
	staged.Replace = true
	lf.mustApply(StatusApplied, typeRoutes, staged)

	lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "new", 1, joined))

	if got := lf.f.RoutesFor("old"); got != nil {
		t.Errorf("RoutesFor(old) = %+v, expected nil", got)
	}
	lf.mustApply(StatusStale, typeRoutes, batch("old", 1, add("late", "", false)))
	if got := lf.f.Routes(); len(got) != 0 {
		t.Errorf("Routes = %+v, expected none", got)
	}
	if got := lf.f.Epoch(); got != 2 {
		t.Errorf("Epoch = %d, expected 2", got)
	}
	lf.mustApply(StatusApplied, typeRoutes, batch("new", 1, add("a", "", false)))
	if got := len(lf.f.RoutesFor("new")); got != 1 {
		t.Errorf("len(RoutesFor(new)) = %d, expected 1", got)
	}
}

// commandData encodes a raw envelope, for types and versions EncodeCommand
// does not produce.
func commandData(t *testing.T, cmd proto.Message) []byte {
	t.Helper()
	data, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// applyRecover applies data and returns what Apply panicked with, or nil.
func applyRecover(lf *logFeeder, data []byte) (p any) {
	defer func() { p = recover() }()
	lf.applyData(data)
	return nil
}

func TestFSM_UnknownCommand(t *testing.T) {
	tests := []struct {
		name      string
		cmd       *clusterpb.Command
		wantPanic bool
	}{
		{name: "unknown-type", cmd: &clusterpb.Command{Type: 999}, wantPanic: true},
		{name: "unknown-type-skippable", cmd: &clusterpb.Command{Type: 999, Skippable: true}},
		{name: "version-too-high", cmd: &clusterpb.Command{Type: uint32(typePurge), ClusterVersionRequired: 2}, wantPanic: true},
		{name: "version-too-high-skippable", cmd: &clusterpb.Command{Type: uint32(typePurge), ClusterVersionRequired: 2, Skippable: true}},
		{name: "set-version-unsupported", cmd: &clusterpb.Command{Type: uint32(typeVersion),
			Body: commandData(t, &clusterpb.SetClusterVersion{Version: MaxClusterVersion + 1})}, wantPanic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lf := newFeeder(t)
			lf.mustApply(StatusApplied, typeVersion, &clusterpb.SetClusterVersion{Version: 1})
			before := snapshotBytes(t, lf.f)

			p := applyRecover(lf, commandData(t, tt.cmd))
			if !tt.wantPanic {
				if p != nil {
					t.Fatalf("Apply panicked with %v, expected the command to be skipped", p)
				}
				if got := lf.f.AppliedIndex(); got != 2 {
					t.Errorf("AppliedIndex = %d, expected 2", got)
				}
				return
			}
			var ce *CommandError
			if err, ok := p.(error); !ok || !errors.As(err, &ce) {
				t.Fatalf("Apply panicked with %v, expected a *CommandError", p)
			}
			if ce.Index != 2 {
				t.Errorf("CommandError.Index = %d, expected 2", ce.Index)
			}
			// The FSM must still be readable: the panic released the lock.
			if after := snapshotBytes(t, lf.f); string(after) != string(before) {
				t.Error("state changed by a command that panicked")
			}
		})
	}
}

func TestFSM_SkippedCommandResult(t *testing.T) {
	lf := newFeeder(t)
	res := lf.applyData(commandData(t, &clusterpb.Command{Type: 4242, Skippable: true, Body: []byte("future")}))
	if res.Status != StatusSkipped || res.Err != nil {
		t.Errorf("result = %+v, expected skipped without error", res)
	}
}

func TestFSM_ApplyBatchInOrder(t *testing.T) {
	f := New()
	var logs []*raft.Log
	for i, c := range []struct {
		typ  clusterpb.CommandType
		body proto.Message
	}{
		{typeNode, nodeRec("n1", "s1", 1, joined)},
		{typeRoutes, batch("s1", 1, add("a", "", false))},
		{typeRoutes, batch("s1", 1, remove("a", ""), add("b", "", false))},
	} {
		data, err := EncodeCommand(c.typ, c.body)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data})
	}
	logs = append(logs, &raft.Log{Index: 4, Type: raft.LogConfiguration})

	out := f.ApplyBatch(logs)
	if len(out) != len(logs) {
		t.Fatalf("ApplyBatch returned %d results for %d logs", len(out), len(logs))
	}
	for i, r := range out {
		if res := r.(Result); res.Status != StatusApplied || res.Index != uint64(i+1) {
			t.Errorf("result %d = %+v, expected applied at index %d", i, res, i+1)
		}
	}
	want := routesOf("s1", Route{Filter: "b"})
	if got := f.RoutesFor("s1"); !reflect.DeepEqual(got, want) {
		t.Errorf("RoutesFor = %+v, expected %+v", got, want)
	}
	if got := f.AppliedIndex(); got != 4 {
		t.Errorf("AppliedIndex = %d, expected 4", got)
	}
}

func TestFSM_SubscribeCoalesces(t *testing.T) {
	lf := newFeeder(t)
	routes, cancelRoutes := lf.f.Subscribe(ChangeRoutes)
	defer cancelRoutes()
	auth, cancelAuth := lf.f.Subscribe(ChangeAuth)
	defer cancelAuth()

	lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
	lf.mustApply(StatusApplied, typeRoutes, batch("s1", 1, add("a", "", false)))
	lf.mustApply(StatusApplied, typeRoutes, batch("s1", 1, add("b", "", false)))

	select {
	case <-routes:
	default:
		t.Fatal("no route notification after two route changes")
	}
	select {
	case <-routes:
		t.Error("second route notification: changes were not coalesced")
	default:
	}
	select {
	case <-auth:
		t.Error("auth notification without an auth change")
	default:
	}
}

func TestFSM_WaitApplied(t *testing.T) {
	lf := newFeeder(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	done := make(chan error, 1)
	go func() { done <- lf.f.WaitApplied(ctx, 2) }()
	lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
	lf.mustApply(StatusApplied, typeNode, nodeRec("n2", "s2", 1, joined))
	if err := <-done; err != nil {
		t.Fatalf("WaitApplied: %v", err)
	}

	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	if err := lf.f.WaitApplied(short, 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitApplied beyond the applied index = %v, expected DeadlineExceeded", err)
	}
}

func TestFSM_RestoreRejectsCorrupt(t *testing.T) {
	lf := newFeeder(t)
	lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
	lf.mustApply(StatusApplied, typeRoutes, batch("s1", 1, add("a", "", false)))
	good := snapshotBytes(t, lf.f)

	tests := []struct {
		name string
		data []byte
		want error
	}{
		{name: "empty", data: nil, want: ErrCorruptSnapshot},
		{name: "bad-magic", data: append([]byte("XXXX"), good[4:]...), want: ErrCorruptSnapshot},
		{name: "truncated", data: good[:len(good)-1], want: ErrCorruptSnapshot},
		{name: "trailing-byte", data: append(append([]byte{}, good...), 0), want: ErrCorruptSnapshot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New()
			lf2 := &logFeeder{t: t, f: f}
			lf2.mustApply(StatusApplied, typeNode, nodeRec("keep", "k1", 1, joined))
			err := f.Restore(nopCloser{bytesReader(tt.data)})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Restore = %v, expected %v", err, tt.want)
			}
			if _, ok := f.Node("keep"); !ok {
				t.Error("a failed Restore changed the state")
			}
		})
	}
}
