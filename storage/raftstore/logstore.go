package raftstore

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// Store implements raft.LogStore. It does not implement
// raft.MonotonicLogStore: it tolerates gaps between stored indexes, so raft
// may keep its default of compacting the log after a snapshot restore
// instead of deleting all of it.
var _ raft.LogStore = (*Store)(nil)

// FirstIndex returns the lowest stored log index, or 0 when the log is
// empty. It reads a cached value and does not touch the disk.
func (s *Store) FirstIndex() (uint64, error) {
	return s.first.Load(), s.checkOpen()
}

// LastIndex returns the highest stored log index, or 0 when the log is
// empty. It reads a cached value and does not touch the disk.
func (s *Store) LastIndex() (uint64, error) {
	return s.last.Load(), s.checkOpen()
}

// checkOpen returns ErrClosed after Close.
func (s *Store) checkOpen() error {
	return s.withDB(func(*pebble.DB) error { return nil })
}

// GetLog reads the log entry at index into out. It returns
// raft.ErrLogNotFound itself, unwrapped, when no entry is stored there,
// because raft's replication compares the error with == to decide that a
// follower needs a snapshot.
func (s *Store) GetLog(index uint64, out *raft.Log) error {
	var key [logKeyLen]byte
	return s.withDB(func(db *pebble.DB) error {
		val, closer, err := db.Get(appendLogKey(key[:0], index))
		if errors.Is(err, pebble.ErrNotFound) {
			return raft.ErrLogNotFound
		}
		if err != nil {
			return fmt.Errorf("raftstore: get log %d: %w", index, markPebble(err))
		}
		defer closer.Close()

		if err := decodeLog(val, out); err != nil {
			return fmt.Errorf("raftstore: get log %d: %w", index, err)
		}
		if out.Index != index {
			return fmt.Errorf("raftstore: get log %d: %w", index, corruptf("entry contains index %d", out.Index))
		}
		return nil
	})
}

// StoreLog stores one log entry durably, as StoreLogs does.
func (s *Store) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs stores the entries in one Pebble batch, replacing any entry
// already stored at the same index. Without Config.NoSync it returns only
// after the batch is fsynced: raft treats a returned StoreLogs as durable
// and then acknowledges AppendEntries to the leader, which may count this
// node towards a commit. The entries need not be contiguous, either with
// each other or with the stored log. An entry with index 0, which raft
// never uses because 0 means an empty log, is rejected with the whole batch.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	lo, hi, err := indexRange(logs)
	if err != nil {
		return err
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err = s.withDB(func(db *pebble.DB) error {
		b := db.NewBatch()
		defer b.Close()
		for _, l := range logs {
			if err := putLog(b, l); err != nil {
				return err
			}
		}
		if err := b.Commit(s.writeOpts); err != nil {
			return markPebble(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("raftstore: store logs %d to %d: %w", lo, hi, err)
	}

	if first := s.first.Load(); first == 0 || lo < first {
		s.first.Store(lo)
	}
	if hi > s.last.Load() {
		s.last.Store(hi)
	}
	return nil
}

// indexRange returns the lowest and highest index in logs, and rejects
// nil entries and index 0.
func indexRange(logs []*raft.Log) (lo, hi uint64, err error) {
	for i, l := range logs {
		if l == nil {
			return 0, 0, fmt.Errorf("raftstore: store logs: entry %d of %d is nil", i, len(logs))
		}
		if l.Index == 0 {
			return 0, 0, fmt.Errorf("raftstore: store logs: entry %d of %d has index 0, but raft log indexes start at 1", i, len(logs))
		}
		if i == 0 || l.Index < lo {
			lo = l.Index
		}
		hi = max(hi, l.Index)
	}
	return lo, hi, nil
}

// putLog adds l to b, encoding key and value directly into the batch's
// buffer to avoid an intermediate copy.
func putLog(b *pebble.Batch, l *raft.Log) error {
	n := encodedLogLen(l)
	op := b.SetDeferred(logKeyLen, n)
	appendLogKey(op.Key[:0], l.Index)
	if got := len(appendLog(op.Value[:0], l)); got != n {
		// A mismatch would leave garbage in the batch. It can only come
		// from a bug in encodedLogLen, never from input.
		panic(fmt.Sprintf("raftstore: encoded log %d is %d bytes, want %d", l.Index, got, n))
	}
	return op.Finish()
}

// DeleteRange deletes the entries from min to max, both inclusive, with one
// synced range deletion. Raft calls it to compact the head of the log after
// a snapshot and to drop a conflicting tail. Indexes without an entry are
// ignored, and min > max deletes nothing.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := s.withDB(func(db *pebble.DB) error {
		// The new bounds are published before the commit, so that a reader
		// never gets a bound whose entry is already deleted. Until the
		// commit, entries outside the bounds are still readable, which is
		// harmless.
		first, last, err := s.boundsAfterDelete(db, min, max)
		if err != nil {
			return err
		}
		s.first.Store(first)
		s.last.Store(last)

		b := db.NewBatch()
		defer b.Close()
		err = b.DeleteRange(logKey(min), logKeyAfter(max), nil)
		if err == nil {
			err = b.Commit(s.writeOpts)
		}
		if err != nil {
			// The bounds may now be ahead of the disk. Read them again.
			if reloadErr := s.loadBounds(db); reloadErr != nil {
				s.log.Error("reload log bounds after a failed delete", "err", reloadErr)
			}
			return markPebble(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("raftstore: delete logs %d to %d: %w", min, max, err)
	}
	return nil
}

// boundsAfterDelete returns the first and last index that the log will have
// once [min, max] is deleted. A bound inside the range moves to the nearest
// entry outside it, found by a seek, because the log may have gaps. The
// caller holds writeMu, so the log cannot change meanwhile, and mu for
// reading.
func (s *Store) boundsAfterDelete(db *pebble.DB, min, max uint64) (first, last uint64, err error) {
	first, last = s.first.Load(), s.last.Load()
	if first == 0 || max < first || min > last {
		return first, last, nil
	}
	if min <= first && max >= last {
		return 0, 0, nil
	}

	if min <= first {
		first, _, err = scanBounds(db, logKeyAfter(max), logKeyAfter(last))
		if err != nil {
			return 0, 0, fmt.Errorf("find new first index: %w", err)
		}
	}
	if max >= last {
		_, last, err = scanBounds(db, logKey(first), logKey(min))
		if err != nil {
			return 0, 0, fmt.Errorf("find new last index: %w", err)
		}
	}
	return first, last, nil
}
