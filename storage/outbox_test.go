package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
)

type outboxEntry struct {
	seq   uint64
	value string
}

func putOutbox(t testing.TB, s *Store, site string, seqs ...uint64) {
	t.Helper()
	b := s.NewBatch()
	for _, seq := range seqs {
		b.PutOutbox(site, seq, []byte(fmt.Sprintf("m%d", seq)))
	}
	mustCommit(t, b)
}

func scanOutbox(t testing.TB, s *Store, site string, after uint64, limit int) []outboxEntry {
	t.Helper()
	var out []outboxEntry
	err := s.ScanOutbox(site, after, limit, func(seq uint64, value []byte) error {
		out = append(out, outboxEntry{seq, string(value)})
		return nil
	})
	if err != nil {
		t.Fatalf("ScanOutbox(%q, %d, %d): %v", site, after, limit, err)
	}
	return out
}

func seqsOf(entries []outboxEntry) []uint64 {
	var seqs []uint64
	for _, e := range entries {
		seqs = append(seqs, e.seq)
	}
	return seqs
}

func TestOutbox_ScanInSeqOrder(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	putOutbox(t, s, "b", 300, 2, 1<<40, 7)
	putOutbox(t, s, "a", 5)
	putOutbox(t, s, "bb", 1)

	tests := []struct {
		name  string
		after uint64
		limit int
		want  []uint64
	}{
		{"all", 0, 0, []uint64{2, 7, 300, 1 << 40}},
		{"after", 7, 0, []uint64{300, 1 << 40}},
		{"limit", 0, 2, []uint64{2, 7}},
		{"after-and-limit", 2, 1, []uint64{7}},
		{"after-last", 1 << 40, 0, nil},
		{"after-max", math.MaxUint64, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := seqsOf(scanOutbox(t, s, "b", tt.after, tt.limit))
			if !slices.Equal(got, tt.want) {
				t.Errorf("seqs = %v, want %v", got, tt.want)
			}
		})
	}

	entries := scanOutbox(t, s, "b", 0, 1)
	if entries[0].value != "m2" {
		t.Errorf("value of seq 2 = %q, want %q", entries[0].value, "m2")
	}
}

func TestOutbox_ScanStopsWithCallerError(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	putOutbox(t, s, "b", 1, 2, 3)
	errDone := errors.New("done")
	var seen []uint64
	err := s.ScanOutbox("b", 0, 0, func(seq uint64, _ []byte) error {
		seen = append(seen, seq)
		if seq == 2 {
			return errDone
		}
		return nil
	})
	if err != errDone {
		t.Errorf("ScanOutbox error = %v, want the callback's error unchanged", err)
	}
	if !slices.Equal(seen, []uint64{1, 2}) {
		t.Errorf("seen = %v, want [1 2]", seen)
	}
}

func TestOutbox_DeleteThroughUpdatesStats(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	putOutbox(t, s, "b", 1, 2, 3, 10)
	putOutbox(t, s, "c", 1)

	if got, want := s.OutboxStats("b"), (OutboxStats{Depth: 4, Bytes: 9}); got != want {
		t.Errorf("stats before delete = %+v, want %+v", got, want)
	}
	if err := s.DeleteOutboxThrough("b", 3); err != nil {
		t.Fatalf("DeleteOutboxThrough: %v", err)
	}
	if got := seqsOf(scanOutbox(t, s, "b", 0, 0)); !slices.Equal(got, []uint64{10}) {
		t.Errorf("seqs after delete = %v, want [10]", got)
	}
	if got, want := s.OutboxStats("b"), (OutboxStats{Depth: 1, Bytes: 3}); got != want {
		t.Errorf("stats after delete = %+v, want %+v", got, want)
	}
	if got := s.OutboxStats("c"); got.Depth != 1 {
		t.Errorf("depth of another site = %d, want 1", got.Depth)
	}

	if err := s.DeleteOutboxThrough("b", 5); err != nil {
		t.Fatalf("DeleteOutboxThrough of an empty range: %v", err)
	}
	if err := s.DeleteOutboxThrough("b", math.MaxUint64); err != nil {
		t.Fatalf("DeleteOutboxThrough(max): %v", err)
	}
	if got := s.OutboxStats("b"); got != (OutboxStats{}) {
		t.Errorf("stats after deleting all = %+v, want zero", got)
	}
	sites, err := s.OutboxSites()
	if err != nil {
		t.Fatalf("OutboxSites: %v", err)
	}
	if !slices.Equal(sites, []string{"c"}) {
		t.Errorf("OutboxSites = %v, want [c]", sites)
	}
}

func TestOutbox_DropKeepsSeqCeiling(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	if _, err := s.ReserveForwardSeq("b", 100); err != nil {
		t.Fatalf("ReserveForwardSeq: %v", err)
	}
	putOutbox(t, s, "b", 1, 2)
	putOutbox(t, s, "c", 1)

	dropped, err := s.DropOutbox("b")
	if err != nil {
		t.Fatalf("DropOutbox: %v", err)
	}
	if want := (OutboxStats{Depth: 2, Bytes: 4}); dropped != want {
		t.Errorf("DropOutbox returned %+v, want %+v", dropped, want)
	}
	if got := scanOutbox(t, s, "b", 0, 0); len(got) != 0 {
		t.Errorf("entries after drop = %v, want none", got)
	}
	if got := scanOutbox(t, s, "c", 0, 0); len(got) != 1 {
		t.Errorf("entries of another site after drop = %v, want 1", got)
	}
	ceiling, err := s.ReserveForwardSeq("b", 100)
	if err != nil {
		t.Fatalf("ReserveForwardSeq after drop: %v", err)
	}
	if ceiling != 200 {
		t.Errorf("ceiling after drop = %d, want 200", ceiling)
	}
}

