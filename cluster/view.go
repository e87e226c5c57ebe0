package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/router"
)

// routeView is this node's router view of the other nodes' routes: a trie
// whose entries name a site id where a subscription names a client. It is
// rebuilt from the state machine after every change of routes, and records
// the Raft index it reflects, so WaitApplied can promise that a route
// committed at an index is in the view.
type routeView struct {
	c     *Cluster
	delay time.Duration // test hook: Config.ApplyDelay
	trie  *router.Trie

	// incarnations maps site ids to committed boot incarnations, for the
	// publish path, which must not copy the node records per message.
	incarnations atomic.Pointer[map[string]uint64]

	mu struct {
		sync.Mutex
		index   uint64
		entries map[fsm.Route]struct{}
		changed chan struct{} // closed and replaced when index rises
	}
}

func newRouteView(c *Cluster, delay time.Duration) *routeView {
	v := &routeView{c: c, delay: delay, trie: router.NewTrie()}
	v.mu.entries = make(map[fsm.Route]struct{})
	v.mu.changed = make(chan struct{})
	return v
}

// MatchRemote implements node.Cluster.
func (c *Cluster) MatchRemote(topic string, dst []router.Entry) []router.Entry {
	return c.view.trie.Match(topic, dst)
}

// run refreshes the view after every change of routes or node records.
func (v *routeView) run() {
	changes, cancel := v.c.fsm.Subscribe(fsm.ChangeRoutes | fsm.ChangeNodes)
	defer cancel()
	for {
		v.refresh()
		select {
		case <-v.c.stop:
			return
		case <-changes:
		}
	}
}

// refresh brings the view up to the state machine's routes.
func (v *routeView) refresh() {
	if v.delay > 0 {
		time.Sleep(v.delay)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	routes, index := v.c.fsm.RoutesAt()
	if index <= v.mu.index {
		return
	}
	self := v.c.siteID
	next := make(map[fsm.Route]struct{}, len(routes))
	for _, r := range routes {
		if r.SiteID == self {
			continue
		}
		r.Durable = false // the view matches topics; durability is the leader's concern
		next[r] = struct{}{}
		if _, ok := v.mu.entries[r]; !ok {
			v.trie.Add(router.Entry{ClientID: r.SiteID, Group: r.ShareGroup, Filter: r.Filter, QoS: 2})
		}
	}
	for r := range v.mu.entries {
		if _, ok := next[r]; !ok {
			v.trie.Remove(r.SiteID, r.ShareGroup, r.Filter)
		}
	}
	v.mu.entries = next
	incs := make(map[string]uint64)
	for _, n := range v.c.fsm.Nodes() {
		incs[n.SiteID] = n.Incarnation
	}
	v.incarnations.Store(&incs)
	v.mu.index = index
	close(v.mu.changed)
	v.mu.changed = make(chan struct{})
}

// waitApplied returns once the view reflects index, or when ctx ends.
func (v *routeView) waitApplied(ctx context.Context, index uint64) (uint64, error) {
	if err := v.c.fsm.WaitApplied(ctx, index); err != nil {
		return 0, err
	}
	for {
		v.mu.Lock()
		got, changed := v.mu.index, v.mu.changed
		v.mu.Unlock()
		if got >= index {
			return got, nil
		}
		// Applied but not yet in the view: refresh here rather than wait
		// for the run loop, which may be behind.
		v.refresh()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-changed:
		default:
		}
	}
}

// routeCount returns the number of remote routes in the view.
func (v *routeView) routeCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.mu.entries)
}

// waitEverywhere waits until every live node this one reaches has index in
// its view, each for at most Config.RouteWait. A node that does not answer
// in time is logged and counted; its SUBACK waits no longer (invariant 6).
func (v *routeView) waitEverywhere(index uint64) {
	c := v.c
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RouteWait)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := v.waitApplied(ctx, index); err != nil {
			c.log.Warn("route not applied locally in time", "index", index, "err", err)
		}
	}()
	for _, n := range c.livePeers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client, err := c.clients.peerClient(n.Name, n.PeerAddr)
			if err == nil {
				_, err = client.WaitApplied(ctx, &clusterpb.WaitAppliedRequest{Index: index})
			}
			if err != nil {
				c.routeWaitMisses.Add(1)
				c.log.Warn("peer did not confirm a route in time; SUBACK sent without it",
					"peer", n.Name, "index", index, "err", err)
			}
		}()
	}
	wg.Wait()
}

// incarnationOf returns the committed incarnation of a site, 0 if unknown.
func (v *routeView) incarnationOf(site string) uint64 {
	if m := v.incarnations.Load(); m != nil {
		return (*m)[site]
	}
	return 0
}
