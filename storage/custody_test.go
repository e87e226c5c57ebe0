package storage

import (
	"bytes"
	"testing"
	"time"
)

func custodyEntries(t testing.TB, s *Store) []CustodyEntry {
	t.Helper()
	var out []CustodyEntry
	if err := s.Custody(func(e CustodyEntry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("Custody: %v", err)
	}
	return out
}

func TestCustody_PutReplaceDelete(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	since := time.UnixMilli(1_700_000_000_123)

	b := s.NewBatch()
	b.PutCustody(7, "site-a", since, []byte("m7"))
	b.PutCustody(3, "site-b", since, []byte("m3"))
	mustCommit(t, b)
	got := custodyEntries(t, s)
	if len(got) != 2 || got[0].MessageID != 3 || got[1].MessageID != 7 {
		t.Fatalf("entries %+v, want ids 3 and 7 in order", got)
	}
	if got[1].Site != "site-a" || !got[1].Since.Equal(since) || !bytes.Equal(got[1].Message, []byte("m7")) {
		t.Fatalf("entry 7 is %+v", got[1])
	}

	// The message moved to another node: the entry is replaced.
	b = s.NewBatch()
	b.PutCustody(7, "site-c", since, []byte("m7"))
	mustCommit(t, b)
	if got := custodyEntries(t, s); len(got) != 2 || got[1].Site != "site-c" {
		t.Fatalf("after the move: %+v", got)
	}

	if err := s.DeleteCustody([]uint64{3, 7, 99}); err != nil {
		t.Fatal(err)
	}
	if got := custodyEntries(t, s); len(got) != 0 {
		t.Fatalf("after the delete: %+v", got)
	}
}

func TestCustody_InvalidSiteFailsTheBatch(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	defer b.Close()
	b.PutCustody(1, "bad\x00site", time.Now(), nil)
	if err := b.Commit(); err == nil {
		t.Fatal("a custody entry with U+0000 in its site id committed")
	}
}

// FuzzDecodeCustody feeds arbitrary keys and values to the custody decoder,
// which must return an error or an entry, never panic.
func FuzzDecodeCustody(f *testing.F) {
	b := &Batch{}
	b.key = appendCustodyKey(nil, 42)
	f.Add(b.key, []byte{recordVersion, 0x80, 0x01, 0x03, 'a', 'b', 'c', 'm'})
	f.Add([]byte{kindCustody}, []byte{})
	f.Add(b.key, []byte{recordVersion, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		e, err := decodeCustody(key, value)
		if err == nil && len(e.Site) > len(value) {
			t.Fatalf("site id longer than the value: %q", e.Site)
		}
	})
}
