package peer

import (
	"sync"
	"time"
)

// Rate limit for lines about rejected connections: anyone who can reach the
// port can trigger them, so a scanner or a misconfigured node must not flood
// the log.
const (
	rejectLogWindow      = 10 * time.Second
	rejectLogWindowLines = 10
)

// logLimiter allows at most rejectLogWindowLines lines per rejectLogWindow
// and counts the lines it drops. Safe for concurrent use.
type logLimiter struct {
	mu struct {
		sync.Mutex
		windowStart time.Time // start of the current window
		lines       int       // lines allowed in the current window
		suppressed  int       // lines dropped since the last allowed line
	}
}

// allow reports whether a line may be logged at now, and how many lines were
// dropped since the last allowed one.
func (l *logLimiter) allow(now time.Time) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()

	if now.Sub(l.mu.windowStart) >= rejectLogWindow {
		l.mu.windowStart = now
		l.mu.lines = 0
	}
	if l.mu.lines >= rejectLogWindowLines {
		l.mu.suppressed++
		return 0, false
	}
	l.mu.lines++
	suppressed = l.mu.suppressed
	l.mu.suppressed = 0
	return suppressed, true
}
