package forward

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidConfig marks every error that Config.Validate returns.
	ErrInvalidConfig = errors.New("forward: invalid config")

	// ErrUnknownPeer is returned by Stage for a site id that SetPeers never
	// named or that DropPeer removed.
	ErrUnknownPeer = errors.New("forward: unknown peer")

	// ErrClosed is returned by Stage after Close.
	ErrClosed = errors.New("forward: forwarder closed")
)

// errScanDone ends an outbox scan at the last sequence number to send.
var errScanDone = errors.New("forward: scan reached its end")

// configErrorf returns an error that wraps ErrInvalidConfig.
func configErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}
