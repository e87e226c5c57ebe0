package raftstore

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestCodec_RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		log  raft.Log
	}{
		{name: "zero-fields", log: raft.Log{Index: 1}},
		{name: "all-fields", log: *testLog(42, 7)},
		{name: "configuration", log: raft.Log{Index: 3, Term: 2, Type: raft.LogConfiguration, Data: []byte{0x01, 0x02}}},
		{name: "unknown-type", log: raft.Log{Index: 3, Term: 2, Type: raft.LogType(200)}},
		{name: "max-values", log: raft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: 255}},
		{name: "extensions-only", log: raft.Log{Index: 9, Extensions: []byte("ext")}},
		{name: "large-data", log: raft.Log{Index: 9, Data: bytes.Repeat([]byte{0xab}, 1<<20)}},
		{name: "time-before-1970", log: raft.Log{Index: 1, AppendedAt: time.Date(1960, 1, 2, 3, 4, 5, 6, time.UTC)}},
		{name: "time-unix-epoch", log: raft.Log{Index: 1, AppendedAt: time.Unix(0, 0)}},
		{name: "time-now", log: raft.Log{Index: 1, AppendedAt: time.Now()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := appendLog(nil, &tt.log)
			if n := encodedLogLen(&tt.log); n != len(enc) {
				t.Errorf("encodedLogLen = %d, want %d", n, len(enc))
			}
			var got raft.Log
			if err := decodeLog(enc, &got); err != nil {
				t.Fatalf("decodeLog: %v", err)
			}
			if !logsEqual(&got, &tt.log) {
				t.Errorf("decodeLog = %s, want %s", formatLog(&got), formatLog(&tt.log))
			}
			if got.AppendedAt.IsZero() != tt.log.AppendedAt.IsZero() {
				t.Errorf("AppendedAt.IsZero = %v, want %v", got.AppendedAt.IsZero(), tt.log.AppendedAt.IsZero())
			}
		})
	}
}

// TestCodec_Format pins the version 1 encoding, so that a change to it is
// deliberate: stored entries must stay readable after an upgrade.
func TestCodec_Format(t *testing.T) {
	l := raft.Log{
		Index:      300,
		Term:       2,
		Type:       raft.LogCommand,
		Data:       []byte("ab"),
		Extensions: []byte("x"),
		AppendedAt: time.Unix(-1, 5),
	}
	want := []byte{
		0x01,       // version
		0x01,       // flags: AppendedAt set
		0xac, 0x02, // index 300
		0x02,           // term
		0x00,           // type LogCommand
		0x02, 'a', 'b', // data
		0x01, 'x', // extensions
		0x01, // seconds -1, zig-zag
		0x05, // nanoseconds
	}
	if got := appendLog(nil, &l); !bytes.Equal(got, want) {
		t.Errorf("appendLog = %x, want %x", got, want)
	}
}

func TestCodec_DecodeRejects(t *testing.T) {
	valid := appendLog(nil, testLog(5, 3))
	tests := []struct {
		name string
		src  []byte
	}{
		{name: "empty", src: nil},
		{name: "version-zero", src: append([]byte{0x00}, valid[1:]...)},
		{name: "version-two", src: append([]byte{0x02}, valid[1:]...)},
		{name: "unknown-flag", src: append([]byte{0x01, 0x03}, valid[2:]...)},
		{name: "trailing-byte", src: append(append([]byte{}, valid...), 0x00)},
		{name: "data-length-too-long", src: []byte{0x01, 0x00, 0x01, 0x01, 0x00, 0x05, 'a'}},
		{name: "extensions-length-too-long", src: []byte{0x01, 0x00, 0x01, 0x01, 0x00, 0x00, 0x09}},
		{name: "overlong-varint", src: []byte{0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{name: "nanoseconds-out-of-range", src: []byte{0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x80, 0x94, 0xeb, 0xdc, 0x03}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got raft.Log
			if err := decodeLog(tt.src, &got); !errors.Is(err, ErrCorrupt) {
				t.Errorf("decodeLog(%x) = %v, want an error marked ErrCorrupt", tt.src, err)
			}
		})
	}
}

// TestCodec_DecodeTruncated checks every proper prefix of a valid entry.
func TestCodec_DecodeTruncated(t *testing.T) {
	valid := appendLog(nil, testLog(1<<40, 1<<20))
	for n := range len(valid) {
		var got raft.Log
		if err := decodeLog(valid[:n], &got); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeLog of the first %d of %d bytes = %v, want an error marked ErrCorrupt", n, len(valid), err)
		}
	}
}
