package node

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// stats are the node's counters. Metrics export reads them; nothing else
// depends on them.
type stats struct {
	connects, disconnects, takeovers, connectRefused atomic.Uint64
	packetsIn, messagesIn, messagesOut, bytesOut     atomic.Uint64
	dropped, expired, tooLarge, publishRefused       atomic.Uint64
	protocolErrors, panics, expiredSessions          atomic.Uint64
	retainedRejected, storageErrors                  atomic.Uint64
	sharedRedelivered                                atomic.Uint64
	subscriptions, retainedBytes                     atomic.Int64
}

// Stats is a snapshot of the node's counters.
type Stats struct {
	Connects, Disconnects, Takeovers, ConnectRefused uint64
	MessagesIn, MessagesOut, BytesOut                uint64
	Dropped, Expired, TooLarge, PublishRefused       uint64
	ProtocolErrors, Panics, ExpiredSessions          uint64
	RetainedRejected, StorageErrors                  uint64
	SharedRedelivered                                uint64
	Sessions, Subscriptions, Retained                int64
}

// Stats returns a snapshot of the node's counters.
func (s *Server) Stats() Stats {
	st := &s.stats
	return Stats{
		Connects: st.connects.Load(), Disconnects: st.disconnects.Load(),
		Takeovers: st.takeovers.Load(), ConnectRefused: st.connectRefused.Load(),
		MessagesIn: st.messagesIn.Load(), MessagesOut: st.messagesOut.Load(), BytesOut: st.bytesOut.Load(),
		Dropped: st.dropped.Load(), Expired: st.expired.Load(), TooLarge: st.tooLarge.Load(),
		PublishRefused: st.publishRefused.Load(), ProtocolErrors: st.protocolErrors.Load(),
		Panics: st.panics.Load(), ExpiredSessions: st.expiredSessions.Load(),
		RetainedRejected: st.retainedRejected.Load(), StorageErrors: st.storageErrors.Load(),
		SharedRedelivered: st.sharedRedelivered.Load(),
		Sessions:          int64(s.reg.len()), Subscriptions: st.subscriptions.Load(), Retained: int64(s.retained.Len()),
	}
}

// rateLimitedLog writes at most one Warn line per interval and counts the lines
// it suppressed, so that a misbehaving client cannot flood the log.
type rateLimitedLog struct {
	interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *rateLimitedLog) log(l *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.last) < r.interval {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.Warn(msg, args...)
}
