package storage

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned when a requested record does not exist.
	ErrNotFound = errors.New("storage: not found")

	// ErrClosed is returned by every operation on a Store, or on a Batch of
	// that Store, after Close has started.
	ErrClosed = errors.New("storage: store closed")

	// ErrCorrupt marks a record, key or Pebble file that failed to decode or
	// verify. It survives wrapping, so check it with errors.Is.
	ErrCorrupt = errors.New("storage: corrupt data")

	// ErrFailed marks errors returned after an earlier write failed. The
	// in-memory reference counts may then disagree with the disk, so the Store
	// rejects further writes until it is closed and opened again, which
	// rebuilds the counts from disk.
	ErrFailed = errors.New("storage: store failed after an earlier write error")
)

// corruptf returns an error that wraps ErrCorrupt with a formatted reason.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
