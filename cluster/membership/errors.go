package membership

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by Leave and UpdateMeta after Close has started.
	ErrClosed = errors.New("membership: closed")

	// ErrInvalidConfig marks every error that Config.Validate returns, so
	// callers can tell a configuration mistake from a network failure.
	ErrInvalidConfig = errors.New("membership: invalid config")

	// ErrInvalidMeta marks node metadata that failed to decode.
	ErrInvalidMeta = errors.New("membership: invalid node metadata")

	// ErrInvalidSiteID marks a site-id file whose content is not a site id.
	ErrInvalidSiteID = errors.New("membership: invalid site id")

	// ErrInvalidGossipKey marks a gossip key file that does not hold a
	// base64 AES key of 16, 24 or 32 bytes.
	ErrInvalidGossipKey = errors.New("membership: invalid gossip key")
)

// configErrorf returns an error that wraps ErrInvalidConfig.
func configErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// metaErrorf returns an error that wraps ErrInvalidMeta.
func metaErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidMeta, fmt.Sprintf(format, args...))
}
