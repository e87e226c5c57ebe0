package raftstore

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleOptions returns the Pebble options of a raft store. Pebble's own
// defaults apply to everything not set here.
func pebbleOptions(log *slog.Logger) *pebble.Options {
	return &pebble.Options{
		Logger: pebbleLogger{log: log},
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) {
				log.Error("pebble background error", "err", err)
			},
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				log.Error("pebble found corrupt data", "path", info.Path, "err", info.Details)
			},
			DiskSlow: func(info pebble.DiskSlowInfo) {
				log.Warn("disk slow", "detail", info.String())
			},
			WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
				log.Warn("pebble write stall started", "reason", info.Reason)
			},
			WriteStallEnd: func() {
				log.Info("pebble write stall ended")
			},
		},
	}
}

// pebbleLogger sends Pebble's printf log to slog. Pebble's informational
// lines go to Debug because they describe routine background work.
type pebbleLogger struct {
	log *slog.Logger
}

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

// Fatalf logs and panics. Pebble calls it when it cannot continue, for
// example after a failed WAL write, and does not expect it to return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "source", "pebble")
	panic("raftstore: pebble fatal error: " + msg)
}