func TestOutbox_ReopenRestoresEntriesAndStats(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(testConfig(dir))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	putOutbox(t, s, "b", 1, 2, 3)
	putOutbox(t, s, "c", 9)
	if err := s.DeleteOutboxThrough("b", 1); err != nil {
		t.Fatalf("DeleteOutboxThrough: %v", err)
	}
	b := s.NewBatch()
	b.PutForwardHighWater("b", 42)
	mustCommit(t, b)
	if _, err := s.ReserveForwardSeq("b", 10); err != nil {
		t.Fatalf("ReserveForwardSeq: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openStore(t, testConfig(dir))
	if got := seqsOf(scanOutbox(t, s, "b", 0, 0)); !slices.Equal(got, []uint64{2, 3}) {
		t.Errorf("seqs after reopen = %v, want [2 3]", got)
	}
	if got, want := s.OutboxStats("b"), (OutboxStats{Depth: 2, Bytes: 4}); got != want {
		t.Errorf("stats of b after reopen = %+v, want %+v", got, want)
	}
	if got, want := s.OutboxStats("c"), (OutboxStats{Depth: 1, Bytes: 2}); got != want {
		t.Errorf("stats of c after reopen = %+v, want %+v", got, want)
	}
	sites, err := s.OutboxSites()
	if err != nil {
		t.Fatalf("OutboxSites: %v", err)
	}
	if !reflect.DeepEqual(sites, []string{"b", "c"}) {
		t.Errorf("OutboxSites after reopen = %v, want [b c]", sites)
	}
	hw, err := s.ForwardHighWater("b")
	if err != nil {
		t.Fatalf("ForwardHighWater: %v", err)
	}
	if hw != 42 {
		t.Errorf("high-water after reopen = %d, want 42", hw)
	}
	ceiling, err := s.ReserveForwardSeq("b", 10)
	if err != nil {
		t.Fatalf("ReserveForwardSeq after reopen: %v", err)
	}
	if ceiling != 20 {
		t.Errorf("ceiling after reopen = %d, want 20", ceiling)
	}
}

func TestOutbox_HighWaterDefaultsToZero(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	hw, err := s.ForwardHighWater("never")
	if err != nil {
		t.Fatalf("ForwardHighWater: %v", err)
	}
	if hw != 0 {
		t.Errorf("high-water of an unknown site = %d, want 0", hw)
	}
}

func TestOutbox_ReserveForwardSeqGrows(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	var got []uint64
	for _, block := range []uint64{5, 5, 1} {
		c, err := s.ReserveForwardSeq("b", block)
		if err != nil {
			t.Fatalf("ReserveForwardSeq(%d): %v", block, err)
		}
		got = append(got, c)
	}
	if !slices.Equal(got, []uint64{5, 10, 11}) {
		t.Errorf("ceilings = %v, want [5 10 11]", got)
	}
	other, err := s.ReserveForwardSeq("c", 5)
	if err != nil {
		t.Fatalf("ReserveForwardSeq of another site: %v", err)
	}
	if other != 5 {
		t.Errorf("ceiling of another site = %d, want 5", other)
	}
	if _, err := s.ReserveForwardSeq("b", 0); err == nil {
		t.Error("ReserveForwardSeq with block 0 succeeded")
	}
}

func TestOutbox_RejectsInvalidSiteID(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	for _, site := range []string{"", "a\x00b"} {
		t.Run(fmt.Sprintf("%q", site), func(t *testing.T) {
			b := s.NewBatch()
			defer b.Close()
			b.PutOutbox(site, 1, []byte("x"))
			if err := b.Commit(); err == nil {
				t.Error("Commit of PutOutbox succeeded")
			}
			if err := s.ScanOutbox(site, 0, 0, func(uint64, []byte) error { return nil }); err == nil {
				t.Error("ScanOutbox succeeded")
			}
			if err := s.DeleteOutboxThrough(site, 1); err == nil {
				t.Error("DeleteOutboxThrough succeeded")
			}
			if _, err := s.ReserveForwardSeq(site, 1); err == nil {
				t.Error("ReserveForwardSeq succeeded")
			}
			if _, err := s.ForwardHighWater(site); err == nil {
				t.Error("ForwardHighWater succeeded")
			}
		})
	}
}

func TestOutbox_FailedBatchIsNotCounted(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	b.PutOutbox("b", 1, []byte("x"))
	b.PutOutbox("", 2, []byte("y"))
	if err := b.Commit(); err == nil {
		t.Fatal("Commit with an invalid site id succeeded")
	}
	b.Close()
	if got := s.OutboxStats("b"); got != (OutboxStats{}) {
		t.Errorf("stats after a rejected batch = %+v, want zero", got)
	}
}

func TestOutbox_ValueIsCopied(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	value := []byte("before")
	b := s.NewBatch()
	b.PutOutbox("b", 1, value)
	copy(value, "AFTER!")
	mustCommit(t, b)
	var got []byte
	err := s.ScanOutbox("b", 0, 0, func(_ uint64, v []byte) error {
		got = bytes.Clone(v)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanOutbox: %v", err)
	}
	if string(got) != "before" {
		t.Errorf("stored value = %q, want %q", got, "before")
	}
}

func TestOutbox_ClosedStore(t *testing.T) {
	s, err := Open(testConfig(t.TempDir()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.OutboxSites(); !errors.Is(err, ErrClosed) {
		t.Errorf("OutboxSites after Close = %v, want ErrClosed", err)
	}
	if err := s.ScanOutbox("b", 0, 0, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("ScanOutbox after Close = %v, want ErrClosed", err)
	}
	if _, err := s.ReserveForwardSeq("b", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("ReserveForwardSeq after Close = %v, want ErrClosed", err)
	}
}
