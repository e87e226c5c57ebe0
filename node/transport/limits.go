package transport

import (
	"sync/atomic"
	"time"
)

// tokenBucket limits the rate of new connections. It holds up to burst
// tokens, gains rate tokens per second, and each connection takes one. Only
// the accept goroutine uses it, so it has no lock.
type tokenBucket struct {
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int, now time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// take reports whether a token was available at now, and takes it if so.
// A clock that goes backwards adds no tokens.
func (b *tokenBucket) take(now time.Time) bool {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+elapsed.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// slots counts the open connections of a listener against its maximum. A
// slot is taken in the accept goroutine before any handshake starts, and is
// given back exactly once: by Conn.Close, or by the code that rejects the
// connection.
type slots struct {
	max  int64
	used atomic.Int64
}

// acquire takes a slot and reports whether one was free.
func (s *slots) acquire() bool {
	if s.used.Add(1) > s.max {
		s.used.Add(-1)
		return false
	}
	return true
}

func (s *slots) release() {
	if s.used.Add(-1) < 0 {
		panic("transport: connection slot released twice")
	}
}
