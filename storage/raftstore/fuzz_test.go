package raftstore

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// FuzzDecodeLog checks that decodeLog never panics, that every error it
// returns is marked ErrCorrupt, and that what it accepts encodes to bytes
// that decode to the same entry. Seeds live in testdata/fuzz/FuzzDecodeLog.
func FuzzDecodeLog(f *testing.F) {
	f.Add(appendLog(nil, testLog(1, 1)))
	f.Add(appendLog(nil, &raft.Log{Index: 1}))
	f.Fuzz(func(t *testing.T, src []byte) {
		var got raft.Log
		err := decodeLog(src, &got)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeLog(%x) = %v, not marked ErrCorrupt", src, err)
			}
			return
		}
		enc := appendLog(nil, &got)
		if n := encodedLogLen(&got); n != len(enc) {
			t.Fatalf("encodedLogLen = %d, want %d", n, len(enc))
		}
		var again raft.Log
		if err := decodeLog(enc, &again); err != nil {
			t.Fatalf("decodeLog of re-encoded %s: %v", formatLog(&got), err)
		}
		if !logsEqual(&got, &again) {
			t.Fatalf("re-encoded entry decodes to %s, want %s", formatLog(&again), formatLog(&got))
		}
	})
}

// FuzzLogRoundTrip checks that every raft.Log survives appendLog and
// decodeLog, and that encodedLogLen predicts the encoded length.
func FuzzLogRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint64(1), uint8(0), []byte("data"), []byte(nil), false, int64(0), int64(0))
	f.Add(uint64(1<<63), uint64(7), uint8(5), []byte(nil), []byte("ext"), true, int64(1_700_000_000), int64(999_999_999))
	f.Add(uint64(2), uint64(0), uint8(255), []byte{}, []byte{}, true, int64(-62135596800), int64(0))
	f.Fuzz(func(t *testing.T, index, term uint64, typ uint8, data, ext []byte, hasTime bool, sec, nsec int64) {
		in := raft.Log{Index: index, Term: term, Type: raft.LogType(typ), Data: data, Extensions: ext}
		if hasTime {
			in.AppendedAt = time.Unix(sec, nsec)
		}
		enc := appendLog(nil, &in)
		if n := encodedLogLen(&in); n != len(enc) {
			t.Fatalf("encodedLogLen = %d, want %d", n, len(enc))
		}
		var got raft.Log
		if err := decodeLog(enc, &got); err != nil {
			t.Fatalf("decodeLog of %s: %v", formatLog(&in), err)
		}
		if !logsEqual(&got, &in) || !bytes.Equal(got.Data, in.Data) {
			t.Fatalf("round trip = %s, want %s", formatLog(&got), formatLog(&in))
		}
	})
}
