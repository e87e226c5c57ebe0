package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Durability selects when Batch.Commit returns relative to the fsync of the
// write-ahead log.
type Durability int

const (
	// DurabilitySync makes Commit return only after the WAL holding the batch
	// has been fsynced. Concurrent commits share one fsync. In pebble v2.1.7
	// (commit.go and record/log_writer.go), the commit pipeline queues each
	// synced batch on the LogWriter's sync queue. The LogWriter's single
	// flush loop then takes every queued waiter, writes their data, issues
	// one fsync and wakes all of them. Commit keeps that group commit because
	// it holds no Store mutex while it waits for the fsync.
	DurabilitySync Durability = iota

	// DurabilityRelaxed makes Commit return once the batch is in the WAL
	// buffer and applied to the memtable (pebble.NoSync). A background
	// goroutine fsyncs the WAL every SyncInterval when something was written
	// since the last fsync. Pebble keeps unsynced WAL records in its own
	// block buffer until a block fills or a synced write flushes it, so even
	// a process crash (kill -9) can lose the commits of the last
	// SyncInterval plus the duration of one fsync, and so can a machine
	// crash or power loss.
	DurabilityRelaxed
)

// String returns the lower-case name of d.
func (d Durability) String() string {
	switch d {
	case DurabilitySync:
		return "sync"
	case DurabilityRelaxed:
		return "relaxed"
	default:
		return fmt.Sprintf("Durability(%d)", int(d))
	}
}

// DefaultSyncInterval is the WAL fsync period used when Config.SyncInterval
// is zero.
const DefaultSyncInterval = 10 * time.Millisecond

// Config configures a Store. None of its fields can be changed after Open.
type Config struct {
	// Dir is the directory of the Pebble database. Open creates it when it
	// does not exist. Required.
	Dir string

	// Durability selects the commit policy. The zero value is DurabilitySync.
	Durability Durability

	// SyncInterval is the period of the background WAL fsync, which bounds
	// the loss window of DurabilityRelaxed commits and of CommitNoSync in
	// either mode. Zero means DefaultSyncInterval.
	SyncInterval time.Duration

	// MaxDiskBytes is the disk usage at which OverLimit reports true. Zero
	// means no limit. The Store never rejects writes by itself.
	MaxDiskBytes int64

	// Logger receives the Store's lifecycle messages and Pebble's own log.
	// Nil means slog.Default().
	Logger *slog.Logger

	// fs replaces the operating system's file system in tests, for example
	// with vfs.NewCrashableMem to drop unsynced writes. Nil means vfs.Default.
	fs vfs.FS
}

// DefaultConfig returns a Config for dir with synced commits and the default
// sync interval.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:          dir,
		Durability:   DurabilitySync,
		SyncInterval: DefaultSyncInterval,
	}
}

// Validate returns an error naming the first invalid field of c.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("storage: Config.Dir is required")
	}
	if c.Durability != DurabilitySync && c.Durability != DurabilityRelaxed {
		return fmt.Errorf("storage: Config.Durability %d is invalid: use DurabilitySync or DurabilityRelaxed", int(c.Durability))
	}
	if c.SyncInterval < 0 {
		return fmt.Errorf("storage: Config.SyncInterval %v is negative: use 0 for the default %v", c.SyncInterval, DefaultSyncInterval)
	}
	if c.MaxDiskBytes < 0 {
		return fmt.Errorf("storage: Config.MaxDiskBytes %d is negative: use 0 for no limit", c.MaxDiskBytes)
	}
	return nil
}

// withDefaults returns a copy of c with zero fields replaced by defaults.
func (c Config) withDefaults() Config {
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.fs == nil {
		c.fs = vfs.Default
	}
	return c
}
