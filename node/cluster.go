package node

import (
	"context"
	"sync"
	"time"

	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/router"
	"github.com/starling-mqtt/starling/storage"
)

// Cluster is what a node asks of the cluster it belongs to. A single node
// runs with none (Config has no cluster and SetCluster is never called), and
// then no cluster code is on its path. The cluster package implements it;
// the node defines it here, where it is used, so that the two packages do
// not import each other.
type Cluster interface {
	// RouteChanged reports that this node's local subscribers to (filter,
	// group) went from none to some (present) or back to none, or that the
	// filter gained its first or lost its last persistent subscriber
	// (durable). It must not block. The returned channel is closed when the
	// change is in force on every node this one can reach, or when waiting
	// for that no longer helps (no leader); nil means there is
	// nothing to wait for. Calls for one key arrive in the order of the
	// changes.
	RouteChanged(filter, group string, present, durable bool) <-chan struct{}

	// RoutePending returns the channel of a route change of (filter, group)
	// that is not yet in force, or nil, so that a subscriber that arrives
	// while the first one's route is pending waits for the same commit.
	RoutePending(filter, group string) <-chan struct{}

	// MatchRemote appends to dst the routes of other nodes that match topic:
	// one entry per (node, filter, group), with ClientID set to the node's
	// site id.
	MatchRemote(topic string, dst []router.Entry) []router.Entry

	// Stage assigns m its sequence number toward the node with site id site
	// and, for QoS 1 and 2, writes it to that node's outbox in b, the batch
	// of the publish. The node passes the ticket to Release after b commits,
	// or to Abort when it fails.
	Stage(site string, m *clusterpb.ForwardMessage, b *storage.Batch) (ticket any, err error)
	Release(ticket any)
	Abort(ticket any)

	// Incarnation returns this node's boot incarnation in the cluster.
	Incarnation() uint64

	// SiteID returns this node's site id.
	SiteID() string

	// Ready reports whether the node has caught up with the cluster and may
	// report itself ready.
	Ready() bool

	// Full reports whether the outbox toward site has reached its bound, so
	// new QoS 1/2 publishes for it are refused (invariant 7).
	Full(site string) bool

	// Congested reports whether the stream toward site is behind, so the
	// node slows the publishers that feed it.
	Congested(site string) bool

	// RetainedClock returns a new hybrid logical clock reading for a
	// retained write of this node; readings only grow.
	RetainedClock() *clusterpb.HLC
	// ObserveRetainedClock moves the clock past a reading of another node.
	ObserveRetainedClock(c *clusterpb.HLC)
	// RetainedPeers returns the site ids of the other nodes that receive
	// every retained update: all that have not left the cluster.
	RetainedPeers() []string
	// RetainedHorizon returns how long tombstones of deleted retained
	// messages are kept.
	RetainedHorizon() time.Duration

	// SettleShared reports that a shared-subscription message that another
	// node forwarded reached its end here, so that node no longer keeps it
	// in custody (custody.go). It must not block.
	SettleShared(originSite string, originID uint64)
	// SiteDead reports whether the death of the node with this site id is
	// committed.
	SiteDead(site string) bool

	// StrictLeaderless reports whether the cluster runs in strict mode and
	// this node knows no leader, so new subscriptions are refused.
	StrictLeaderless() bool
}

// SetCluster joins the node to a cluster. Call it after New and before
// Start: it hands the cluster the routes of the sessions restored from disk,
// which the cluster re-asserts under the node's new incarnation.
func (s *Server) SetCluster(c Cluster) {
	s.cluster = c
	s.routes.mu.Lock()
	defer s.routes.mu.Unlock()
	for k, rc := range s.routes.counts {
		c.RouteChanged(k.filter, k.group, true, rc.durable > 0)
	}
}

// Store returns the node's storage, which the cluster's forwarder shares for
// its outboxes so that an outbox entry commits in the publisher's batch.
func (s *Server) Store() *storage.Store { return s.store }

// routeKey names a route of this node: a filter, and the share group for a
// shared subscription.
type routeKey struct {
	filter string
	group  string
}

// routeCount counts the local subscriptions behind one route.
type routeCount struct {
	subs    int
	durable int // subscriptions of persistent sessions
}

// routeTable counts this node's subscribers per route, so the cluster hears
// only of the changes that matter to other nodes: a route's first and last
// subscriber, and its first and last persistent one. Its lock is taken after
// a session's lock, never before.
type routeTable struct {
	mu     sync.Mutex
	counts map[routeKey]*routeCount
}

