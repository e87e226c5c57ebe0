package membership

import (
	"cmp"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// eventQueue is the bounded channel behind Membership.Events. push never
// blocks: when the channel is full it drops the oldest event and counts it.
// Dropping the oldest keeps the latest state of each member, which is what a
// consumer that falls behind needs; it reconciles the rest from Members.
type eventQueue struct {
	logger  *slog.Logger
	ch      chan Event
	dropped atomic.Uint64

	// mu serializes push with close, so push never sends on a closed
	// channel and only one goroutine adds to ch at a time.
	mu     sync.Mutex
	closed bool // guarded by mu
}

func newEventQueue(capacity int, logger *slog.Logger) *eventQueue {
	return &eventQueue{logger: logger, ch: make(chan Event, capacity)}
}

// push adds e, dropping the oldest queued event if the channel is full.
// It does nothing after close.
func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	select {
	case q.ch <- e:
		return
	default:
	}

	select {
	case <-q.ch:
		q.countDrop()
	default:
		// The consumer took one in the meantime.
	}

	// Only push adds to ch, under q.mu, so there is room now.
	select {
	case q.ch <- e:
	default:
		q.countDrop()
	}
}

// countDrop counts a dropped event and logs the first drop and every
// 1024th after it, so a stalled consumer cannot flood the log.
func (q *eventQueue) countDrop() {
	n := q.dropped.Add(1)
	if n == 1 || n%1024 == 0 {
		q.logger.Warn("membership event dropped: the consumer of Events is too slow", keyDropped, n)
	}
}

// close closes the channel; later pushes are ignored.
func (q *eventQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
}

// eventDelegate receives memberlist's join, leave and update callbacks,
// keeps this node's view of the members, logs the changes and queues Events.
// memberlist calls it with its node lock held, so it must never block and
// never call back into memberlist.
//
// The view is kept here, rather than read from memberlist.Members, because
// memberlist.Members returns pointers to nodes that its goroutines keep
// changing after the lock is released, which is a data race. Inside the
// callbacks the lock is held, so copying the node there is safe, and every
// change of address, metadata or liveness comes with a callback.
type eventDelegate struct {
	logger *slog.Logger
	queue  *eventQueue

	mu sync.Mutex
	// members maps each node name to its latest state, including nodes that
	// are gone. Guarded by mu.
	members map[string]Member
	// siteIDs maps each node name to the last valid site id seen under it,
	// so that a return with a new site id is noticed. Guarded by mu.
	//
	// Both maps grow with the number of distinct node names ever seen,
	// which a StatefulSet keeps small.
	siteIDs map[string]string
}

var _ memberlist.EventDelegate = (*eventDelegate)(nil)

func newEventDelegate(logger *slog.Logger, queue *eventQueue) *eventDelegate {
	return &eventDelegate{
		logger:  logger,
		queue:   queue,
		members: make(map[string]Member),
		siteIDs: make(map[string]string),
	}
}

// NotifyJoin implements memberlist.EventDelegate.
func (d *eventDelegate) NotifyJoin(n *memberlist.Node) {
	m, prev := d.record(n, StateAlive)
	d.logger.Info("member joined", keyNode, m.Name, keySiteID, m.SiteID, keyAddr, m.Addr)
	d.queue.push(Event{Type: EventJoin, Member: m})
	if prev != "" {
		d.siteChanged(m, prev)
	}
}

// NotifyLeave implements memberlist.EventDelegate.
func (d *eventDelegate) NotifyLeave(n *memberlist.Node) {
	m, _ := d.record(n, StateGone)
	d.logger.Info("member failed or left", keyNode, m.Name, keySiteID, m.SiteID, keyAddr, m.Addr)
	d.queue.push(Event{Type: EventLeave, Member: m})
}

// NotifyUpdate implements memberlist.EventDelegate.
func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) {
	m, prev := d.record(n, StateAlive)
	if prev != "" {
		d.siteChanged(m, prev)
		return
	}
	d.logger.Info("member updated", keyNode, m.Name, keySiteID, m.SiteID, keyAddr, m.Addr)
	d.queue.push(Event{Type: EventUpdate, Member: m})
}

// siteChanged reports a name that now belongs to a different data directory.
func (d *eventDelegate) siteChanged(m Member, prev string) {
	d.logger.Info("member returned with a new site id", keyNode, m.Name, keySiteID, m.SiteID, keyPrevSiteID, prev, keyAddr, m.Addr)
	d.queue.push(Event{Type: EventUpdate, Member: m, PrevSiteID: prev})
}

// record converts n, sets its state and stores it in the view. It returns
// the site id previously seen under n's name when that differs from the new
// one. Metadata that does not decode leaves the last valid site id in
// place, so the next valid one is compared with it.
func (d *eventDelegate) record(n *memberlist.Node, state State) (m Member, prevSiteID string) {
	m, err := memberFromNode(n)
	m.State = state
	if err != nil {
		d.logger.Warn("member metadata is invalid: the node may run an incompatible release", keyNode, m.Name, keyAddr, m.Addr, keyErr, err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	d.members[m.Name] = m
	if err != nil {
		return m, ""
	}
	prev, seen := d.siteIDs[m.Name]
	d.siteIDs[m.Name] = m.SiteID
	if seen && prev != m.SiteID {
		return m, prev
	}
	return m, ""
}

// alive returns the alive members sorted by name.
func (d *eventDelegate) alive() []Member {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Member, 0, len(d.members))
	for _, m := range d.members {
		if m.State == StateAlive {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// member returns the latest state recorded for name.
func (d *eventDelegate) member(name string) (Member, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.members[name]
	return m, ok
}
