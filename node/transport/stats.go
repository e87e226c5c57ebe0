package transport

import (
	"sync"
	"sync/atomic"
	"time"
)

// Reason is why a listener rejected a connection.
type Reason int

// Rejection reasons. Each has a counter in Stats.
const (
	reasonNone Reason = iota
	// ReasonDeny: the client address is in Config.Deny.
	ReasonDeny
	// ReasonAllow: Config.Allow is set and the client address is not in it.
	ReasonAllow
	// ReasonRate: the token bucket of Config.MaxConnRate was empty.
	ReasonRate
	// ReasonMaxConnections: Config.MaxConnections connections were open.
	ReasonMaxConnections
	// ReasonProxy: a PROXY header was missing from a trusted proxy, came
	// from an untrusted address, was malformed, or was not sent in time.
	ReasonProxy
	// ReasonTLSHandshake: the TLS handshake failed or timed out, which
	// includes every rejected client certificate.
	ReasonTLSHandshake
	// ReasonWSUpgrade: the HTTP request was not a valid WebSocket upgrade
	// on the listener's path, or it timed out.
	ReasonWSUpgrade
	// ReasonPanic: preparing the connection panicked. The panic is logged.
	ReasonPanic

	reasonCount
)

var reasonNames = [reasonCount]string{
	reasonNone:           "none",
	ReasonDeny:           "deny",
	ReasonAllow:          "allow",
	ReasonRate:           "rate",
	ReasonMaxConnections: "max_connections",
	ReasonProxy:          "proxy",
	ReasonTLSHandshake:   "tls_handshake",
	ReasonWSUpgrade:      "ws_upgrade",
	ReasonPanic:          "panic",
}

// String returns the reason's name as metrics and logs use it.
func (r Reason) String() string {
	if r < 0 || r >= reasonCount {
		return "unknown"
	}
	return reasonNames[r]
}

// Reasons lists every rejection reason, in the order of their constants.
func Reasons() []Reason {
	out := make([]Reason, 0, reasonCount-1)
	for r := reasonNone + 1; r < reasonCount; r++ {
		out = append(out, r)
	}
	return out
}

// Stats are a listener's counters, for metrics. Accepted and Rejected only
// grow.
type Stats struct {
	// Accepted counts connections that Accept returned.
	Accepted uint64
	// Rejected counts rejected connections by reason. Index it with a
	// Reason, and ignore Rejected[0], which is unused.
	Rejected [reasonCount]uint64
	// Current is the number of connections that hold a slot: in a
	// handshake, waiting for Accept, or returned and not yet closed.
	Current int64
}

// TotalRejected returns the sum of Rejected.
func (s Stats) TotalRejected() uint64 {
	var n uint64
	for _, v := range s.Rejected {
		n += v
	}
	return n
}

// counters are the atomic backing of Stats.
type counters struct {
	accepted atomic.Uint64
	rejected [reasonCount]atomic.Uint64
}

// warnLimiter lets a log line through at most once per interval per reason,
// so that a flood a client can cause does not flood the log.
type warnLimiter struct {
	interval time.Duration
	mu       sync.Mutex
	last     [reasonCount]time.Time
}

// allow reports whether a warning for r may be logged at now.
func (w *warnLimiter) allow(r Reason, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.last[r].IsZero() && now.Sub(w.last[r]) < w.interval {
		return false
	}
	w.last[r] = now
	return true
}
