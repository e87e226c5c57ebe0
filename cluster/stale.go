package cluster

import (
	"context"
	"time"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// A node that was down while one of its clients got a fresh session on
// another node (after Config.SessionWait) comes back with a stale copy of
// that session on disk. Once the node is ready, staleLoop asks the home of
// each restored session and its copy who owns the client id now, and
// discards the restored sessions that another node owns and that no client
// has used since the restart. Without this the stale copy kept its durable
// routes, so it went on collecting messages until it expired.

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
}

// staleLookupBatch bounds the client ids of one LookupHomeRecords call.
const staleLookupBatch = 1000

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
	records := c.lookupRecords(ids)
	owners := make(map[string]string, len(records))
	gens := make(map[string]uint64, len(records))
	discarded := 0
	for id, r := range records {
		owners[id], gens[id] = r.Owner, r.Generation
		if r.Owner == "" || r.Owner == c.siteID {
			continue
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

// lookupRecords asks the home of each client id and the home's copy for its
// record, and returns the record with the highest generation. Ids that no
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
