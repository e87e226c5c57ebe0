package fsm

import (
	"bytes"
	"testing"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// FuzzRestore checks that Restore returns an error on corrupt input rather
// than panic, and that what it accepts snapshots again to the same bytes.
func FuzzRestore(f *testing.F) {
	lf := newFeeder(f)
	lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
	lf.mustApply(StatusApplied, typeRoutes, batch("s1", 1, add("a/#", "", true), add("b", "g", false)))
	staged := batch("s1", 1, add("c", "", false))
	staged.Replace = true
	lf.mustApply(StatusApplied, typeRoutes, staged)
	lf.mustApply(StatusApplied, clusterpb.CommandType_COMMAND_TYPE_PUT_USER, &clusterpb.AuthPut{Name: "u", Record: []byte(`{}`)})
	good := snapshotBytes(f, lf.f)

	f.Add(good)
	f.Add(snapshotBytes(f, New()))
	f.Add([]byte("SFSM"))
	f.Add([]byte("SFSM\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"))
	f.Add(good[:len(good)/2])

	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := New()
		if err := fsm.Restore(nopCloser{bytes.NewReader(data)}); err != nil {
			return
		}
		again := snapshotBytes(t, fsm)
		if err := New().Restore(nopCloser{bytes.NewReader(again)}); err != nil {
			t.Fatalf("snapshot of an accepted snapshot does not restore: %v", err)
		}
	})
}
