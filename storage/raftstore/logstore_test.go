package raftstore

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// logOp is one step of a log store test: store entries lo..hi at term, or
// delete lo..hi when del is set.
type logOp struct {
	del    bool
	lo, hi uint64
	term   uint64
}

func storeOp(lo, hi, term uint64) logOp { return logOp{lo: lo, hi: hi, term: term} }
func deleteOp(lo, hi uint64) logOp      { return logOp{del: true, lo: lo, hi: hi} }

// logModel is the expected content of a log store: index to term.
type logModel map[uint64]uint64

func (m logModel) apply(op logOp) {
	if op.del {
		for idx := range m {
			if idx >= op.lo && idx <= op.hi {
				delete(m, idx)
			}
		}
		return
	}
	for i := op.lo; ; i++ {
		m[i] = op.term
		if i == op.hi {
			return
		}
	}
}

// bounds returns the lowest and highest index in m, or 0, 0.
func (m logModel) bounds() (first, last uint64) {
	for idx := range m {
		if first == 0 || idx < first {
			first = idx
		}
		last = max(last, idx)
	}
	return first, last
}

func applyOp(t *testing.T, s *Store, op logOp) {
	t.Helper()
	if op.del {
		if err := s.DeleteRange(op.lo, op.hi); err != nil {
			t.Fatalf("DeleteRange(%d, %d): %v", op.lo, op.hi, err)
		}
		return
	}
	var logs []*raft.Log
	for i := op.lo; ; i++ {
		logs = append(logs, testLog(i, op.term))
		if i == op.hi {
			break
		}
	}
	if len(logs) == 1 {
		if err := s.StoreLog(logs[0]); err != nil {
			t.Fatalf("StoreLog(%d): %v", op.lo, err)
		}
		return
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs(%d..%d): %v", op.lo, op.hi, err)
	}
}

// checkModel checks the bounds of s, every entry of want, and that the
// indexes in probe that want lacks are missing.
func checkModel(t *testing.T, s *Store, want logModel, probe []uint64) {
	t.Helper()
	wantFirst, wantLast := want.bounds()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	if first != wantFirst {
		t.Errorf("FirstIndex = %d, want %d", first, wantFirst)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if last != wantLast {
		t.Errorf("LastIndex = %d, want %d", last, wantLast)
	}

	for idx, term := range want {
		var got raft.Log
		if err := s.GetLog(idx, &got); err != nil {
			t.Errorf("GetLog(%d): %v", idx, err)
			continue
		}
		if exp := testLog(idx, term); !logsEqual(&got, exp) {
			t.Errorf("GetLog(%d) = %s, want %s", idx, formatLog(&got), formatLog(exp))
		}
	}
	for _, idx := range probe {
		if _, ok := want[idx]; ok {
			continue
		}
		var got raft.Log
		if err := s.GetLog(idx, &got); err != raft.ErrLogNotFound {
			t.Errorf("GetLog(%d) of a missing entry = %v, want raft.ErrLogNotFound itself", idx, err)
		}
	}
}

func TestLogStore_Contract(t *testing.T) {
	const maxIdx = math.MaxUint64
	tests := []struct {
		name  string
		ops   []logOp
		probe []uint64
	}{
		{name: "empty", probe: []uint64{0, 1, 2, maxIdx}},
		{name: "store-one", ops: []logOp{storeOp(1, 1, 1)}, probe: []uint64{0, 2}},
		{name: "store-batch", ops: []logOp{storeOp(1, 10, 1)}, probe: []uint64{0, 11}},
		{name: "store-one-by-one", ops: []logOp{storeOp(1, 1, 1), storeOp(2, 2, 1), storeOp(3, 3, 1)}, probe: []uint64{4}},
		{name: "start-above-one", ops: []logOp{storeOp(100, 110, 3)}, probe: []uint64{1, 99, 111}},
		{name: "delete-head", ops: []logOp{storeOp(1, 10, 1), deleteOp(1, 3)}, probe: []uint64{1, 2, 3}},
		{name: "delete-head-below-first", ops: []logOp{storeOp(5, 10, 1), deleteOp(1, 6)}, probe: []uint64{5, 6}},
		{name: "delete-tail", ops: []logOp{storeOp(1, 10, 1), deleteOp(8, 10)}, probe: []uint64{8, 9, 10}},
		{name: "delete-tail-past-last", ops: []logOp{storeOp(1, 10, 1), deleteOp(8, maxIdx)}, probe: []uint64{8, 10, 11}},
		{name: "delete-middle", ops: []logOp{storeOp(1, 10, 1), deleteOp(4, 6)}, probe: []uint64{4, 5, 6}},
		{name: "delete-all", ops: []logOp{storeOp(1, 10, 1), deleteOp(1, 10)}, probe: []uint64{1, 10}},
		{name: "delete-everything", ops: []logOp{storeOp(1, 10, 1), deleteOp(0, maxIdx)}, probe: []uint64{1, 10}},
		{name: "delete-empty-store", ops: []logOp{deleteOp(1, 10)}, probe: []uint64{1}},
		{name: "delete-beyond-last", ops: []logOp{storeOp(1, 10, 1), deleteOp(20, 30)}, probe: []uint64{20}},
		{name: "delete-before-first", ops: []logOp{storeOp(10, 20, 1), deleteOp(1, 5)}, probe: []uint64{1}},
		{name: "delete-min-above-max", ops: []logOp{storeOp(1, 10, 1), deleteOp(6, 5)}},
		{name: "delete-single-first", ops: []logOp{storeOp(1, 10, 1), deleteOp(1, 1)}, probe: []uint64{1}},
		{name: "delete-single-last", ops: []logOp{storeOp(1, 10, 1), deleteOp(10, 10)}, probe: []uint64{10}},
		{name: "overwrite", ops: []logOp{storeOp(1, 5, 1), storeOp(3, 5, 2)}},
		{name: "overwrite-below-first", ops: []logOp{storeOp(5, 10, 1), storeOp(2, 3, 2)}, probe: []uint64{1, 4}},
		{name: "truncate-and-rewrite", ops: []logOp{storeOp(1, 10, 1), deleteOp(6, 10), storeOp(6, 8, 2)}, probe: []uint64{9, 10}},
		{name: "gap", ops: []logOp{storeOp(1, 5, 1), storeOp(10, 12, 2)}, probe: []uint64{6, 9, 13}},
		{name: "delete-head-into-gap", ops: []logOp{storeOp(1, 3, 1), storeOp(10, 12, 2), deleteOp(1, 5)}, probe: []uint64{1, 3, 5}},
		{name: "delete-tail-into-gap", ops: []logOp{storeOp(1, 3, 1), storeOp(10, 12, 2), deleteOp(5, 12)}, probe: []uint64{10, 12}},
		{name: "delete-gap-only", ops: []logOp{storeOp(1, 3, 1), storeOp(10, 12, 2), deleteOp(4, 9)}},
		{name: "compact-then-append", ops: []logOp{storeOp(1, 100, 1), deleteOp(1, 90), storeOp(101, 150, 2)}, probe: []uint64{1, 90, 151}},
		{name: "large-batch", ops: []logOp{storeOp(1, 5000, 7)}, probe: []uint64{5001}},
		{name: "max-index", ops: []logOp{storeOp(maxIdx-2, maxIdx, 1), deleteOp(maxIdx, maxIdx)}, probe: []uint64{maxIdx}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			s := openStore(t, cfg)
			want := logModel{}
			for _, op := range tt.ops {
				applyOp(t, s, op)
				want.apply(op)
			}
			checkModel(t, s, want, tt.probe)

			s = reopen(t, s, cfg)
			checkModel(t, s, want, tt.probe)
		})
	}
}

