package raftstore

import (
	"errors"
	"log/slog"
)

// Config configures a Store. None of its fields can be changed after Open.
type Config struct {
	// Dir is the directory of the Pebble database that holds the raft log
	// and stable store. It must not be the broker's own data directory. Open
	// creates it when it does not exist. Required.
	Dir string

	// Logger receives lifecycle messages and Pebble's own log, with
	// component=raftstore added. Nil means slog.Default().
	Logger *slog.Logger

	// NoSync makes writes return before the Pebble WAL is fsynced. It is for
	// tests only and is unsafe in production: raft counts a log entry as
	// stored, and acknowledges AppendEntries to the leader, as soon as
	// StoreLogs returns, and it persists votes and terms through Set and
	// SetUint64. A machine crash after an unsynced write can therefore lose
	// a committed entry or let the node vote twice in one term. Even a
	// process crash can, because Pebble v2.1.7 keeps unsynced WAL records in
	// its own buffer until a 32 KiB block fills or a synced write flushes
	// them (LogWriter.SyncRecordGeneralized in record/log_writer.go).
	NoSync bool
}

// Validate returns an error naming the first invalid field of c.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("raftstore: missing Config.Dir, the directory of the raft log and stable store")
	}
	return nil
}
