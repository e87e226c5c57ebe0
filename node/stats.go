package node

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// stats are the node's counters, updated with atomics on the hot paths and
// read by Stats and the metrics collector.
type stats struct {
	connects, disconnects, takeovers, connectRefused atomic.Uint64
	packetsIn, bytesIn, bytesOut                     atomic.Uint64
	messagesIn, messagesOut                          [3]atomic.Uint64 // by QoS
	droppedQueueFull, droppedNoMember                atomic.Uint64
	expired, tooLarge, publishRefused                atomic.Uint64
	protocolErrors, panics, expiredSessions          atomic.Uint64
	retainedRejected, storageErrors                  atomic.Uint64
	sharedRedelivered, publisherPauses, slowClients  atomic.Uint64
	routeWaitTimeouts, forwardRefused, forwardedIn   atomic.Uint64
	forwardFailed, sessionsMovedIn, sessionsMovedOut atomic.Uint64
	custodyExpired                                   atomic.Uint64
	subscriptions, retainedBytes, retainedCount      atomic.Int64
	queued, inflight, connected                      atomic.Int64
	authFailures                                     [authFailReasons]atomic.Uint64
	denied                                           [deniedReasons]atomic.Uint64
}

// Stats is a snapshot of the node's counters.
type Stats struct {
	Connects, Disconnects, Takeovers, ConnectRefused uint64
	BytesIn, BytesOut                                uint64
	MessagesIn, MessagesOut                          [3]uint64 // by QoS
	DroppedQueueFull, DroppedNoMember                uint64
	Expired, TooLarge, PublishRefused                uint64
	ProtocolErrors, Panics, ExpiredSessions          uint64
	RetainedRejected, StorageErrors                  uint64
	SharedRedelivered, PublisherPauses, SlowClients  uint64
	CustodyExpired                                   uint64
	Connected, Sessions, Subscriptions               int64
	Retained, RetainedBytes, Queued, Inflight        int64
	DiskBytes                                        int64
	AuthFailures                                     map[string]uint64 // by reason
	Denied                                           map[string]uint64 // authorization denials by action
}

// Dropped returns the messages dropped for any reason other than expiry.
func (st Stats) Dropped() uint64 { return st.DroppedQueueFull + st.DroppedNoMember + st.TooLarge }

// Stats returns a snapshot of the node's counters.
func (s *Server) Stats() Stats {
	st := &s.stats
	out := Stats{
		Connects: st.connects.Load(), Disconnects: st.disconnects.Load(),
		Takeovers: st.takeovers.Load(), ConnectRefused: st.connectRefused.Load(),
		BytesIn: st.bytesIn.Load(), BytesOut: st.bytesOut.Load(),
		DroppedQueueFull: st.droppedQueueFull.Load(), DroppedNoMember: st.droppedNoMember.Load(),
		Expired: st.expired.Load(), TooLarge: st.tooLarge.Load(), PublishRefused: st.publishRefused.Load(),
		ProtocolErrors: st.protocolErrors.Load(), Panics: st.panics.Load(), ExpiredSessions: st.expiredSessions.Load(),
		RetainedRejected: st.retainedRejected.Load(), StorageErrors: st.storageErrors.Load(),
		SharedRedelivered: st.sharedRedelivered.Load(), PublisherPauses: st.publisherPauses.Load(), SlowClients: st.slowClients.Load(),
		CustodyExpired: st.custodyExpired.Load(),
		Connected:      st.connected.Load(), Sessions: int64(s.reg.len()), Subscriptions: st.subscriptions.Load(),
		Retained: st.retainedCount.Load(), RetainedBytes: st.retainedBytes.Load(),
		Queued: st.queued.Load(), Inflight: st.inflight.Load(),
		DiskBytes: s.store.DiskUsage(),
	}
	for q := range 3 {
		out.MessagesIn[q] = st.messagesIn[q].Load()
		out.MessagesOut[q] = st.messagesOut[q].Load()
	}
	out.AuthFailures = make(map[string]uint64, authFailReasons)
	for i, name := range authFailNames {
		out.AuthFailures[name] = st.authFailures[i].Load()
	}
	out.Denied = make(map[string]uint64, deniedReasons)
	for i, name := range deniedNames {
		out.Denied[name] = st.denied[i].Load()
	}
	return out
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

// Actions refused by authorization, for metrics.
const (
	deniedPublish = iota
	deniedSubscribe
	deniedDelivery
	deniedWill
	deniedReasons
)

var deniedNames = [deniedReasons]string{"publish", "subscribe", "delivery", "will"}
