package raftstore

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/hashicorp/raft"
)

func TestStableStore_Contract(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		val  []byte
	}{
		{name: "plain", key: []byte("CurrentTerm"), val: []byte("value")},
		{name: "empty-value", key: []byte("empty"), val: []byte{}},
		{name: "empty-key", key: []byte{}, val: []byte("v")},
		{name: "binary-key", key: []byte{0x00, 0xff, 0x10}, val: []byte{0x00}},
		{name: "large-value", key: []byte("large"), val: bytes.Repeat([]byte("x"), 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			s := openStore(t, cfg)
			if err := s.Set(tt.key, tt.val); err != nil {
				t.Fatalf("Set: %v", err)
			}
			for _, phase := range []string{"before reopen", "after reopen"} {
				got, err := s.Get(tt.key)
				if err != nil {
					t.Fatalf("Get %s: %v", phase, err)
				}
				if !bytes.Equal(got, tt.val) {
					t.Errorf("Get %s = %q, want %q", phase, got, tt.val)
				}
				if got == nil {
					t.Errorf("Get %s returned nil for a stored value", phase)
				}
				s = reopen(t, s, cfg)
			}
		})
	}
}

func TestStableStore_Overwrite(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	for _, v := range []string{"one", "two", ""} {
		if err := s.Set([]byte("k"), []byte(v)); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
		got, err := s.Get([]byte("k"))
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if string(got) != v {
			t.Errorf("Get after Set(%q) = %q", v, got)
		}
	}
}

func TestStableStore_GetCopiesValue(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	val := []byte("value")
	if err := s.Set([]byte("k"), val); err != nil {
		t.Fatalf("Set: %v", err)
	}
	val[0] = 'X'
	got, err := s.Get([]byte("k"))
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	got[1] = 'Y'
	again, err := s.Get([]byte("k"))
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if string(again) != "value" {
		t.Errorf("Get = %q after changing the Set argument and an earlier result, want %q", again, "value")
	}
}

// TestStableStore_MissingKey checks the error that hashicorp/raft v1.7.2
// recognises by its text.
func TestStableStore_MissingKey(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))

	val, err := s.Get([]byte("LastVoteCand"))
	if val != nil {
		t.Errorf("Get of a missing key = %q, want nil", val)
	}
	if err == nil || err.Error() != "not found" {
		t.Errorf("Get of a missing key: error %v, want the text %q", err, "not found")
	}
	if !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Get of a missing key: error %v, want ErrKeyNotFound", err)
	}

	n, err := s.GetUint64([]byte("CurrentTerm"))
	if n != 0 {
		t.Errorf("GetUint64 of a missing key = %d, want 0", n)
	}
	if err == nil || err.Error() != "not found" {
		t.Errorf("GetUint64 of a missing key: error %v, want the text %q", err, "not found")
	}
	if !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("GetUint64 of a missing key: error %v, want ErrKeyNotFound", err)
	}
}

// TestStableStore_RaftAcceptsMissingKey runs raft's own start-up check on
// a fresh store, which fails unless the missing-key error matches.
func TestStableStore_RaftAcceptsMissingKey(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	has, err := raft.HasExistingState(s, s, raft.NewInmemSnapshotStore())
	if err != nil {
		t.Fatalf("HasExistingState on a fresh store: %v", err)
	}
	if has {
		t.Errorf("HasExistingState on a fresh store = true, want false")
	}

	if err := s.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatalf("SetUint64: %v", err)
	}
	has, err = raft.HasExistingState(s, s, raft.NewInmemSnapshotStore())
	if err != nil {
		t.Fatalf("HasExistingState after a term was stored: %v", err)
	}
	if !has {
		t.Errorf("HasExistingState after a term was stored = false, want true")
	}
}

func TestStableStore_Uint64(t *testing.T) {
	for _, v := range []uint64{0, 1, 255, 1 << 32, math.MaxUint64} {
		cfg := testConfig(t.TempDir())
		s := openStore(t, cfg)
		if err := s.SetUint64([]byte("term"), v); err != nil {
			t.Fatalf("SetUint64(%d): %v", v, err)
		}
		raw, err := s.Get([]byte("term"))
		if err != nil {
			t.Fatalf("Get of a uint64 key: %v", err)
		}
		if len(raw) != 8 {
			t.Errorf("Get of a uint64 key = %x, want 8 bytes", raw)
		}
		s = reopen(t, s, cfg)
		got, err := s.GetUint64([]byte("term"))
		if err != nil {
			t.Fatalf("GetUint64 after reopen: %v", err)
		}
		if got != v {
			t.Errorf("GetUint64 after reopen = %d, want %d", got, v)
		}
	}
}

func TestStableStore_Uint64WrongLength(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	if err := s.Set([]byte("term"), []byte{1, 2, 3}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	_, err := s.GetUint64([]byte("term"))
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("GetUint64 of a 3-byte value = %v, want an error marked ErrCorrupt", err)
	}
}

// TestStableStore_SeparateFromLog checks that stable keys and log entries
// do not overlap, whatever bytes a stable key holds.
func TestStableStore_SeparateFromLog(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	key := logKey(1)
	if err := s.Set(key, []byte("not a log entry")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if first, _ := s.FirstIndex(); first != 0 {
		t.Errorf("FirstIndex after Set = %d, want 0", first)
	}
	var l raft.Log
	if err := s.GetLog(1, &l); err != raft.ErrLogNotFound {
		t.Errorf("GetLog(1) after Set = %v, want raft.ErrLogNotFound", err)
	}
}
