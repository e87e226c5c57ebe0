package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// Store is a raft.LogStore and raft.StableStore on its own Pebble database.
// All methods are safe for concurrent use. Writers are serialized with one
// another, and reads run in parallel with writes.
type Store struct {
	log       *slog.Logger
	dir       string
	writeOpts *pebble.WriteOptions

	// writeMu serializes writes, so that each commit and its update of
	// first and last happen as one step. It is held across the fsync, which
	// costs raft nothing because raft appends from one goroutine. Lock order:
	// writeMu, then mu.
	writeMu sync.Mutex

	// first and last cache the lowest and highest stored log index, 0 when
	// the log is empty. They are written only with writeMu held and read
	// without a lock. StoreLogs widens them after its commit and
	// DeleteRange narrows them before its commit, so a reader never gets a
	// bound whose entry is not readable.
	first, last atomic.Uint64

	mu struct {
		// RWMutex is held for reading by every method for the duration of
		// its Pebble call, and for writing by Close, which therefore waits
		// for calls in progress.
		sync.RWMutex

		// db is nil after Close.
		db *pebble.DB
	}
}

// Open opens or creates the raft store in cfg.Dir. It rejects a directory
// written with a newer layout, or one that holds other data, with an error
// wrapping ErrUnsupportedLayout.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "raftstore")

	db, err := pebble.Open(cfg.Dir, pebbleOptions(logger))
	if err != nil {
		return nil, fmt.Errorf("raftstore: open pebble in %s: %w", cfg.Dir, markPebble(err))
	}
	s := &Store{log: logger, dir: cfg.Dir, writeOpts: pebble.Sync}
	if cfg.NoSync {
		s.writeOpts = pebble.NoSync
	}
	s.mu.db = db

	if err := s.checkLayout(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.loadBounds(db); err != nil {
		_ = db.Close()
		return nil, err
	}
	logger.Info("raft store opened", "dir", cfg.Dir, "first_index", s.first.Load(),
		"last_index", s.last.Load(), "no_sync", cfg.NoSync)
	return s, nil
}

// Close closes the Pebble database once the calls in progress return.
// Later calls of other methods return ErrClosed, and a second Close returns
// nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.db == nil {
		return nil
	}
	err := s.mu.db.Close()
	s.mu.db = nil
	if err != nil {
		return fmt.Errorf("raftstore: close pebble in %s: %w", s.dir, err)
	}
	s.log.Info("raft store closed", "dir", s.dir)
	return nil
}

// checkLayout reads the layout version, or writes the current one into an
// empty database.
func (s *Store) checkLayout() error {
	db := s.mu.db
	val, closer, err := db.Get(layoutKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return s.initLayout()
	}
	if err != nil {
		return fmt.Errorf("raftstore: read layout version in %s: %w", s.dir, markPebble(err))
	}
	defer closer.Close()

	version, n := binary.Uvarint(val)
	if n <= 0 || n != len(val) || version == 0 {
		return fmt.Errorf("raftstore: layout version in %s: %w", s.dir, corruptf("value %x", val))
	}
	if version > layoutVersion {
		return fmt.Errorf("%w: %s has layout version %d, newer than the %d this build supports, so it needs a newer starling release",
			ErrUnsupportedLayout, s.dir, version, layoutVersion)
	}
	return nil
}

// initLayout writes the layout version into a database that contains no
// keys. A database with keys but no layout version belongs to something
// else, most likely the broker store, so Open rejects it rather than mix
// raft keys into it.
func (s *Store) initLayout() error {
	db := s.mu.db
	it, err := db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("raftstore: scan %s: %w", s.dir, markPebble(err))
	}
	hasKeys := it.First()
	if err := it.Close(); err != nil {
		return fmt.Errorf("raftstore: scan %s: %w", s.dir, markPebble(err))
	}
	if hasKeys {
		return fmt.Errorf("%w: %s contains data but no raft store layout version, so set Config.Dir to a directory of its own",
			ErrUnsupportedLayout, s.dir)
	}

	val := binary.AppendUvarint(nil, layoutVersion)
	if err := db.Set(layoutKey, val, pebble.Sync); err != nil {
		return fmt.Errorf("raftstore: write layout version in %s: %w", s.dir, markPebble(err))
	}
	return nil
}

// loadBounds sets first and last from the lowest and highest log keys in
// db.
func (s *Store) loadBounds(db *pebble.DB) error {
	first, last, err := scanBounds(db, logLowerBound, logUpperBound)
	if err != nil {
		return fmt.Errorf("raftstore: find log bounds in %s: %w", s.dir, err)
	}
	s.first.Store(first)
	s.last.Store(last)
	return nil
}

// scanBounds returns the lowest and highest log index with a key in
// [lower, upper), or 0, 0 when there is none.
func scanBounds(db *pebble.DB, lower, upper []byte) (first, last uint64, err error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, 0, markPebble(err)
	}
	if it.First() {
		first, err = parseLogKey(it.Key())
		if err == nil && it.Last() {
			last, err = parseLogKey(it.Key())
		}
	}
	if closeErr := it.Close(); err == nil && closeErr != nil {
		err = markPebble(closeErr)
	}
	if err != nil {
		return 0, 0, err
	}
	return first, last, nil
}

// withDB calls fn with the open database while it holds mu for reading,
// or returns ErrClosed after Close.
func (s *Store) withDB(fn func(db *pebble.DB) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mu.db == nil {
		return ErrClosed
	}
	return fn(s.mu.db)
}