// addRoute counts one subscription and returns the channel to wait on before
// the SUBACK, or nil.
func (s *Server) addRoute(filter, group string, durable bool) <-chan struct{} {
	rt := &s.routes
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.counts == nil {
		rt.counts = make(map[routeKey]*routeCount)
	}
	k := routeKey{filter: filter, group: group}
	rc := rt.counts[k]
	if rc == nil {
		rc = &routeCount{}
		rt.counts[k] = rc
	}
	wasPresent, wasDurable := rc.subs > 0, rc.durable > 0
	rc.subs++
	if durable {
		rc.durable++
	}
	if s.cluster == nil {
		return nil
	}
	if !wasPresent || (durable && !wasDurable) {
		return s.cluster.RouteChanged(filter, group, true, rc.durable > 0)
	}
	return s.cluster.RoutePending(filter, group)
}

// removeRoute forgets one subscription counted by addRoute with the same
// durable flag.
func (s *Server) removeRoute(filter, group string, durable bool) {
	rt := &s.routes
	rt.mu.Lock()
	defer rt.mu.Unlock()
	k := routeKey{filter: filter, group: group}
	rc := rt.counts[k]
	if rc == nil {
		return
	}
	rc.subs--
	if durable {
		rc.durable--
	}
	present, nowDurable := rc.subs > 0, rc.durable > 0
	if !present {
		delete(rt.counts, k)
	}
	if s.cluster == nil {
		return
	}
	if !present || (durable && !nowDurable) {
		s.cluster.RouteChanged(filter, group, present, nowDurable)
	}
}

// routeCount returns the number of routes this node has, for status.
func (s *Server) routeCount() int {
	s.routes.mu.Lock()
	defer s.routes.mu.Unlock()
	return len(s.routes.counts)
}

// addSubscriptionLocked puts sub into the router and counts its route. The
// caller holds ss.mu. It returns the channel to wait on before the SUBACK.
func (ss *session) addSubscriptionLocked(sub *subscription) <-chan struct{} {
	sub.durable = ss.persistent.Load()
	ss.srv.trie.Add(ss.subscriptionEntry(sub))
	return ss.srv.addRoute(sub.topic, sub.group, sub.durable)
}

// removeSubscriptionLocked takes sub out of the router and its route count.
// The caller holds ss.mu.
func (ss *session) removeSubscriptionLocked(sub *subscription) {
	ss.srv.trie.Remove(ss.id, sub.group, sub.topic)
	ss.srv.removeRoute(sub.topic, sub.group, sub.durable)
}

// reflagRoutesLocked moves the session's subscriptions to its current
// persistence, after a reconnect changed its session expiry, so that the
// cluster keeps durable routes exactly for persistent sessions. The caller
// holds ss.mu.
func (ss *session) reflagRoutesLocked() {
	durable := ss.persistent.Load()
	for _, sub := range ss.mu.subs {
		if sub.durable == durable {
			continue
		}
		ss.srv.addRoute(sub.topic, sub.group, durable)
		ss.srv.removeRoute(sub.topic, sub.group, sub.durable)
		sub.durable = durable
	}
}

// routePending returns the channel of sub's route change if one is still
// pending in the cluster.
func (s *Server) routePending(sub *subscription) <-chan struct{} {
	if s.cluster == nil {
		return nil
	}
	return s.cluster.RoutePending(sub.topic, sub.group)
}

// maxRouteWait bounds the wait of a SUBACK for its routes. The cluster
// closes the channels itself within its own bounds; this one only guards
// the connection against a cluster that fails to.
const maxRouteWait = 10 * time.Second

// waitRoutes waits until every channel is closed, up to maxRouteWait.
func (s *Server) waitRoutes(waits []<-chan struct{}) {
	timer := time.NewTimer(maxRouteWait)
	defer timer.Stop()
	for _, ch := range waits {
		select {
		case <-ch:
		case <-timer.C:
			s.stats.routeWaitTimeouts.Add(1)
			s.log.Warn("SUBACK sent before its route was confirmed", "waited", maxRouteWait)
			return
		case <-s.stop:
			return
		}
	}
}

// UseClusterAuth moves the node's users, groups, roles and global rules onto
// the cluster's replicated records, so every node authenticates and
// authorizes alike. The configuration file's auth section is written there
// in the background once ready reports that proposals can commit.
//
// NOTE: records that this node kept in its own store before it joined a
// cluster are not copied over; add them again with starling user or the
// admin API.
func (s *Server) UseClusterAuth(r AuthRecords, ready func() bool) {
	as, ok := s.sec.store.(*AuthStore)
	if !ok {
		s.log.Warn("a custom auth store is configured; users, groups and rules stay on this node")
		return
	}
	as.SetRecords(r)
	if err := s.ReloadAuth(context.Background()); err != nil {
		s.log.Warn("reloading auth from the cluster failed", keyErr, err)
	}
	// Not ready until the file's rules are in force: a client admitted
	// before would be judged by whatever the cluster held.
	s.authSeedPending.Store(true)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			if !ready() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := s.ApplyAuthSeed(ctx, s.cfg.Auth.Seed)
			cancel()
			if err == nil {
				s.authSeedPending.Store(false)
				return
			}
			s.log.Warn("writing the configured users to the cluster failed; retrying in 2 s", keyErr, err)
			select {
			case <-s.stop:
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
}