// TestLogStore_RandomOps compares the store with a model over random
// stores, overwrites and range deletions, including gaps, and reopens it
// now and then.
func TestLogStore_RandomOps(t *testing.T) {
	const steps = 300
	cfg := testConfig(t.TempDir())
	cfg.NoSync = true
	s := openStore(t, cfg)
	rng := rand.New(rand.NewPCG(1, 2))
	want := logModel{}
	probe := make([]uint64, 0, 202)
	for i := range uint64(202) {
		probe = append(probe, i)
	}

	for step := range steps {
		lo := 1 + rng.Uint64N(200)
		hi := lo + rng.Uint64N(20)
		op := storeOp(lo, hi, uint64(step+1))
		if rng.IntN(3) == 0 {
			op = deleteOp(lo, hi)
		}
		applyOp(t, s, op)
		want.apply(op)

		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		if wantFirst, wantLast := want.bounds(); first != wantFirst || last != wantLast {
			t.Fatalf("step %d (%+v): bounds = %d, %d, want %d, %d", step, op, first, last, wantFirst, wantLast)
		}
		if step%50 == 49 {
			s = reopen(t, s, cfg)
		}
	}
	checkModel(t, s, want, probe)
}

func TestLogStore_StoreLogsRejects(t *testing.T) {
	tests := []struct {
		name string
		logs []*raft.Log
	}{
		{name: "index-zero", logs: []*raft.Log{testLog(1, 1), {Index: 0, Term: 1}}},
		{name: "nil-entry", logs: []*raft.Log{testLog(1, 1), nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, testConfig(t.TempDir()))
			if err := s.StoreLogs(tt.logs); err == nil {
				t.Fatal("StoreLogs returned nil, want an error")
			}
			var got raft.Log
			if err := s.GetLog(1, &got); err != raft.ErrLogNotFound {
				t.Errorf("GetLog(1) after a rejected batch = %v, want raft.ErrLogNotFound", err)
			}
			if last, _ := s.LastIndex(); last != 0 {
				t.Errorf("LastIndex after a rejected batch = %d, want 0", last)
			}
		})
	}
}

