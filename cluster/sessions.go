package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// SessionHolder is the local node's part in moving sessions; node.Server
// implements it (node/takeover.go).
type SessionHolder interface {
	HasSession(clientID string) (has, connected bool)
	ExportSession(clientID string, discard bool) *clusterpb.SessionState
	FinishExport(clientID string) []*clusterpb.SessionMessage
	// PublishStoredWill publishes the will a home kept for a client of a
	// node that died.
	PublishStoredWill(clientID string, will []byte) error
}

// unavailableError refuses a claim for a session on a dead node, or, with
// strict set, a claim made in strict mode while no leader is known.
type unavailableError struct {
	clientID string
	strict   bool
}

func (e unavailableError) Error() string {
	if e.strict {
		return fmt.Sprintf("the session of %q cannot be claimed: strict mode and no cluster leader", e.clientID)
	}
	return fmt.Sprintf("the session of %q is on a node that is down", e.clientID)
}

// SessionUnavailable marks the error for the node (node/takeover.go).
func (unavailableError) SessionUnavailable() bool { return true }

// sessionHome is the home node's part of session ownership: it serializes
// the claims of one client id and remembers the last owner.
//
// The home copies each record to the next node in rendezvous order
// (home.go). A home that does not know an id, after its restart or a change
// of membership, asks every live node whether it holds the session, which
// costs one call per node for the first claim of each id.
//
// Owners register their sessions with the new home after a change of
// membership (owners.go), and a home prunes the records of sessions that
// ended, or whose owner left the cluster.
type sessionHome struct {
	mu      sync.Mutex
	locks   map[string]*claimLock
	records map[string]homeRecord
	counter uint64
	// deadSince is when this node first saw each dead site's death.
	deadSince map[string]time.Time
}

type claimLock struct {
	sync.Mutex
	users int
}

type homeRecord struct {
	owner      string // site id
	generation uint64
	persistent bool
	connected  bool
	will       []byte // encoded by the node; published if the owner dies
	willDelay  uint32
	willTimer  *time.Timer
	touched    time.Time // last claim, report or registration, for pruning
	// prev is the record this claim replaced, kept until the claimant
	// finishes, so an aborted claim (the holder did not answer) restores it.
	prev *homeRecord
}

// homeOf returns the site id of the home node of a client id: the first
// node in rendezvous order (homesOf), so every node picks the same home for
// the same epoch.
func (c *Cluster) homeOf(clientID string) string {
	return c.homesOf(clientID, 1)[0]
}

func rendezvous(clientID, site string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(clientID))
	h.Write([]byte{0})
	h.Write([]byte(site))
	return h.Sum64()
}

