package cluster

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// Route batching. A node proposes a change only when a route's first or
// last local subscriber comes or goes; the syncer coalesces such changes for
// coalesceDelay and proposes at most maxBatchOps per Raft entry.
const (
	coalesceDelay = 2 * time.Millisecond
	maxBatchOps   = 1000
)

// routeKey names one route of this node.
type routeKey struct {
	filter string
	group  string
}

// routeChange is the latest wanted state of one route and the channel that
// closes when it is in force everywhere.
type routeChange struct {
	present bool
	durable bool
	done    chan struct{}
}

// routeSyncer proposes this node's route changes to Raft and holds each
// first subscriber's SUBACK until the change is applied on every node this
// one reaches, so a publish accepted anywhere after the SUBACK is forwarded
// here.
//
// Lock order: routeSyncer.mu is a leaf; RouteChanged is called under the
// node's route table lock and never blocks.
type routeSyncer struct {
	c    *Cluster
	kick chan struct{}

	mu struct {
		sync.Mutex
		// desired is the node's whole route set, as the node reports it.
		desired map[routeKey]routeChange
		// pending holds changes not yet proposed, inflight those proposed
		// and not yet confirmed.
		pending  map[routeKey]*routeChange
		inflight map[routeKey]*routeChange
		// replace asks for the whole set under the current incarnation, as
		// after a restart or when this node's routes were purged.
		replace bool
	}

	// leaderLost is when the syncer last found no leader, zero while one
	// is known; after two election timeouts without one, SUBACKs stop
	// waiting (the minority side of a partition).
	leaderLost time.Time

	batches, ops, failures atomic.Uint64 // for status and metrics

	timer routeBatchTimer // times committed batches, for metrics
}

func newRouteSyncer(c *Cluster) *routeSyncer {
	s := &routeSyncer{c: c, kick: make(chan struct{}, 1)}
	s.mu.desired = make(map[routeKey]routeChange)
	s.mu.pending = make(map[routeKey]*routeChange)
	s.mu.inflight = make(map[routeKey]*routeChange)
	return s
}

// RouteChanged implements node.Cluster.
func (c *Cluster) RouteChanged(filter, group string, present, durable bool) <-chan struct{} {
	return c.routes.change(routeKey{filter, group}, present, durable)
}

// RoutePending implements node.Cluster.
func (c *Cluster) RoutePending(filter, group string) <-chan struct{} {
	s := c.routes
	s.mu.Lock()
	defer s.mu.Unlock()
	k := routeKey{filter, group}
	if ch := s.mu.pending[k]; ch != nil {
		return ch.done
	}
	if ch := s.mu.inflight[k]; ch != nil {
		return ch.done
	}
	return nil
}

func (s *routeSyncer) change(k routeKey, present, durable bool) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if present {
		s.mu.desired[k] = routeChange{present: true, durable: durable}
	} else {
		delete(s.mu.desired, k)
	}
	ch := s.mu.pending[k]
	if ch == nil {
		ch = &routeChange{done: make(chan struct{})}
		s.mu.pending[k] = ch
	}
	ch.present, ch.durable = present, durable
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return ch.done
}

