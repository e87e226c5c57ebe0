package node

import (
	"testing"
	"time"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// retainedEntry returns a retained update for topic at wall ms wall from
// site; an empty payload is a delete.
func retainedEntry(topic, payload string, wall int64, site string) *clusterpb.ForwardMessage {
	return &clusterpb.ForwardMessage{
		Topic: topic, Payload: []byte(payload), Retain: true, Qos: 1,
		RetainedClock: &clusterpb.HLC{WallMs: wall, SiteId: site},
	}
}

// retainedPayload returns the payload retained for topic, and whether
// there is one.
func retainedPayload(s *Server, topic string) (string, bool) {
	m, ok := s.retained.Get(topic)
	if !ok {
		return "", false
	}
	return string(m.payload), true
}

func mustMerge(t *testing.T, s *Server, entries ...*clusterpb.ForwardMessage) (applied, ignored int) {
	t.Helper()
	applied, ignored, err := s.MergeRetained(entries, 0)
	if err != nil {
		t.Fatalf("MergeRetained: %v", err)
	}
	return applied, ignored
}

func TestRetainedMerge_LastWriterWins(t *testing.T) {
	now := time.Now().UnixMilli()
	tests := []struct {
		name      string
		entries   []*clusterpb.ForwardMessage
		want      string // "" means no retained message
		wantApply int
	}{
		{"newer-replaces", []*clusterpb.ForwardMessage{
			retainedEntry("t", "old", now, "a"), retainedEntry("t", "new", now+1, "a")}, "new", 2},
		{"older-ignored", []*clusterpb.ForwardMessage{
			retainedEntry("t", "new", now+1, "a"), retainedEntry("t", "old", now, "a")}, "new", 1},
		{"site-breaks-tie", []*clusterpb.ForwardMessage{
			retainedEntry("t", "from-b", now, "b"), retainedEntry("t", "from-a", now, "a")}, "from-b", 1},
		{"tombstone-deletes", []*clusterpb.ForwardMessage{
			retainedEntry("t", "v", now, "a"), retainedEntry("t", "", now+1, "b")}, "", 2},
		{"tombstone-blocks-older-write", []*clusterpb.ForwardMessage{
			retainedEntry("t", "", now+5, "b"), retainedEntry("t", "late", now+1, "a")}, "", 1},
		{"write-after-tombstone", []*clusterpb.ForwardMessage{
			retainedEntry("t", "", now+5, "b"), retainedEntry("t", "back", now+6, "a")}, "back", 2},
		{"same-write-twice", []*clusterpb.ForwardMessage{
			retainedEntry("t", "v", now, "a"), retainedEntry("t", "v", now, "a")}, "v", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testServer(t, "", nil)
			applied := 0
			for _, e := range tt.entries {
				// One merge per entry, as separate stream batches arrive.
				n, _ := mustMerge(t, s, e)
				applied += n
			}
			got, ok := retainedPayload(s, "t")
			if tt.want == "" && ok {
				t.Errorf("retained = %q, want none", got)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("retained = %q (present %v), want %q", got, ok, tt.want)
			}
			if applied != tt.wantApply {
				t.Errorf("applied = %d, want %d", applied, tt.wantApply)
			}
		})
	}
}

func TestRetainedMerge_OneBatchKeepsLatest(t *testing.T) {
	now := time.Now().UnixMilli()
	s := testServer(t, "", nil)
	mustMerge(t, s, retainedEntry("t", "new", now+2, "a"), retainedEntry("t", "old", now+1, "a"))
	if got, _ := retainedPayload(s, "t"); got != "new" {
		t.Errorf("retained = %q, want new", got)
	}
}

func TestRetainedMerge_SurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UnixMilli()
	s := testServer(t, dir, nil)
	mustMerge(t, s, retainedEntry("keep", "v", now, "a"), retainedEntry("gone", "x", now, "a"),
		retainedEntry("gone", "", now+1, "b"))
	stopServer(t, s)

	s = testServer(t, dir, nil)
	if got, _ := retainedPayload(s, "keep"); got != "v" {
		t.Errorf("keep = %q after restart, want v", got)
	}
	if _, ignored := mustMerge(t, s, retainedEntry("gone", "x", now, "a")); ignored != 1 {
		t.Errorf("a write older than the restored tombstone was not ignored")
	}
	if got, ok := retainedPayload(s, "gone"); ok {
		t.Errorf("gone = %q after restart, want deleted", got)
	}
}

