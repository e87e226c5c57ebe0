package storage

import (
	"sync"
	"testing"
)

func TestNextID_MonotonicAndUnique(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	prev := uint64(0)
	for range 3 * idBlock {
		id := s.NextID()
		if id <= prev {
			t.Fatalf("NextID = %d after %d", id, prev)
		}
		prev = id
	}
}

func TestNextID_ConcurrentUnique(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	const goroutines, each = 8, idBlock / 2
	results := make([][]uint64, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := make([]uint64, each)
			for i := range ids {
				ids[i] = s.NextID()
				if ids[i] == 0 {
					t.Error("NextID = 0")
					return
				}
				if i > 0 && ids[i] <= ids[i-1] {
					t.Errorf("NextID not increasing within a goroutine: %d after %d", ids[i], ids[i-1])
					return
				}
			}
			results[g] = ids
		}()
	}
	wg.Wait()
	seen := make(map[uint64]bool, goroutines*each)
	for _, ids := range results {
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			seen[id] = true
		}
	}
}

func TestNextID_AboveAllAfterReopen(t *testing.T) {
	dir := t.TempDir()
	var last uint64
	for round := range 3 {
		s, err := Open(testConfig(dir))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		for i := range 1000 + round*idBlock {
			id := s.NextID()
			if id <= last {
				t.Fatalf("round %d: NextID = %d, not above %d (call %d)", round, id, last, i)
			}
			last = id
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestNextID_StartsAtOne(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	if id := s.NextID(); id != 1 {
		t.Errorf("first NextID = %d, want 1", id)
	}
}
