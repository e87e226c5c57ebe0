//go:build !linux

package node

import (
	"errors"
	"log/slog"
	"time"
)

// idlePoller is available on Linux only. Elsewhere an idle connection
// waits for its next byte in a goroutine of its own.
type idlePoller struct{}

// parkState is empty where there is no idlePoller.
type parkState struct{}

// newIdlePoller returns an error outside Linux.
func newIdlePoller(*slog.Logger) (*idlePoller, error) {
	return nil, errors.New("idle poller: needs epoll (Linux)")
}

func (*idlePoller) park(*conn, time.Time) bool { return false }

func (*idlePoller) wake(*conn) {}

func (*idlePoller) close() {}
