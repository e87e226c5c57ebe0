package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// The home of a client id is chosen by rendezvous hashing over the live
// nodes, so a change of membership moves some ids to another home, which has
// no record of them. The owner of each session therefore keeps the record it
// sent to the home (ownedSessions) and registers it with the new home and the node
// after it, at a bounded rate, whenever the membership changes. A home that
// still finds no record queries every live node (lookupHolders), which is
// slower but equally correct.
//
// A home also prunes its records: a session that ended (not persistent, not
// connected) is forgotten after homePruneAge, and so is every record whose
// owner left the cluster or was reaped.

// Registration and pruning bounds.
const (
	registerBatch    = 500                    // records per PutHomeRecords call
	registerPause    = 100 * time.Millisecond // between two calls: at most 5,000 records per second
	registerTimeout  = 5 * time.Second        // per call
	homePruneAge     = 10 * time.Minute
	homePruneEvery   = time.Minute
	registerRetryGap = 5 * time.Second // after a failed call, before the next attempt
)

// ownedRecord is the record this node, as the owner, last sent to the home
// of a session.
type ownedRecord struct {
	generation uint64
	persistent bool
	connected  bool
	will       []byte
	willDelay  uint32
	// registeredWith is the site id of the home that has the record; a
	// change of membership that moves the home makes it differ.
	registeredWith string
}

// ownedSessions lists the sessions this node owns. Its lock is taken alone.
type ownedSessions struct {
	mu      sync.Mutex
	records map[string]ownedRecord

	registered atomic.Uint64 // records registered with a new home
	lookups    atomic.Uint64 // claims for which the home asked every node
	pruned     atomic.Uint64 // home records pruned
}

func (o *ownedSessions) put(clientID string, r ownedRecord) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.records == nil {
		o.records = make(map[string]ownedRecord)
	}
	o.records[clientID] = r
}

func (o *ownedSessions) remove(clientID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.records, clientID)
}

// disconnected records that the client left: a clean session ends with it.
func (o *ownedSessions) disconnected(clientID string, persistent bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.records[clientID]
	if !ok {
		return
	}
	if !persistent {
		delete(o.records, clientID)
		return
	}
	r.connected, r.will, r.willDelay, r.persistent = false, nil, 0, true
	o.records[clientID] = r
}

// adoptRestored adds the sessions restored from disk that no other node
// owns, so they are registered with their homes too. owners maps client ids
// to the owner their home records name, with generations in gens.
func (o *ownedSessions) adoptRestored(self string, ids []string, owners map[string]string, gens map[string]uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.records == nil {
		o.records = make(map[string]ownedRecord)
	}
	for _, id := range ids {
		if owner, ok := owners[id]; ok && owner != self {
			continue
		}
		if _, ok := o.records[id]; ok {
			continue
		}
		o.records[id] = ownedRecord{generation: gens[id], persistent: true}
	}
}

// ownerLoop registers this node's sessions with their new homes after every
// change of membership, and prunes this node's home records. Its owner is
// the Cluster (loop); it returns when c.stop closes.
func (c *Cluster) ownerLoop() {
	changes, cancel := c.fsm.Subscribe(fsm.ChangeNodes)
	defer cancel()
	prune := time.NewTicker(homePruneEvery)
	defer prune.Stop()
	retry := time.NewTimer(registerRetryGap)
	defer retry.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-changes:
		case <-c.ownedChanged:
		case <-retry.C:
		case <-prune.C:
			c.pruneHomeRecords()
			continue
		}
		if !c.registerOwned() {
			retry.Reset(registerRetryGap)
		}
	}
}

