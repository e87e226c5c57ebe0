package raftstore

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

var (
	// ErrKeyNotFound is returned by Get and GetUint64 for a key that was never
	// set. Its text is exactly "not found", without the package prefix other
	// errors carry, because hashicorp/raft v1.7.2 recognises a missing key by
	// comparing err.Error() with "not found" (NewRaft and HasExistingState in
	// api.go, requestVote in raft.go). Any other text, or a wrapped copy of
	// this error, makes a fresh node fail to start. Callers in Starling check
	// it with errors.Is as usual.
	ErrKeyNotFound = errors.New("not found")

	// ErrClosed is returned by every method other than Close once Close has
	// been called.
	ErrClosed = errors.New("raftstore: store closed")

	// ErrCorrupt marks a log entry, stable value, key or Pebble file that
	// failed to decode or verify. It survives wrapping, so check it with
	// errors.Is.
	ErrCorrupt = errors.New("raftstore: corrupt data")

	// ErrUnsupportedLayout is returned by Open when the directory was written
	// with a newer key layout than this build understands, or is not a raft
	// store at all.
	ErrUnsupportedLayout = errors.New("raftstore: unsupported layout")
)

// corruptf returns an error that wraps ErrCorrupt with a formatted reason.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// markPebble adds the ErrCorrupt mark to Pebble corruption errors and
// returns other errors unchanged.
func markPebble(err error) error {
	if err != nil && pebble.IsCorruptionError(err) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}
