package cluster

import (
	"context"
	"slices"
	"time"

	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// The home records of session ownership (sessions.go) outlive their owner:
// when a node dies, the home of each of its clients refuses a reconnect for
// a while (Config.SessionWait) and publishes the wills of those that were
// connected, after their delays.

// siteDead reports whether the node with this site id is committed dead (or
// left), and since when this node has known it.
func (c *Cluster) siteDead(site string) (bool, time.Time) {
	if site == c.siteID {
		return false, time.Time{}
	}
	for _, n := range c.fsm.Nodes() {
		if n.SiteID != site {
			continue
		}
		if n.State != fsm.NodeDead && n.State != fsm.NodeLeft {
			return false, time.Time{}
		}
		c.home.mu.Lock()
		defer c.home.mu.Unlock()
		if c.home.deadSince == nil {
			c.home.deadSince = make(map[string]time.Time)
		}
		since, ok := c.home.deadSince[site]
		if !ok {
			since = time.Now()
			c.home.deadSince[site] = since
		}
		return true, since
	}
	// No record: retired or reaped long ago.
	return true, time.Time{}
}

// putHomeRecord stores a record, cancelling the will timer of the one it
// replaces: a new claim means the client is back.
func (c *Cluster) putHomeRecord(clientID string, rec homeRecord) {
	h := &c.home
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.records == nil {
		h.records = make(map[string]homeRecord)
	}
	if old, ok := h.records[clientID]; ok && old.willTimer != nil {
		old.willTimer.Stop()
	}
	rec.touched = time.Now()
	h.records[clientID] = rec
}

// backupHomeRecord copies a record to the next node in rendezvous order, the
// one that becomes the home if this one dies, before the claim is answered.
// A copy that fails is logged: the claim still succeeds.
func (c *Cluster) backupHomeRecord(ctx context.Context, clientID string, rec homeRecord) {
	site := c.backupOf(clientID)
	if site == "" {
		return
	}
	client, err := c.clientForSite(site)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = client.PutHomeRecords(ctx, &clusterpb.PutHomeRecordsRequest{Backup: true,
			Records: []*clusterpb.HomeRecord{recordProto(clientID, rec)}})
	}
	if err != nil {
		c.log.Warn("copying a home record to the next node failed", "client_id", clientID, "site_id", site, "err", err)
	}
}

// backupOf returns the node after this one in rendezvous order for a client
// id: the second node when this one is the home, the third when this one
// stands in for a home that did not answer; "" when there is none.
func (c *Cluster) backupOf(clientID string) string {
	order := c.homesOf(clientID, 1<<30)
	for i, site := range order {
		if site == c.siteID && i+1 < len(order) {
			return order[i+1]
		}
	}
	return ""
}

// homesOf returns the first n live nodes in rendezvous order for a client
// id: the home, then the node that holds the copy of its records.
func (c *Cluster) homesOf(clientID string, n int) []string {
	type scored struct {
		site  string
		score uint64
	}
	all := []scored{{c.siteID, rendezvous(clientID, c.siteID)}}
	for _, n := range c.livePeers() {
		all = append(all, scored{n.SiteID, rendezvous(clientID, n.SiteID)})
	}
	slices.SortFunc(all, func(a, b scored) int {
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		if a.site > b.site {
			return -1
		}
		return 1
	})
	out := make([]string, 0, min(n, len(all)))
	for i := 0; i < n && i < len(all); i++ {
		out = append(out, all[i].site)
	}
	return out
}

func recordProto(clientID string, r homeRecord) *clusterpb.HomeRecord {
	return &clusterpb.HomeRecord{ClientId: clientID, Owner: r.owner, Generation: r.generation,
		Persistent: r.persistent, Connected: r.connected, Will: r.will, WillDelaySeconds: r.willDelay}
}

// ReportSession implements node.SessionMover: the owner reports to the home
// that its client disconnected, so the home drops the will. It runs in the
// background, bounded in time.
func (c *Cluster) ReportSession(clientID string, persistent bool) {
	c.owned.disconnected(clientID, persistent)
	home := c.homeOf(clientID)
	rec := &clusterpb.HomeRecord{ClientId: clientID, Owner: c.siteID, Persistent: persistent}
	if home == c.siteID {
		c.applyOwnerReport(rec)
		return
	}
	select {
	case <-c.stop:
		return // Close may be waiting on wg already: start nothing new
	default:
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		client, err := c.clientForSite(home)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := client.PutHomeRecords(ctx, &clusterpb.PutHomeRecordsRequest{Records: []*clusterpb.HomeRecord{rec}}); err != nil {
			c.log.Debug("reporting a disconnect to the home failed", "client_id", clientID, "err", err)
		}
	}()
}