func TestRetainedDigest_EqualAfterSameWritesInAnyOrder(t *testing.T) {
	now := time.Now().UnixMilli()
	entries := []*clusterpb.ForwardMessage{
		retainedEntry("a/1", "x", now, "a"), retainedEntry("a/2", "y", now+1, "b"),
		retainedEntry("a/1", "z", now+2, "b"), retainedEntry("a/3", "", now+3, "a"),
	}
	s1 := testServer(t, "", nil)
	s2 := testServer(t, "", nil)
	mustMerge(t, s1, entries...)
	for i := len(entries) - 1; i >= 0; i-- {
		mustMerge(t, s2, entries[i])
	}
	for _, buckets := range []uint32{1, 16, 4096} {
		d1, err := s1.RetainedDigest(buckets)
		if err != nil {
			t.Fatalf("RetainedDigest(%d): %v", buckets, err)
		}
		d2, _ := s2.RetainedDigest(buckets)
		for i := range d1 {
			if d1[i] != d2[i] {
				t.Errorf("buckets=%d: bucket %d differs: %x and %x", buckets, i, d1[i], d2[i])
			}
		}
	}

	// One more write shows in exactly one bucket.
	mustMerge(t, s2, retainedEntry("a/4", "w", now+4, "a"))
	d1, _ := s1.RetainedDigest(256)
	d2, _ := s2.RetainedDigest(256)
	var differ []uint32
	for i := range d1 {
		if d1[i] != d2[i] {
			differ = append(differ, uint32(i))
		}
	}
	if len(differ) != 1 || differ[0] != digestBucket("a/4")&255 {
		t.Fatalf("differing buckets = %v, want only the bucket of a/4 (%d)", differ, digestBucket("a/4")&255)
	}

	// Fetching the differing bucket from s2 repairs s1.
	var fetched []*clusterpb.ForwardMessage
	if err := s2.RetainedEntries(256, differ, func(m *clusterpb.ForwardMessage) error {
		fetched = append(fetched, m)
		return nil
	}); err != nil {
		t.Fatalf("RetainedEntries: %v", err)
	}
	mustMerge(t, s1, fetched...)
	d1, _ = s1.RetainedDigest(256)
	for i := range d1 {
		if d1[i] != d2[i] {
			t.Errorf("bucket %d still differs after the repair", i)
		}
	}
}

func TestRetainedDigest_InvalidBuckets(t *testing.T) {
	s := testServer(t, "", nil)
	for _, n := range []uint32{0, 3, 8192} {
		if _, err := s.RetainedDigest(n); err == nil {
			t.Errorf("RetainedDigest(%d) = nil error, want invalid", n)
		}
	}
}

func TestRetainedPrune_DropsTombstonesPastHorizon(t *testing.T) {
	now := time.Now()
	s := testServer(t, "", nil)
	mustMerge(t, s, retainedEntry("old", "v", now.Add(-3*time.Hour).UnixMilli(), "a"),
		retainedEntry("old", "", now.Add(-2*time.Hour).UnixMilli(), "a"),
		retainedEntry("recent", "v", now.UnixMilli(), "a"),
		retainedEntry("recent", "", now.UnixMilli()+1, "a"))
	if err := s.PruneRetained(time.Hour); err != nil {
		t.Fatalf("PruneRetained: %v", err)
	}
	var topics []string
	if err := s.RetainedEntries(1, nil, func(m *clusterpb.ForwardMessage) error {
		topics = append(topics, m.Topic)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(topics) != 1 || topics[0] != "recent" {
		t.Errorf("entries after pruning = %v, want only the recent tombstone", topics)
	}

	// A delete older than the horizon removes a message without a tombstone.
	mustMerge(t, s, retainedEntry("x", "v", now.Add(-48*time.Hour).UnixMilli(), "a"))
	mustMerge(t, s, retainedEntry("x", "", now.Add(-47*time.Hour).UnixMilli(), "b"))
	if _, ok := retainedPayload(s, "x"); ok {
		t.Error("x still retained after a delete past the horizon")
	}
}

func TestRetainedMerge_StaleSnapshotDropsDeletedElsewhere(t *testing.T) {
	now := time.Now()
	s := testServer(t, "", nil)
	lastSync := now.Add(-30 * time.Hour)
	mustMerge(t, s, retainedEntry("deleted-elsewhere", "v", lastSync.Add(-time.Hour).UnixMilli(), "a"),
		retainedEntry("own-new", "mine", now.UnixMilli(), "self"))
	snapshot := []*clusterpb.ForwardMessage{retainedEntry("other", "o", now.UnixMilli(), "b")}
	if _, _, err := s.MergeRetained(snapshot, lastSync.UnixMilli()); err != nil {
		t.Fatalf("MergeRetained: %v", err)
	}
	if _, ok := retainedPayload(s, "deleted-elsewhere"); ok {
		t.Error("a topic missing from the snapshot and older than the last sync survived")
	}
	if got, _ := retainedPayload(s, "own-new"); got != "mine" {
		t.Errorf("own-new = %q, want this node's newer write kept", got)
	}
	if got, _ := retainedPayload(s, "other"); got != "o" {
		t.Errorf("other = %q, want the snapshot's message", got)
	}
}
