package fsm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// randomCommands returns n encoded commands drawn from a seeded generator:
// node records that restart, die, leave and change site ids, route batches
// of current and stale incarnations (some replacing), purges, auth changes,
// cluster version changes and skippable commands of unknown types.
func randomCommands(t testing.TB, seed uint64, n int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	names := []string{"n1", "n2", "n3", "n4"}
	sites := map[string]string{}
	incs := map[string]uint64{}
	filters := []string{"a", "a/#", "b/+/c", "d", "e/f", "#", "+/x"}
	groups := []string{"", "", "g1", "g2"}

	encode := func(typ clusterpb.CommandType, body proto.Message) []byte {
		data, err := EncodeCommand(typ, body)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}

	var out [][]byte
	for len(out) < n {
		name := names[rng.IntN(len(names))]
		switch k := rng.IntN(20); {
		case k < 3 || sites[name] == "":
			if sites[name] == "" || rng.IntN(4) == 0 {
				sites[name] = fmt.Sprintf("%s-site%d", name, rng.IntN(1000))
			}
			incs[name] += uint64(rng.IntN(2))
			state := clusterpb.NodeState(1 + rng.IntN(3)) // joined, dead or back; NodeLeave makes left
			out = append(out, encode(typeNode, nodeRec(name, sites[name], incs[name], state)))
		case k < 12:
			b := batch(sites[name], incs[name]-uint64(rng.IntN(2))*min(incs[name], 1))
			for range 1 + rng.IntN(8) {
				f, g := filters[rng.IntN(len(filters))], groups[rng.IntN(len(groups))]
				if rng.IntN(3) == 0 {
					b.Ops = append(b.Ops, remove(f, g))
				} else {
					b.Ops = append(b.Ops, add(f, g, rng.IntN(2) == 0))
				}
			}
			if rng.IntN(4) == 0 {
				b.Replace = true
				b.ReplaceLast = rng.IntN(2) == 0
			}
			out = append(out, encode(typeRoutes, b))
		case k < 13:
			out = append(out, encode(typePurge, &clusterpb.PurgeRoutes{SiteId: sites[name], NonDurableOnly: rng.IntN(2) == 0}))
		case k < 14:
			out = append(out, encode(typeLeave, &clusterpb.NodeLeave{Name: name, RemoveRecord: rng.IntN(3) == 0}))
			if rng.IntN(2) == 0 {
				sites[name] = ""
			}
		case k < 17:
			user := fmt.Sprintf("user%d", rng.IntN(6))
			if rng.IntN(3) == 0 {
				out = append(out, encode(clusterpb.CommandType_COMMAND_TYPE_DELETE_USER, &clusterpb.AuthDelete{Name: user}))
			} else {
				out = append(out, encode(clusterpb.CommandType_COMMAND_TYPE_PUT_USER,
					&clusterpb.AuthPut{Name: user, Record: fmt.Appendf(nil, `{"name":%q,"version":%d}`, user, rng.IntN(100))}))
			}
		case k < 18:
			out = append(out, encode(clusterpb.CommandType_COMMAND_TYPE_PUT_RULES, &clusterpb.PutRules{Rules: fmt.Appendf(nil, `[%d]`, rng.IntN(9))}))
		case k < 19:
			out = append(out, encode(typeVersion, &clusterpb.SetClusterVersion{Version: uint64(rng.IntN(2))}))
		default:
			data, err := proto.Marshal(&clusterpb.Command{Type: 1000 + uint32(rng.IntN(5)), Skippable: true, Body: []byte{1, 2, 3}})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, data)
		}
	}
	return out
}

// applyAll applies commands to f as log entries first..first+len-1, in
// batches of random size so that Apply and ApplyBatch are both exercised.
func applyAll(f *FSM, cmds [][]byte, first uint64, rng *rand.Rand) {
	for i := 0; i < len(cmds); {
		size := min(1+rng.IntN(7), len(cmds)-i)
		logs := make([]*raft.Log, size)
		for j := range logs {
			logs[j] = &raft.Log{Index: first + uint64(i+j), Term: 1, Type: raft.LogCommand, Data: cmds[i+j]}
		}
		if size == 1 {
			f.Apply(logs[0])
		} else {
			f.ApplyBatch(logs)
		}
		i += size
	}
}

func TestFSM_Deterministic(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			cmds := randomCommands(t, seed, 600)
			mid := len(cmds) / 2

			a, b := New(), New()
			applyAll(a, cmds, 1, rand.New(rand.NewPCG(seed, 1)))
			applyAll(b, cmds, 1, rand.New(rand.NewPCG(seed, 2)))

			// c applies the first half, is snapshotted, and the snapshot is
			// restored into d, which applies the second half.
			c := New()
			applyAll(c, cmds[:mid], 1, rand.New(rand.NewPCG(seed, 3)))
			d := restored(t, snapshotBytes(t, c))
			applyAll(d, cmds[mid:], uint64(mid+1), rand.New(rand.NewPCG(seed, 4)))
			// c goes on too, with a snapshot outstanding, to exercise the
			// copy of shared route sets.
			applyAll(c, cmds[mid:], uint64(mid+1), rand.New(rand.NewPCG(seed, 5)))

			want := snapshotBytes(t, a)
			for name, f := range map[string]*FSM{"second": b, "snapshot-source": c, "restored": d} {
				if got := snapshotBytes(t, f); !bytes.Equal(got, want) {
					t.Errorf("%s FSM: snapshot differs from the first FSM's (%d and %d bytes)", name, len(got), len(want))
				}
				if !reflect.DeepEqual(f.Routes(), a.Routes()) {
					t.Errorf("%s FSM: routes differ", name)
				}
				if !reflect.DeepEqual(f.Nodes(), a.Nodes()) {
					t.Errorf("%s FSM: nodes differ", name)
				}
				if f.Epoch() != a.Epoch() {
					t.Errorf("%s FSM: epoch %d, expected %d", name, f.Epoch(), a.Epoch())
				}
			}
			// A generator whose batches were all stale would test nothing.
			if len(a.Routes()) == 0 || len(a.Nodes()) == 0 {
				t.Errorf("final state has %d routes and %d nodes, expected some of each", len(a.Routes()), len(a.Nodes()))
			}
		})
	}
}

// TestFSM_SnapshotIsolated checks that a snapshot taken before later applies
// persists the state as of the snapshot, not the later one.
func TestFSM_SnapshotIsolated(t *testing.T) {
	lf := newFeeder(t)
	lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
	lf.mustApply(StatusApplied, typeRoutes, batch("s1", 1, add("a", "", false)))
	want := snapshotBytes(t, lf.f)

	snap, err := lf.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	lf.mustApply(StatusApplied, typeRoutes, batch("s1", 1, add("b", "", false), remove("a", "")))
	lf.mustApply(StatusApplied, typePurge, &clusterpb.PurgeRoutes{SiteId: "s1"})

	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.Bytes(), want) {
		t.Error("snapshot persisted after later applies does not match the state when it was taken")
	}
}
