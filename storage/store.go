package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// layoutVersion is the version of the key layout described in doc.go. Open
// writes it into a new store and rejects a store with a higher version.
const layoutVersion = 1

// usageCacheTTL is how long DiskUsage reuses a measured value.
const usageCacheTTL = time.Second

// Store is the broker's Pebble database. All methods are safe for concurrent
// use. Batches are the only way to write.
type Store struct {
	cfg Config
	log *slog.Logger
	db  *pebble.DB

	gate   gate                  // counts operations that use db; Close waits for them
	refs   refIndex              // message reference counts, see refcount.go
	ids    idAllocator           // see ids.go
	outbox outboxIndex           // see outbox.go
	fail   atomic.Pointer[error] // first write failure; nil while healthy

	// dirty is set after a write that was not fsynced and cleared by the
	// sync goroutine before it fsyncs the WAL.
	dirty atomic.Bool

	usage struct {
		bytes    atomic.Int64 // last measured disk usage
		measured atomic.Int64 // unix nanoseconds of that measurement; 0 = never
	}

	stop      chan struct{}  // closed by Close to stop syncLoop
	wg        sync.WaitGroup // tracks syncLoop
	closeOnce sync.Once
	closeErr  error
}

// Open opens or creates the store in cfg.Dir. It checks the layout version,
// rebuilds the message reference counts from the queue and inflight entries,
// deletes message bodies that no entry references, and starts the WAL sync
// goroutine, which Close stops.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("component", "storage")

	if err := cfg.fs.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create directory %s: %w", cfg.Dir, err)
	}
	db, err := pebble.Open(cfg.Dir, pebbleOptions(cfg, log))
	if err != nil {
		return nil, fmt.Errorf("storage: open pebble in %s: %w", cfg.Dir, markPebble(err))
	}

	s := &Store{cfg: cfg, log: log, db: db, stop: make(chan struct{})}
	s.gate.init()
	if err := s.loadState(); err != nil {
		_ = db.Close()
		return nil, err
	}

	s.wg.Add(1)
	go s.syncLoop()
	return s, nil
}

// loadState checks the layout and rebuilds the in-memory state of an opened db.
func (s *Store) loadState() error {
	if err := s.checkLayout(); err != nil {
		return err
	}
	if err := s.loadIDLimit(); err != nil {
		return err
	}
	if err := s.loadOutboxIndex(); err != nil {
		return err
	}
	stats, err := s.rebuildRefs()
	if err != nil {
		return err
	}
	s.log.Info("storage opened",
		"dir", s.cfg.Dir,
		"durability", s.cfg.Durability.String(),
		"referenced_messages", stats.messages,
		"orphans_deleted", stats.orphans,
		"dangling_references", stats.dangling)
	if stats.dangling > 0 {
		s.log.Warn("queue or inflight entries reference missing message bodies",
			"dangling_references", stats.dangling)
	}
	return nil
}

// checkLayout writes the layout version into a new store and rejects a store
// with an unknown one.
func (s *Store) checkLayout() error {
	v, closer, err := s.db.Get(layoutKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return s.initLayout()
	}
	if err != nil {
		return fmt.Errorf("storage: read layout version: %w", markPebble(err))
	}
	version, err := decodeUvarintValue(v, "layout version")
	_ = closer.Close()
	if err != nil {
		return fmt.Errorf("storage: read layout version in %s: %w", s.cfg.Dir, err)
	}
	if version > layoutVersion {
		return fmt.Errorf("storage: %s has layout version %d but this build reads up to %d: run a newer build", s.cfg.Dir, version, layoutVersion)
	}
	if version < 1 {
		return fmt.Errorf("storage: %s has layout version %d: %w", s.cfg.Dir, version, ErrCorrupt)
	}
	return nil
}

