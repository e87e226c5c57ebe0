package fsm

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidCommand marks a command that was committed but cannot be
	// applied: its envelope or body does not decode, or a field is missing or
	// out of range. Every replica reads the same bytes and rejects the
	// command the same way, so the state stays identical everywhere. The
	// Result of the command carries the error.
	ErrInvalidCommand = errors.New("fsm: invalid command")

	// ErrCorruptSnapshot marks a snapshot that Restore cannot read: a wrong
	// magic, a truncated or oversized record, an undecodable message, a
	// duplicate key or a record that breaks an invariant of the state.
	ErrCorruptSnapshot = errors.New("fsm: corrupt snapshot")

	// ErrUnsupportedSnapshot marks a snapshot written in a format version
	// newer than this build reads.
	ErrUnsupportedSnapshot = errors.New("fsm: unsupported snapshot format")
)

// CommandError is the value Apply panics with when a node must stop rather
// than skip a committed command: the type is unknown to this build, the
// command needs a cluster version above the committed one, or it raises the
// cluster version above what this build supports. In each case some
// replicas could apply the command and this one cannot, so going on would
// let the replicas diverge (see the package documentation).
type CommandError struct {
	Index    uint64 // index of the log entry
	Type     uint32 // Command.type
	Required uint64 // Command.cluster_version_required, or the version a SetClusterVersion requests
	Current  uint64 // committed cluster version, or MaxClusterVersion for a SetClusterVersion
	Reason   string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("fsm: cannot apply log entry %d (command type %d, cluster version required %d, current %d): %s; upgrade this node",
		e.Index, e.Type, e.Required, e.Current, e.Reason)
}