// replaceAll asks for the whole route set to be proposed again under the
// current incarnation.
func (s *routeSyncer) replaceAll() {
	s.mu.Lock()
	s.mu.replace = true
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run proposes batches until the cluster stops.
func (s *routeSyncer) run() {
	c := s.c
	retry := time.Duration(0)
	for {
		var wait <-chan time.Time
		if retry > 0 {
			wait = time.After(retry)
		}
		select {
		case <-c.stop:
			s.releaseAll()
			return
		case <-s.kick:
		case <-wait:
		}
		if !c.registered.Load() {
			// registerLoop calls replaceAll once the record commits. Until
			// then, with no leader in sight, SUBACKs must not wait for it.
			// Poll until then: registerLoop asks for the replace before it
			// marks the node registered, so the kick of that request may
			// arrive here first and must not be lost.
			retry = 50 * time.Millisecond
			if c.raft.Leader() == "" {
				retry = s.onFailure(errNoLeader, 50*time.Millisecond)
			} else {
				s.leaderLost = time.Time{}
			}
			continue
		}
		// Let changes that arrive together share a Raft entry.
		time.Sleep(coalesceDelay)
		for {
			more, err := s.flush()
			if err != nil {
				s.failures.Add(1)
				retry = s.onFailure(err, retry)
				break
			}
			retry = 0
			if !more {
				break
			}
		}
	}
}

// flush proposes one batch and reports whether more changes wait.
func (s *routeSyncer) flush() (bool, error) {
	c := s.c
	s.mu.Lock()
	var batch *clusterpb.RouteBatch
	var taken map[routeKey]*routeChange
	if s.mu.replace {
		batch, taken = s.takeReplaceLocked()
	} else {
		batch, taken = s.takeLocked()
	}
	more := len(s.mu.pending) > 0 || s.mu.replace
	s.mu.Unlock()
	if batch == nil {
		if !s.c.ready.Load() && !more {
			s.c.routesInForce()
		}
		return more, nil
	}

	// Bounded by two election timeouts: past that without a commit, the
	// leader is most likely out of reach, and onFailure decides whether
	// the SUBACKs stop waiting.
	ctx, cancel := context.WithTimeout(context.Background(), max(time.Second, 2*electionTimeout(c.cfg.Profile)))
	defer cancel()
	defer s.timer.observeSince(time.Now(), &s.batches, s.batches.Load())
	index, err := c.propose(ctx, clusterpb.CommandType_COMMAND_TYPE_ROUTE_BATCH, batch)
	if err != nil {
		s.putBack(batch, taken)
		return true, err
	}
	s.batches.Add(1)
	s.ops.Add(uint64(len(batch.Ops)))
	s.leaderLost = time.Time{}
	c.view.waitEverywhere(index)

	s.mu.Lock()
	for k, ch := range taken {
		close(ch.done)
		if s.mu.inflight[k] == ch {
			delete(s.mu.inflight, k)
		}
	}
	more = len(s.mu.pending) > 0 || s.mu.replace
	s.mu.Unlock()
	if !more && (batch.ReplaceLast || !batch.Replace) && !c.ready.Load() {
		c.log.Info("routes in force", "index", index)
		c.routesInForce()
	}
	return more, nil
}

// takeLocked moves up to maxBatchOps pending changes to inflight and
// returns them as a batch, or nil when none wait.
func (s *routeSyncer) takeLocked() (*clusterpb.RouteBatch, map[routeKey]*routeChange) {
	if len(s.mu.pending) == 0 {
		return nil, nil
	}
	batch := &clusterpb.RouteBatch{NodeSiteId: s.c.siteID, Incarnation: s.c.incarnation.Load()}
	taken := make(map[routeKey]*routeChange)
	for k, ch := range s.mu.pending {
		if len(batch.Ops) == maxBatchOps {
			break
		}
		batch.Ops = append(batch.Ops, routeOp(k, ch.present, ch.durable))
		taken[k] = ch
		delete(s.mu.pending, k)
		s.mu.inflight[k] = ch
	}
	return batch, taken
}

// takeReplaceLocked returns the whole desired set as one replace batch. The
// set is bounded by the node's subscription limits; a set larger than
// maxBatchOps still goes as one entry here.
//
// NOTE: the design has bounded replace batches (replace, then
// replace_last); this sends one entry with both flags, so a node with a very
// large route set writes one large Raft entry at restart.
func (s *routeSyncer) takeReplaceLocked() (*clusterpb.RouteBatch, map[routeKey]*routeChange) {
	s.mu.replace = false
	batch := &clusterpb.RouteBatch{NodeSiteId: s.c.siteID, Incarnation: s.c.incarnation.Load(), Replace: true, ReplaceLast: true}
	keys := make([]routeKey, 0, len(s.mu.desired))
	for k := range s.mu.desired {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].filter != keys[j].filter {
			return keys[i].filter < keys[j].filter
		}
		return keys[i].group < keys[j].group
	})
	for _, k := range keys {
		d := s.mu.desired[k]
		batch.Ops = append(batch.Ops, routeOp(k, true, d.durable))
	}
	// Every pending change is part of the desired set now.
	taken := s.mu.pending
	s.mu.pending = make(map[routeKey]*routeChange)
	for k, ch := range taken {
		s.mu.inflight[k] = ch
	}
	return batch, taken
}

func routeOp(k routeKey, present, durable bool) *clusterpb.RouteOp {
	kind := clusterpb.RouteOp_KIND_ADD
	if !present {
		kind = clusterpb.RouteOp_KIND_REMOVE
		durable = false
	}
	return &clusterpb.RouteOp{Kind: kind, Filter: k.filter, ShareGroup: k.group, Durable: durable}
}

// putBack returns the changes of a failed batch to pending, unless a newer
// change of the same route arrived meanwhile, and keeps their channels.
func (s *routeSyncer) putBack(batch *clusterpb.RouteBatch, taken map[routeKey]*routeChange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if batch.Replace {
		s.mu.replace = true
	}
	for k, ch := range taken {
		if s.mu.inflight[k] == ch {
			delete(s.mu.inflight, k)
		}
		if newer := s.mu.pending[k]; newer != nil {
			// The newer change supersedes this one; its waiters wait for it.
			close(ch.done)
			continue
		}
		s.mu.pending[k] = ch
	}
}

// onFailure decides what a failed proposal means for the waiting
// subscribers and returns the retry delay. While no leader is known for two
// election timeouts, this node is on the minority side: the SUBACKs go out
// and the changes stay queued for when a leader returns.
func (s *routeSyncer) onFailure(err error, retry time.Duration) time.Duration {
	c := s.c
	retry = min(max(2*retry, 50*time.Millisecond), time.Second)
	limit := 2 * electionTimeout(c.cfg.Profile)

	// A follower counts from the leader's last contact, not from this
	// failure: a proposal sent to a leader that was just cut off fails
	// only at its timeout, and the SUBACKs must not wait that long on top.
	if c.raft.State() != raft.Leader {
		if last := c.raft.LastContact(); !last.IsZero() && time.Since(last) >= limit {
			s.releaseWaiters()
			return retry
		}
	}
	if !errors.Is(err, errNoLeader) {
		c.log.Warn("route batch failed; retrying", "err", err, "retry", retry)
		return retry
	}
	if s.leaderLost.IsZero() {
		s.leaderLost = time.Now()
	}
	if time.Since(s.leaderLost) >= limit {
		s.releaseWaiters()
	}
	return retry
}

// releaseWaiters lets every waiting SUBACK go while the changes stay queued:
// the channels are replaced by fresh ones.
func (s *routeSyncer) releaseWaiters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.mu.pending {
		close(ch.done)
		ch.done = make(chan struct{})
	}
}

// releaseAll closes every channel at shutdown.
func (s *routeSyncer) releaseAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, ch := range s.mu.pending {
		close(ch.done)
		delete(s.mu.pending, k)
	}
	for k, ch := range s.mu.inflight {
		close(ch.done)
		delete(s.mu.inflight, k)
	}
}