// TakeSession implements node.SessionMover.
func (c *Cluster) TakeSession(ctx context.Context, clientID string, cleanStart bool, rec *clusterpb.HomeRecord) (*clusterpb.SessionState, func(context.Context) ([]*clusterpb.SessionMessage, error), error) {
	if c.StrictLeaderless() {
		// Strict mode: a claim that the cluster may not see is refused,
		// so the client retries against a node on the majority side.
		return nil, nil, unavailableError{clientID: clientID, strict: true}
	}
	var resp *clusterpb.ClaimResponse
	var answeredBy string // the node that granted the claim
	for attempt := 0; ; attempt++ {
		req := &clusterpb.ClaimRequest{ClientId: clientID, ClaimantSiteId: c.siteID, Epoch: c.fsm.Epoch(),
			CleanStart: cleanStart, Record: rec}
		// The home, or when it does not answer (it died and gossip has
		// not noticed yet), the next node in rendezvous order, which holds
		// a copy of the home's record.
		var err error
		for _, home := range c.homesOf(clientID, 2) {
			if home == c.siteID {
				resp, err = c.claim(ctx, req)
			} else {
				var client clusterpb.PeerClient
				client, err = c.clientForSite(home)
				if err == nil {
					// Bounded per attempt: a home cut off by a partition
					// leaves the call hanging until its deadline, and the
					// client's CONNECT waits meanwhile.
					attemptCtx, cancel := context.WithTimeout(ctx, claimAttemptTimeout)
					resp, err = client.Claim(attemptCtx, req)
					cancel()
				}
			}
			if err == nil {
				answeredBy = home
				break
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("claim %q at its home: %w", clientID, err)
		}
		if resp.OwnerUnavailable {
			return nil, nil, unavailableError{clientID: clientID}
		}
		if !resp.WrongEpoch {
			break
		}
		if attempt == 20 {
			return nil, nil, errors.New("the home's membership epoch kept differing from this node's")
		}
		// This node has not applied the latest membership change yet.
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}

	var state *clusterpb.SessionState
	var from string
	unreachable := 0
	for _, site := range resp.Previous {
		if site == c.siteID {
			continue
		}
		client, err := c.clientForSite(site)
		if err == nil {
			discard := cleanStart || state != nil
			var out *clusterpb.ExportSessionResponse
			exportCtx, cancel := context.WithTimeout(ctx, exportAttemptTimeout)
			out, err = client.ExportSession(exportCtx, &clusterpb.ExportSessionRequest{ClientId: clientID, Generation: resp.Generation, Discard: discard})
			cancel()
			if err == nil && out.Session != nil && state == nil {
				state, from = out.Session, site
			}
		}
		if err != nil {
			unreachable++
			c.log.Warn("exporting a session from another node failed", "client_id", clientID, "site_id", site, "err", err)
		}
	}
	if state == nil && unreachable > 0 && unreachable == len(resp.Previous) && !cleanStart {
		// The holder did not answer: most likely it died and its death is
		// not committed yet. The client retries rather than lose its
		// session to a fresh one, and the home keeps the holder as owner.
		c.abortClaim(ctx, answeredBy, clientID, resp.Generation)
		return nil, nil, unavailableError{clientID: clientID}
	}
	c.owned.put(clientID, ownedRecord{generation: resp.Generation, persistent: rec.GetPersistent(),
		connected: rec.GetConnected(), will: rec.GetWill(), willDelay: rec.GetWillDelaySeconds(),
		registeredWith: answeredBy})
	if state == nil {
		return nil, nil, nil
	}
	finish := func(ctx context.Context) ([]*clusterpb.SessionMessage, error) {
		client, err := c.clientForSite(from)
		if err != nil {
			return nil, err
		}
		out, err := client.FinishExport(ctx, &clusterpb.FinishExportRequest{ClientId: clientID, Generation: resp.Generation})
		if err != nil {
			return nil, err
		}
		return out.Messages, nil
	}
	return state, finish, nil
}

// claimAttemptTimeout bounds one claim call to a home node, and
// exportAttemptTimeout one export from the node that held the session.
const (
	claimAttemptTimeout  = 1500 * time.Millisecond
	exportAttemptTimeout = 3 * time.Second
)

// clientForSite returns a gRPC client for the live node with site id site.
func (c *Cluster) clientForSite(site string) (clusterpb.PeerClient, error) {
	for _, n := range c.fsm.Nodes() {
		if n.SiteID == site {
			return c.clients.peerClient(n.Name, n.PeerAddr)
		}
	}
	return nil, fmt.Errorf("no node record for site %s", site)
}

// abortClaim gives up a claim at the home, which restores the owner before it.
func (c *Cluster) abortClaim(ctx context.Context, home, clientID string, gen uint64) {
	req := &clusterpb.ClaimRequest{ClientId: clientID, ClaimantSiteId: c.siteID, Abort: true, Generation: gen, Epoch: c.fsm.Epoch()}
	var err error
	if home == c.siteID {
		_, err = c.claim(ctx, req)
	} else {
		var client clusterpb.PeerClient
		if client, err = c.clientForSite(home); err == nil {
			_, err = client.Claim(ctx, req)
		}
	}
	if err != nil {
		c.log.Warn("giving up a session claim at the home failed", "client_id", clientID, "err", err)
	}
}

// claim handles a claim on the home node.
func (c *Cluster) claim(ctx context.Context, req *clusterpb.ClaimRequest) (*clusterpb.ClaimResponse, error) {
	if req.Abort {
		h := &c.home
		h.mu.Lock()
		defer h.mu.Unlock()
		if r, ok := h.records[req.ClientId]; ok && r.generation == req.Generation && r.owner == req.ClaimantSiteId && r.prev != nil {
			h.records[req.ClientId] = *r.prev
		}
		return &clusterpb.ClaimResponse{}, nil
	}
	if epoch := c.fsm.Epoch(); req.Epoch != epoch {
		return &clusterpb.ClaimResponse{WrongEpoch: true, HomeEpoch: epoch}, nil
	}
	h := &c.home
	h.mu.Lock()
	if h.locks == nil {
		h.locks = make(map[string]*claimLock)
	}
	if h.records == nil {
		// Registrations may have filled the records before the first
		// claim: never replace them.
		h.records = make(map[string]homeRecord)
	}
	l := h.locks[req.ClientId]
	if l == nil {
		l = &claimLock{}
		h.locks[req.ClientId] = l
	}
	l.users++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		if l.users--; l.users == 0 {
			delete(h.locks, req.ClientId)
		}
		h.mu.Unlock()
	}()

	l.Lock()
	defer l.Unlock()
	h.mu.Lock()
	rec, known := h.records[req.ClientId]
	h.counter++
	gen := c.fsm.Epoch()<<32 | h.counter&0xffffffff
	h.mu.Unlock()

	var previous []string
	switch {
	case known && rec.owner != "" && rec.owner != req.ClaimantSiteId:
		if dead, since := c.siteDead(rec.owner); dead {
			if holders := c.lookupHolders(ctx, req.ClientId, req.ClaimantSiteId); len(holders) > 0 {
				// The dead owner was still taking the session over when
				// it died: the node it came from keeps the session
				// (frozen, then unfrozen), so the claim takes it there.
				previous = holders
				break
			}
			if c.siteHasSession(ctx, req.ClaimantSiteId, req.ClientId) {
				break // the claimant is that node: it serves its own copy
			}
			// The session is on a node that is down. A client that wants
			// it back waits for the node a while; after the wait it starts
			// afresh, and the stale copy is dropped when its node returns.
			if rec.persistent && !req.CleanStart && time.Since(since) < c.cfg.SessionWait {
				return &clusterpb.ClaimResponse{OwnerUnavailable: true}, nil
			}
			break
		}
		previous = []string{rec.owner}
	case !known:
		previous = c.lookupHolders(ctx, req.ClientId, req.ClaimantSiteId)
	}
	next := homeRecord{owner: req.ClaimantSiteId, generation: gen}
	if known && rec.owner != req.ClaimantSiteId {
		prev := rec
		prev.willTimer, prev.prev = nil, nil
		next.prev = &prev
	}
	if r := req.Record; r != nil {
		next.persistent, next.connected = r.Persistent, r.Connected
		next.will, next.willDelay = r.Will, r.WillDelaySeconds
	}
	c.putHomeRecord(req.ClientId, next)
	c.backupHomeRecord(ctx, req.ClientId, next)
	return &clusterpb.ClaimResponse{Generation: gen, Previous: previous}, nil
}

