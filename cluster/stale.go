package cluster

import (
	"context"
	"time"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// A node that was down while one of its clients got a fresh session on
// another node (after Config.SessionWait) comes back with a stale copy of
// that session on disk. Once the node is ready, staleLoop reads the record
// of each restored session from its home and the home's copy. It hands the
// restored sessions that another node owns to that owner (see
// handOverLeftovers) and discards them, unless a client has used them since
// the restart. Without this the stale copy kept its durable routes, so it
// went on collecting messages until it expired.

// StaleSessionDiscarder is the node's side: it lists the sessions restored
// from disk at start-up and discards one if it is still untouched. The
// cluster finds it by a type assertion on the Node passed to Start.
type StaleSessionDiscarder interface {
	// RestoredSessions returns the client ids of the persistent sessions
	// restored from disk that no client has used since.
	RestoredSessions() []string
	// DiscardStaleSession ends the restored session of clientID, without
	// its will, unless a client has used it since the restart. It reports
	// whether it did.
	DiscardStaleSession(clientID string) bool
	// StaleLeftovers returns the messages of such a restored session, for
	// its owner; AcceptLeftovers, on the owner, takes them if it waits for
	// them (the move's FinishExport failed).
	StaleLeftovers(clientID string) []*clusterpb.SessionMessage
	AcceptLeftovers(clientID string, msgs []*clusterpb.SessionMessage) bool
}

// staleLookupBatch bounds the client ids of one LookupHomeRecords call.
const staleLookupBatch = 1000

// staleInboundWait bounds the wait for what peers queued for this node
// while it was down, before its restored sessions are checked.
const staleInboundWait = 10 * time.Second

// staleLookupTimeout bounds one LookupHomeRecords call.
const staleLookupTimeout = 5 * time.Second

// staleLoop runs once per start, after the node is ready. Its owner is the
// Cluster (loop); it returns early when c.stop closes.
func (c *Cluster) staleLoop() {
	discarder, ok := c.node.(StaleSessionDiscarder)
	if !ok {
		return
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !c.ready.Load() {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
	}

	ids := discarder.RestoredSessions()
	if len(ids) == 0 {
		return
	}
	// Messages that peers queued for this node while it was down reach
	// the restored sessions first, so a hand-over below includes them.
	c.awaitInbound(context.Background(), staleInboundWait)
	records := c.lookupRecords(ids)
	owners := make(map[string]string, len(records))
	gens := make(map[string]uint64, len(records))
	discarded := 0
	for id, r := range records {
		owners[id], gens[id] = r.Owner, r.Generation
		if r.Owner == "" || r.Owner == c.siteID {
			continue
		}
		if !c.handOverLeftovers(discarder, id, r.Owner) {
			continue // keep the copy: its messages could not be handed over
		}
		if discarder.DiscardStaleSession(id) {
			discarded++
		}
	}
	c.log.Info("restored sessions checked with their homes", "restored", len(ids),
		"owned_elsewhere", discarded)

	// The sessions kept are this node's: register them with their homes,
	// which may have lost their records meanwhile.
	c.owned.adoptRestored(c.siteID, ids, owners, gens)
	select {
	case c.ownedChanged <- struct{}{}:
	default:
	}
}

// lookupRecords requests the record of each client id from its home and the
// home's copy, and returns the record with the highest generation. Ids that no
// node has a record of are left out.
func (c *Cluster) lookupRecords(ids []string) map[string]*clusterpb.HomeRecord {
	byNode := make(map[string][]string)
	for _, id := range ids {
		for _, site := range c.homesOf(id, 2) {
			byNode[site] = append(byNode[site], id)
		}
	}

	best := make(map[string]*clusterpb.HomeRecord)
	for site, list := range byNode {
		for start := 0; start < len(list); start += staleLookupBatch {
			chunk := list[start:min(start+staleLookupBatch, len(list))]
			recs, err := c.lookupHomeRecords(site, chunk)
			if err != nil {
				c.log.Warn("looking up home records failed; restored sessions kept", "peer_site", site,
					"count", len(chunk), "err", err)
				continue
			}
			for _, r := range recs {
				if old := best[r.ClientId]; old == nil || r.Generation > old.Generation {
					best[r.ClientId] = r
				}
			}
		}
	}
	return best
}

// lookupHomeRecords returns the records that the node with site id site
// keeps for ids.
func (c *Cluster) lookupHomeRecords(site string, ids []string) ([]*clusterpb.HomeRecord, error) {
	if site == c.siteID {
		return c.homeRecords(ids), nil
	}
	client, err := c.clientForSite(site)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), staleLookupTimeout)
	defer cancel()
	resp, err := client.LookupHomeRecords(ctx, &clusterpb.LookupHomeRecordsRequest{ClientIds: ids})
	if err != nil {
		return nil, err
	}
	return resp.Records, nil
}

// homeRecords returns the records this node keeps for ids.
func (c *Cluster) homeRecords(ids []string) []*clusterpb.HomeRecord {
	h := &c.home
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*clusterpb.HomeRecord
	for _, id := range ids {
		if r, ok := h.records[id]; ok {
			out = append(out, recordProto(id, r))
		}
	}
	return out
}

// LookupHomeRecords is the receiving end of lookupHomeRecords.
func (s *service) LookupHomeRecords(_ context.Context, req *clusterpb.LookupHomeRecordsRequest) (*clusterpb.LookupHomeRecordsResponse, error) {
	return &clusterpb.LookupHomeRecordsResponse{Records: s.c.homeRecords(req.ClientIds)}, nil
}

// handOverLeftovers sends the messages of a stale restored session to its
// owner, which takes them if this node died while the session was moving
// to it. It reports whether the copy may be discarded: nothing to send, or
// the owner replied.
func (c *Cluster) handOverLeftovers(d StaleSessionDiscarder, clientID, owner string) bool {
	msgs := d.StaleLeftovers(clientID)
	if len(msgs) == 0 {
		return true
	}
	client, err := c.clientForSite(owner)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), staleLookupTimeout)
		var resp *clusterpb.DeliverLeftoversResponse
		resp, err = client.DeliverLeftovers(ctx, &clusterpb.DeliverLeftoversRequest{ClientId: clientID, Messages: msgs})
		cancel()
		if err == nil && resp.Accepted {
			c.log.Info("stale session's messages handed over to its owner", "client_id", clientID,
				"peer_site", owner, "messages", len(msgs))
		}
	}
	if err != nil {
		c.log.Warn("handing a stale session's messages to its owner failed; the copy is kept", "client_id", clientID,
			"peer_site", owner, "err", err)
		return false
	}
	return true
}

// DeliverLeftovers is the receiving end of handOverLeftovers.
func (s *service) DeliverLeftovers(_ context.Context, req *clusterpb.DeliverLeftoversRequest) (*clusterpb.DeliverLeftoversResponse, error) {
	d, ok := s.c.node.(StaleSessionDiscarder)
	if !ok {
		return &clusterpb.DeliverLeftoversResponse{}, nil
	}
	return &clusterpb.DeliverLeftoversResponse{Accepted: d.AcceptLeftovers(req.ClientId, req.Messages)}, nil
}