func (s *Store) initLayout() error {
	empty := true
	err := s.scan(nil, nil, func(_, _ []byte) error {
		empty = false
		return errStopScan
	})
	if err != nil {
		return fmt.Errorf("storage: check for existing data: %w", err)
	}
	if !empty {
		return fmt.Errorf("storage: %s contains keys but no layout version, so this package did not create it: use an empty directory: %w", s.cfg.Dir, ErrCorrupt)
	}
	if err := s.db.Set(layoutKey, appendUvarintValue(nil, layoutVersion), pebble.Sync); err != nil {
		return fmt.Errorf("storage: write layout version: %w", err)
	}
	return nil
}

// Close stops the sync goroutine, waits for running operations, fsyncs any
// write not yet synced and closes Pebble. It does not flush memtables to
// sstables, because the next Open replays the WAL. Close is idempotent, and
// later calls return the first call's result. It must not be called from a callback of
// a load method such as Sessions, because it waits for that method.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.gate.close()

		var errs []error
		if s.dirty.Swap(false) && s.failure() == nil {
			if err := s.db.LogData(nil, pebble.Sync); err != nil {
				errs = append(errs, fmt.Errorf("storage: sync WAL on close: %w", err))
			}
		}
		if err := s.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("storage: close pebble: %w", err))
		}
		s.closeErr = errors.Join(errs...)
		s.log.Info("storage closed", "dir", s.cfg.Dir)
	})
	return s.closeErr
}

// syncLoop fsyncs the WAL every SyncInterval when a write since the last
// fsync did not sync. Its owner is the Store: Open starts it and Close stops
// it through s.stop.
func (s *Store) syncLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.syncIfDirty()
		}
	}
}

func (s *Store) syncIfDirty() {
	if !s.dirty.Swap(false) {
		return
	}
	if !s.gate.enter() {
		return
	}
	defer s.gate.exit()
	if s.failure() != nil {
		return
	}

	// An empty LogData record writes nothing to the memtable, and a synced
	// write fsyncs the whole WAL up to and including it.
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		s.setFailed(fmt.Errorf("sync WAL: %w", err))
	}
}

// DiskUsage returns the bytes Pebble uses on disk: sstables, WAL, manifest
// and other files. It reuses a measurement for up to a second, and returns
// the last one after Close.
func (s *Store) DiskUsage() int64 {
	now := time.Now().UnixNano()
	if at := s.usage.measured.Load(); at != 0 && now-at < int64(usageCacheTTL) {
		return s.usage.bytes.Load()
	}
	if !s.gate.enter() {
		return s.usage.bytes.Load()
	}
	defer s.gate.exit()

	used := int64(s.db.Metrics().DiskSpaceUsage())
	s.usage.bytes.Store(used)
	s.usage.measured.Store(now)
	return used
}

// OverLimit reports whether DiskUsage has reached Config.MaxDiskBytes. It is
// always false without a limit. The node decides what to reject.
func (s *Store) OverLimit() bool {
	return s.cfg.MaxDiskBytes > 0 && s.DiskUsage() >= s.cfg.MaxDiskBytes
}

// failure returns the sticky write failure wrapped in ErrFailed, or nil.
func (s *Store) failure() error {
	err := s.fail.Load()
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrFailed, *err)
}

// setFailed records the first write failure and logs it. Later writes
// return it.
func (s *Store) setFailed(err error) {
	if s.fail.CompareAndSwap(nil, &err) {
		s.log.Error("storage write failed, so writes are rejected until the store is reopened", "err", err)
	}
}

// gate counts the operations that use the Pebble handle so that Close can
// wait for them. Unlike a sync.RWMutex it allows one goroutine to enter
// again while Close waits, as a load callback that commits a batch does.
type gate struct {
	mu     sync.Mutex
	cond   sync.Cond
	active int  // guarded by mu
	closed bool // guarded by mu
}

func (g *gate) init() { g.cond.L = &g.mu }

// enter reports whether the store is open and, if so, counts one operation
// that must call exit.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.active++
	return true
}

func (g *gate) exit() {
	g.mu.Lock()
	g.active--
	if g.active == 0 && g.closed {
		g.cond.Broadcast()
	}
	g.mu.Unlock()
}

// close rejects new operations and waits for running ones.
func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	for g.active > 0 {
		g.cond.Wait()
	}
	g.mu.Unlock()
}