// lookupHolders asks every live node except the claimant whether it holds
// a session for the client id, and returns those that do, connected ones
// first.
func (c *Cluster) lookupHolders(ctx context.Context, clientID, claimant string) []string {
	c.owned.lookups.Add(1)
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RouteWait)
	defer cancel()
	type answer struct {
		site      string
		has, conn bool
	}
	nodes := append(c.livePeers(), fsm.Node{SiteID: c.siteID})
	answers := make(chan answer, len(nodes))
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n.SiteID == claimant {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n.SiteID == c.siteID {
				has, conn := c.holder.HasSession(clientID)
				answers <- answer{n.SiteID, has, conn}
				return
			}
			client, err := c.clients.peerClient(n.Name, n.PeerAddr)
			if err != nil {
				return
			}
			resp, err := client.HasSession(ctx, &clusterpb.HasSessionRequest{ClientId: clientID})
			if err != nil {
				c.log.Warn("session lookup on a node failed", "peer", n.Name, "client_id", clientID, "err", err)
				return
			}
			answers <- answer{n.SiteID, resp.Has, resp.Connected}
		}()
	}
	wg.Wait()
	close(answers)
	var connected, offline []string
	for a := range answers {
		switch {
		case a.conn:
			connected = append(connected, a.site)
		case a.has:
			offline = append(offline, a.site)
		}
	}
	return append(connected, offline...)
}

func (s *service) Claim(ctx context.Context, req *clusterpb.ClaimRequest) (*clusterpb.ClaimResponse, error) {
	if s.c.holder == nil {
		return nil, status.Error(codes.Unimplemented, "this node does not move sessions")
	}
	return s.c.claim(ctx, req)
}

func (s *service) HasSession(_ context.Context, req *clusterpb.HasSessionRequest) (*clusterpb.HasSessionResponse, error) {
	if s.c.holder == nil {
		return &clusterpb.HasSessionResponse{}, nil
	}
	has, conn := s.c.holder.HasSession(req.ClientId)
	return &clusterpb.HasSessionResponse{Has: has, Connected: conn}, nil
}

func (s *service) ExportSession(_ context.Context, req *clusterpb.ExportSessionRequest) (*clusterpb.ExportSessionResponse, error) {
	if s.c.holder == nil {
		return &clusterpb.ExportSessionResponse{}, nil
	}
	s.c.owned.remove(req.ClientId) // the session leaves this node
	return &clusterpb.ExportSessionResponse{Session: s.c.holder.ExportSession(req.ClientId, req.Discard)}, nil
}

func (s *service) FinishExport(ctx context.Context, req *clusterpb.FinishExportRequest) (*clusterpb.FinishExportResponse, error) {
	if s.c.holder == nil {
		return &clusterpb.FinishExportResponse{}, nil
	}
	s.c.awaitInbound(ctx, inboundWait)
	return &clusterpb.FinishExportResponse{Messages: s.c.holder.FinishExport(req.ClientId)}, nil
}

// siteHasSession reports whether the node with site id site holds the
// session of clientID. A failed call counts as no.
func (c *Cluster) siteHasSession(ctx context.Context, site, clientID string) bool {
	if site == c.siteID {
		if c.holder == nil {
			return false
		}
		has, _ := c.holder.HasSession(clientID)
		return has
	}
	client, err := c.clientForSite(site)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, claimAttemptTimeout)
	defer cancel()
	resp, err := client.HasSession(ctx, &clusterpb.HasSessionRequest{ClientId: clientID})
	return err == nil && resp.Has
}