func TestLogStore_StoreLogsEmpty(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil): %v", err)
	}
	if last, _ := s.LastIndex(); last != 0 {
		t.Errorf("LastIndex = %d, want 0", last)
	}
}

func TestLogStore_ZeroFields(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	in := &raft.Log{Index: 7}
	if err := s.StoreLog(in); err != nil {
		t.Fatalf("StoreLog: %v", err)
	}
	got := raft.Log{Data: []byte("stale"), Term: 9, AppendedAt: testLog(1, 1).AppendedAt}
	if err := s.GetLog(7, &got); err != nil {
		t.Fatalf("GetLog: %v", err)
	}
	if !logsEqual(&got, in) {
		t.Errorf("GetLog = %s, want %s", formatLog(&got), formatLog(in))
	}
	if !got.AppendedAt.IsZero() {
		t.Errorf("AppendedAt = %v, want the zero time", got.AppendedAt)
	}
}

func TestLogStore_GetLogCopiesData(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	if err := s.StoreLog(testLog(1, 1)); err != nil {
		t.Fatalf("StoreLog: %v", err)
	}
	var a, b raft.Log
	if err := s.GetLog(1, &a); err != nil {
		t.Fatalf("GetLog: %v", err)
	}
	a.Data[0] = 'X'
	a.Data = append(a.Data, "more"...)
	if err := s.GetLog(1, &b); err != nil {
		t.Fatalf("GetLog: %v", err)
	}
	if !logsEqual(&b, testLog(1, 1)) {
		t.Errorf("GetLog after changing an earlier result = %s, want %s", formatLog(&b), formatLog(testLog(1, 1)))
	}
	if string(a.Extensions) != string(testLog(1, 1).Extensions) {
		t.Errorf("appending to Data changed Extensions to %q", a.Extensions)
	}
}

func TestLogStore_CorruptValue(t *testing.T) {
	tests := []struct {
		name string
		val  []byte
	}{
		{name: "empty", val: nil},
		{name: "garbage", val: []byte{0xff, 0x00, 0x01}},
		{name: "wrong-index", val: appendLog(nil, testLog(8, 1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, testConfig(t.TempDir()))
			if err := s.mu.db.Set(logKey(5), tt.val, nil); err != nil {
				t.Fatalf("write corrupt value: %v", err)
			}
			var got raft.Log
			err := s.GetLog(5, &got)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("GetLog = %v, want an error marked ErrCorrupt", err)
			}
		})
	}
}

func TestLogStore_Closed(t *testing.T) {
	s, err := Open(testConfig(t.TempDir()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.StoreLog(testLog(1, 1)); err != nil {
		t.Fatalf("StoreLog: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}

	var l raft.Log
	checks := map[string]error{
		"FirstIndex":  func() error { _, err := s.FirstIndex(); return err }(),
		"LastIndex":   func() error { _, err := s.LastIndex(); return err }(),
		"GetLog":      s.GetLog(1, &l),
		"StoreLog":    s.StoreLog(testLog(2, 1)),
		"StoreLogs":   s.StoreLogs(testLogs(2, 3, 1)),
		"DeleteRange": s.DeleteRange(1, 1),
		"Set":         s.Set([]byte("k"), []byte("v")),
		"Get":         func() error { _, err := s.Get([]byte("k")); return err }(),
		"SetUint64":   s.SetUint64([]byte("k"), 1),
		"GetUint64":   func() error { _, err := s.GetUint64([]byte("k")); return err }(),
	}
	names := make([]string, 0, len(checks))
	for name := range checks {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := checks[name]; !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

// TestLogStore_Concurrent runs readers beside a writer that appends and
// compacts, then closes the store while they run. Under -race it checks
// the locking, and it checks that an entry at a last index that a reader
// saw is missing only if compaction has since passed it.
func TestLogStore_Concurrent(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.NoSync = true
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}

	const batches = 200
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 8)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for b := range uint64(batches) {
			lo := b*10 + 1
			if err := s.StoreLogs(testLogs(lo, lo+9, 1)); err != nil {
				errs <- err
				return
			}
			if b%10 == 9 {
				if err := s.DeleteRange(1, lo-50); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				last, err := s.LastIndex()
				if err != nil {
					errs <- err
					return
				}
				if last == 0 {
					continue
				}
				var l raft.Log
				err = s.GetLog(last, &l)
				if err == nil {
					continue
				}
				// The writer may have compacted past last since it was read.
				if first, _ := s.FirstIndex(); err == raft.ErrLogNotFound && first > last {
					continue
				}
				first, _ := s.FirstIndex()
				errs <- fmt.Errorf("GetLog(%d) with FirstIndex %d: %w", last, first, err)
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call: %v", err)
	}

	// Close while readers run: they must get ErrClosed, not a panic.
	var readers sync.WaitGroup
	for range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for range 1000 {
				var l raft.Log
				err := s.GetLog(1991, &l)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("GetLog during Close: %v", err)
					return
				}
			}
		}()
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	readers.Wait()
}
