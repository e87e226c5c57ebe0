package storage

import (
	"errors"
	"testing"
)

func loadRetainedRecords(t *testing.T, s *Store) map[string]*RetainedRecord {
	t.Helper()
	out := make(map[string]*RetainedRecord)
	if err := s.RetainedRecords(func(r *RetainedRecord) error {
		out[r.Topic] = r
		return nil
	}); err != nil {
		t.Fatalf("RetainedRecords: %v", err)
	}
	return out
}

func TestRetainedRecord_RoundTrip(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	clock := RetainedClock{WallMS: 1_700_000_000_123, Logical: 7, SiteID: "site-a"}
	b := s.NewBatch()
	b.PutRetainedRecord(&RetainedRecord{
		Message: Message{ID: 9, Topic: "a/b", Payload: []byte("on"), QoS: 1, Retain: true, ExpiresAt: 42, PublisherID: "c1"},
		Clock:   clock,
	})
	b.PutRetainedRecord(&RetainedRecord{Message: Message{Topic: "a/gone"}, Clock: clock, Tombstone: true})
	mustCommit(t, b)

	got := loadRetainedRecords(t, s)
	r := got["a/b"]
	if r == nil {
		t.Fatal("record a/b not loaded")
	}
	if r.Clock != clock {
		t.Errorf("clock = %+v, want %+v", r.Clock, clock)
	}
	if r.Tombstone {
		t.Error("a/b loaded as a tombstone")
	}
	if string(r.Payload) != "on" || r.QoS != 1 || r.ID != 9 || r.ExpiresAt != 42 || r.PublisherID != "c1" {
		t.Errorf("message = %+v, want the one written", r.Message)
	}
	tomb := got["a/gone"]
	if tomb == nil || !tomb.Tombstone {
		t.Fatalf("a/gone = %+v, want a tombstone", tomb)
	}
	if tomb.Clock != clock {
		t.Errorf("tombstone clock = %+v, want %+v", tomb.Clock, clock)
	}

	// Retained, the single-node loader, skips tombstones.
	var topics []string
	if err := s.Retained(func(m *Message) error { topics = append(topics, m.Topic); return nil }); err != nil {
		t.Fatalf("Retained: %v", err)
	}
	if len(topics) != 1 || topics[0] != "a/b" {
		t.Errorf("Retained topics = %v, want [a/b]", topics)
	}
}

func TestRetainedRecord_OldRecordReadsAsClockZero(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	b.PutRetained(&Message{ID: 3, Topic: "old", Payload: []byte("v1"), Retain: true})
	mustCommit(t, b)

	r := loadRetainedRecords(t, s)["old"]
	if r == nil {
		t.Fatal("old record not loaded")
	}
	if !r.Clock.IsZero() {
		t.Errorf("clock = %+v, want zero", r.Clock)
	}
	if r.Tombstone || string(r.Payload) != "v1" {
		t.Errorf("record = %+v, want the message v1", r)
	}
}

func TestRetainedRecord_CorruptValue(t *testing.T) {
	for name, value := range map[string][]byte{
		"unknown-version": {9, 0},
		"unknown-flag":    {retainedRecordVersion, 0x80, 0, 0, 0},
		"truncated":       {retainedRecordVersion, 0},
	} {
		t.Run(name, func(t *testing.T) {
			var r RetainedRecord
			if err := decodeRetainedRecord(value, &r); !errors.Is(err, ErrCorrupt) {
				t.Errorf("decode = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestRetainedClock_Compare(t *testing.T) {
	base := RetainedClock{WallMS: 100, Logical: 1, SiteID: "b"}
	tests := []struct {
		name  string
		other RetainedClock
		want  int
	}{
		{"equal", base, 0},
		{"later-wall", RetainedClock{WallMS: 101, SiteID: "a"}, -1},
		{"later-logical", RetainedClock{WallMS: 100, Logical: 2, SiteID: "a"}, -1},
		{"site-tie-break-higher", RetainedClock{WallMS: 100, Logical: 1, SiteID: "c"}, -1},
		{"site-tie-break-lower", RetainedClock{WallMS: 100, Logical: 1, SiteID: "a"}, 1},
		{"zero-is-oldest", RetainedClock{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := base.Compare(tt.other); got != tt.want {
				t.Errorf("Compare(%+v) = %d, want %d", tt.other, got, tt.want)
			}
		})
	}
}

func TestRetainedSync_RoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	b.PutRetainedSync("site-a", 1000)
	b.PutRetainedSync("site-b", 2000)
	b.PutRetainedSync("site-a", 3000)
	mustCommit(t, b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, testConfig(dir))
	got, err := s.RetainedSyncs()
	if err != nil {
		t.Fatalf("RetainedSyncs: %v", err)
	}
	if len(got) != 2 || got["site-a"] != 3000 || got["site-b"] != 2000 {
		t.Errorf("RetainedSyncs = %v, want site-a 3000 and site-b 2000", got)
	}
}