// applyOwnerReport records that the owner's client disconnected, if the
// reporter still owns the session.
func (c *Cluster) applyOwnerReport(r *clusterpb.HomeRecord) {
	h := &c.home
	h.mu.Lock()
	defer h.mu.Unlock()
	old, ok := h.records[r.ClientId]
	if !ok || old.owner != r.Owner {
		return
	}
	if old.willTimer != nil {
		old.willTimer.Stop()
	}
	old.connected, old.will, old.willTimer = false, nil, nil
	old.persistent = r.Persistent
	old.touched = time.Now()
	h.records[r.ClientId] = old
}

func (s *service) PutHomeRecords(_ context.Context, req *clusterpb.PutHomeRecordsRequest) (*clusterpb.PutHomeRecordsResponse, error) {
	c := s.c
	for _, r := range req.Records {
		if req.Register {
			c.applyRegistration(r)
			continue
		}
		if !req.Backup {
			c.applyOwnerReport(r)
			continue
		}
		c.home.mu.Lock()
		old, ok := c.home.records[r.ClientId]
		c.home.mu.Unlock()
		if ok && old.generation > r.Generation {
			continue
		}
		c.putHomeRecord(r.ClientId, homeRecord{owner: r.Owner, generation: r.Generation, persistent: r.Persistent,
			connected: r.Connected, will: r.Will, willDelay: r.WillDelaySeconds})
	}
	return &clusterpb.PutHomeRecordsResponse{}, nil
}

// willLoop watches for committed deaths and schedules the wills of the dead
// node's connected clients whose home this node is.
func (c *Cluster) willLoop() {
	changes, cancel := c.fsm.Subscribe(fsm.ChangeNodes)
	defer cancel()
	handled := make(map[string]uint64) // site id -> incarnation whose death was handled
	for {
		for _, n := range c.fsm.Nodes() {
			if n.State != fsm.NodeDead || n.SiteID == c.siteID || handled[n.SiteID] == n.Incarnation+1 {
				continue
			}
			handled[n.SiteID] = n.Incarnation + 1
			c.scheduleWillsOf(n.SiteID, n.Name)
		}
		select {
		case <-c.stop:
			c.home.mu.Lock()
			for _, r := range c.home.records {
				if r.willTimer != nil {
					r.willTimer.Stop()
				}
			}
			c.home.mu.Unlock()
			return
		case <-changes:
		}
	}
}

// scheduleWillsOf arms the wills of the clients that were connected to the
// dead node, for the ids whose home this node is now.
func (c *Cluster) scheduleWillsOf(site, name string) {
	if c.holder == nil {
		return
	}
	h := &c.home
	h.mu.Lock()
	defer h.mu.Unlock()
	armed := 0
	for id, r := range h.records {
		if r.owner != site || !r.connected || len(r.will) == 0 || c.homeOf(id) != c.siteID {
			continue
		}
		clientID, gen, will := id, r.generation, r.will
		r.willTimer = time.AfterFunc(time.Duration(r.willDelay)*time.Second, func() {
			c.fireHomeWill(clientID, gen, will)
		})
		h.records[id] = r
		armed++
	}
	if armed > 0 {
		c.log.Info("dead node's clients had wills; publishing them after their delays", "peer", name, "wills", armed)
	}
}

// fireHomeWill publishes a will kept by the home, unless the client came back
// meanwhile (a newer claim).
func (c *Cluster) fireHomeWill(clientID string, gen uint64, will []byte) {
	h := &c.home
	h.mu.Lock()
	r, ok := h.records[clientID]
	if !ok || r.generation != gen || !r.connected {
		h.mu.Unlock()
		return
	}
	r.connected, r.will, r.willTimer = false, nil, nil
	h.records[clientID] = r
	h.mu.Unlock()
	if err := c.holder.PublishStoredWill(clientID, will); err != nil {
		c.log.Warn("publishing the will of a dead node's client failed", "client_id", clientID, "err", err)
	}
}