// registerOwned sends each owned session whose home moved to the new home
// and the node after it. It reports whether every call succeeded.
func (c *Cluster) registerOwned() bool {
	if !c.ready.Load() {
		return false
	}
	type pending struct {
		id   string
		home string
	}
	bySite := make(map[string][]*clusterpb.HomeRecord)
	var moved []pending
	c.owned.mu.Lock()
	for id, r := range c.owned.records {
		homes := c.homesOf(id, 2)
		if len(homes) == 0 || homes[0] == r.registeredWith {
			continue
		}
		rec := &clusterpb.HomeRecord{ClientId: id, Owner: c.siteID, Generation: r.generation,
			Persistent: r.persistent, Connected: r.connected, Will: r.will, WillDelaySeconds: r.willDelay}
		for _, site := range homes {
			bySite[site] = append(bySite[site], rec)
		}
		moved = append(moved, pending{id, homes[0]})
	}
	c.owned.mu.Unlock()
	if len(moved) == 0 {
		return true
	}

	failed := make(map[string]bool)
	for site, recs := range bySite {
		for start := 0; start < len(recs); start += registerBatch {
			chunk := recs[start:min(start+registerBatch, len(recs))]
			if err := c.registerWith(site, chunk); err != nil {
				c.log.Warn("registering sessions with their new home failed; retrying", "peer_site", site,
					"count", len(chunk), "err", err)
				failed[site] = true
				break
			}
			select {
			case <-c.stop:
				return false
			case <-time.After(registerPause):
			}
		}
	}

	c.owned.mu.Lock()
	for _, p := range moved {
		if failed[p.home] {
			continue
		}
		if r, ok := c.owned.records[p.id]; ok {
			r.registeredWith = p.home
			c.owned.records[p.id] = r
		}
	}
	c.owned.mu.Unlock()
	c.owned.registered.Add(uint64(len(moved)))
	c.log.Info("sessions registered with their homes after a change of membership", "count", len(moved))
	return len(failed) == 0
}

// registerWith sends records to the node with site id site, or applies them
// here.
func (c *Cluster) registerWith(site string, recs []*clusterpb.HomeRecord) error {
	if site == c.siteID {
		for _, r := range recs {
			c.applyRegistration(r)
		}
		return nil
	}
	client, err := c.clientForSite(site)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), registerTimeout)
	defer cancel()
	_, err = client.PutHomeRecords(ctx, &clusterpb.PutHomeRecordsRequest{Register: true, Records: recs})
	return err
}

// applyRegistration stores an owner's record unless the home has a newer
// one of another owner: a claim granted since then wins.
func (c *Cluster) applyRegistration(r *clusterpb.HomeRecord) {
	h := &c.home
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.records == nil {
		h.records = make(map[string]homeRecord)
	}
	old, ok := h.records[r.ClientId]
	if ok && old.owner != r.Owner && old.generation >= r.Generation {
		return
	}
	if ok && old.willTimer != nil {
		old.willTimer.Stop()
	}
	h.records[r.ClientId] = homeRecord{owner: r.Owner, generation: max(r.Generation, old.generation),
		persistent: r.Persistent, connected: r.Connected, will: r.Will, willDelay: r.WillDelaySeconds,
		touched: time.Now()}
}

// pruneHomeRecords deletes the records of sessions that ended more than
// homePruneAge ago, and those of owners that left the cluster or were reaped.
func (c *Cluster) pruneHomeRecords() {
	departed := make(map[string]bool) // site id -> left the cluster
	known := make(map[string]bool)
	for _, n := range c.fsm.Nodes() {
		known[n.SiteID] = true
		if n.State == fsm.NodeLeft {
			departed[n.SiteID] = true
		}
	}
	if len(known) == 0 {
		return // no state applied yet: every owner would look reaped
	}
	cutoff := time.Now().Add(-homePruneAge)
	h := &c.home
	h.mu.Lock()
	defer h.mu.Unlock()
	pruned := 0
	for id, r := range h.records {
		if r.willTimer != nil || h.locks[id] != nil {
			continue
		}
		ended := !r.persistent && !r.connected && r.touched.Before(cutoff)
		if ended || departed[r.owner] || (r.owner != "" && !known[r.owner]) {
			delete(h.records, id)
			pruned++
		}
	}
	c.owned.pruned.Add(uint64(pruned))
}
