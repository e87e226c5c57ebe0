package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// RetainedNode is the local broker node's side of retained replication:
// its retained index, the merge of fetched entries, and the durable record
// of completed syncs. node.Server implements it.
type RetainedNode interface {
	// RetainedDigest returns one hash per bucket over the retained topics,
	// clocks and tombstones; buckets is a power of two up to 4096.
	RetainedDigest(buckets uint32) ([]uint64, error)
	// RetainedEntries calls fn with every retained message and tombstone
	// of the buckets want, or of all buckets when want is empty.
	RetainedEntries(buckets uint32, want []uint32, fn func(*clusterpb.ForwardMessage) error) error
	// MergeRetained applies entries last-writer-wins. staleBeforeMS, when
	// not zero, also drops local topics missing from entries, a full
	// snapshot, whose clock is older than it (unix ms).
	MergeRetained(entries []*clusterpb.ForwardMessage, staleBeforeMS int64) (applied, ignored int, err error)
	// PruneRetained drops tombstones and expired messages past horizon.
	PruneRetained(horizon time.Duration) error
	// RetainedSyncs returns the recorded completion times of retained
	// syncs, by peer site id.
	RetainedSyncs() (map[string]time.Time, error)
	// RecordRetainedSync durably records a completed sync with site.
	RecordRetainedSync(site string, at time.Time) error
	// RetainedCounters returns the updates staged for other nodes and the
	// remote writes applied and ignored as older.
	RetainedCounters() (sent, applied, ignored uint64)
	// RetainedMaxClock returns the latest clock stored.
	RetainedMaxClock() *clusterpb.HLC
}

// RetainedConfig configures retained replication.
type RetainedConfig struct {
	// SyncInterval is the time between digest comparisons with a random
	// live peer. Default 30 s.
	SyncInterval time.Duration
	// Horizon is how long tombstones are kept, and how old a node's last
	// sync may get before it must take a full snapshot again. Default 24 h.
	Horizon time.Duration
	// MaxSkew is how far ahead of the local wall clock a remote clock
	// reading may move this node's clock. Default 5 s.
	MaxSkew time.Duration
	// DigestBuckets is the number of buckets compared per sync, a power of
	// two up to 4096. Default 256.
	DigestBuckets uint32
}

// Default values of RetainedConfig.
const (
	DefaultRetainedSyncInterval  = 30 * time.Second
	DefaultRetainedHorizon       = 24 * time.Hour
	DefaultRetainedMaxSkew       = 5 * time.Second
	DefaultRetainedDigestBuckets = 256
)

func (c RetainedConfig) withDefaults() RetainedConfig {
	if c.SyncInterval <= 0 {
		c.SyncInterval = DefaultRetainedSyncInterval
	}
	if c.Horizon <= 0 {
		c.Horizon = DefaultRetainedHorizon
	}
	if c.MaxSkew <= 0 {
		c.MaxSkew = DefaultRetainedMaxSkew
	}
	if c.DigestBuckets == 0 || c.DigestBuckets > 4096 || c.DigestBuckets&(c.DigestBuckets-1) != 0 {
		c.DigestBuckets = DefaultRetainedDigestBuckets
	}
	return c
}

// RetainedStatus is the state of retained replication on this node.
type RetainedStatus struct {
	// Bootstrapped is set once the node holds a snapshot of the cluster's
	// retained set, or needed none. Until then the node is not ready and
	// does not serve digests or snapshots to peers.
	Bootstrapped bool   `json:"bootstrapped"`
	UpdatesSent  uint64 `json:"updates_sent"`
	Applied      uint64 `json:"applied"`
	IgnoredOlder uint64 `json:"ignored_older"`
	// Repairs counts the digest buckets fetched because they differed.
	Repairs uint64 `json:"repairs"`
	Syncs   uint64 `json:"syncs"`
	// LastSyncAgeSeconds is the time since the last completed sync with
	// any peer; -1 when there was none.
	LastSyncAgeSeconds float64 `json:"last_sync_age_seconds"`
	ClockClamps        uint64  `json:"clock_clamps"`
}

// errRetainedNotBootstrapped is the error of digest and fetch calls to a
// node that has not bootstrapped its retained set, because its store must
// not repair others.
var errRetainedNotBootstrapped = status.Error(codes.FailedPrecondition, "retained set not bootstrapped on this node")

// retainedSync replicates retained messages: it owns the clock, bootstraps
// the retained set before the node reports ready, and repairs it by digest
// comparison. Its loop runs on a goroutine of the Cluster.
type retainedSync struct {
	c    *Cluster
	node RetainedNode
	cfg  RetainedConfig
	hlc  *hlc

	bootstrapped atomic.Bool // the node may serve digests and snapshots
	routesReady  atomic.Bool // the route syncer reported its routes in force

	repairs       atomic.Uint64
	syncs         atomic.Uint64
	clamps        atomic.Uint64
	lastClampWarn atomic.Int64 // unix ns of the last clamp log line

	mu struct {
		sync.Mutex
		lastSync map[string]time.Time // by peer site id
	}
}

func newRetainedSync(c *Cluster, node RetainedNode, cfg RetainedConfig) *retainedSync {
	r := &retainedSync{c: c, node: node, cfg: cfg.withDefaults()}
	r.hlc = newHLC(c.siteID, r.cfg.MaxSkew, nil)
	r.hlc.Observe(clockFromProto(node.RetainedMaxClock()))
	r.mu.lastSync = make(map[string]time.Time)
	return r
}

// RetainedClock implements node.Cluster.
func (c *Cluster) RetainedClock() *clusterpb.HLC {
	now := c.retained.hlc.Now()
	return &clusterpb.HLC{WallMs: now.WallMS, Logical: now.Logical, SiteId: now.SiteID}
}

// ObserveRetainedClock implements node.Cluster. A reading more than MaxSkew
// ahead is clamped, counted and logged at most every 10 s.
func (c *Cluster) ObserveRetainedClock(h *clusterpb.HLC) {
	r := c.retained
	if !r.hlc.Observe(clockFromProto(h)) {
		return
	}
	r.clamps.Add(1)
	now := time.Now()
	last := r.lastClampWarn.Load()
	if now.UnixNano()-last > int64(10*time.Second) && r.lastClampWarn.CompareAndSwap(last, now.UnixNano()) {
		c.log.Warn("retained clock of a peer is ahead of the local clock by more than the maximum skew; clamped",
			"peer_site", h.GetSiteId(), "ahead", time.Duration(h.GetWallMs()-now.UnixMilli())*time.Millisecond,
			"max_skew", r.cfg.MaxSkew, "clamps", r.clamps.Load())
	}
}

// RetainedPeers implements node.Cluster: every node with a record that has
// not left, as the forwarder keeps streams to.
func (c *Cluster) RetainedPeers() []string {
	var out []string
	for _, n := range c.fsm.Nodes() {
		if n.SiteID != c.siteID && n.SiteID != "" && n.State != fsm.NodeLeft {
			out = append(out, n.SiteID)
		}
	}
	return out
}

// RetainedHorizon implements node.Cluster.
func (c *Cluster) RetainedHorizon() time.Duration { return c.retained.cfg.Horizon }

// routesInForce records that the node's routes are in force, and makes the
// node ready if its retained set is bootstrapped too.
func (c *Cluster) routesInForce() {
	c.retained.routesReady.Store(true)
	c.updateReady()
}

// routesNotInForce records that the node must assert its routes again.
func (c *Cluster) routesNotInForce() {
	c.retained.routesReady.Store(false)
	c.ready.Store(false)
}

func (c *Cluster) updateReady() {
	r := c.retained
	if r.routesReady.Load() && r.bootstrapped.Load() && !c.ready.Load() {
		c.ready.Store(true)
		c.log.Info("routes in force and retained set bootstrapped; node ready")
	}
}

// run bootstraps the retained set once this node's record is committed,
// then compares digests with a random live peer every SyncInterval and
// prunes tombstones past the horizon.
func (r *retainedSync) run() {
	c := r.c
	for !c.registered.Load() {
		if !r.sleep(100 * time.Millisecond) {
			return
		}
	}
	syncs, err := r.node.RetainedSyncs()
	if err != nil {
		c.log.Error("reading the retained sync times failed; taking a snapshot", "err", err)
	}
	r.mu.Lock()
	for site, at := range syncs {
		r.mu.lastSync[site] = at
	}
	r.mu.Unlock()

	for backoff := 200 * time.Millisecond; !r.bootstrap(); backoff = min(2*backoff, 5*time.Second) {
		if !r.sleep(backoff) {
			return
		}
	}
	c.updateReady()

	tick := time.NewTicker(r.cfg.SyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		if err := r.node.PruneRetained(r.cfg.Horizon); err != nil {
			c.log.Warn("pruning retained tombstones failed", "err", err)
		}
		if r.stale() {
			c.log.Warn("no retained sync for longer than the horizon; taking a snapshot before serving peers again", "horizon", r.cfg.Horizon)
			r.bootstrapped.Store(false)
			r.bootstrap()
			continue
		}
		r.repairOnce()
	}
}

// sleep waits d and reports false when the cluster stops first.
func (r *retainedSync) sleep(d time.Duration) bool {
	select {
	case <-r.c.stop:
		return false
	case <-time.After(d):
		return true
	}
}

// latestSync returns the latest completed sync with any peer.
func (r *retainedSync) latestSync() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var latest time.Time
	for _, at := range r.mu.lastSync {
		if at.After(latest) {
			latest = at
		}
	}
	return latest
}

// stale reports whether the last sync with any peer is older than the
// horizon, so tombstones this node never saw may have been dropped.
func (r *retainedSync) stale() bool {
	latest := r.latestSync()
	return !latest.IsZero() && time.Since(latest) > r.cfg.Horizon
}

// bootstrap takes a full snapshot from a live peer when this node has
// never synced (it is new, or its data directory is) or its last sync is
// older than the horizon, and reports whether the retained set is
// bootstrapped. With no live peer, or when every live peer is itself not
// bootstrapped (the cluster is starting for the first time), there is
// nothing to copy.
func (r *retainedSync) bootstrap() bool {
	c := r.c
	latest := r.latestSync()
	stale := r.stale()
	if !latest.IsZero() && !stale {
		r.bootstrapped.Store(true)
		return true
	}
	peers := c.livePeers()
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	notBootstrapped := 0
	for _, p := range peers {
		var staleBefore int64
		if stale {
			staleBefore = latest.UnixMilli()
		}
		n, err := r.fetchAndMerge(p, nil, staleBefore)
		if status.Code(err) == codes.FailedPrecondition {
			notBootstrapped++
			continue
		}
		if err != nil {
			c.log.Warn("retained snapshot from a peer failed", "peer", p.Name, "err", err)
			continue
		}
		c.log.Info("retained snapshot copied", "peer", p.Name, "entries", n, "stale", stale)
		r.bootstrapped.Store(true)
		return true
	}
	if notBootstrapped == len(peers) {
		if stale && len(peers) > 0 {
			c.log.Warn("no live peer has a bootstrapped retained set; serving this node's own", "peers", len(peers))
		}
		// Recorded under this node's own site id, so a restart does not
		// take this node for a new one.
		r.recordSync(c.siteID, time.Now())
		r.bootstrapped.Store(true)
		return true
	}
	return false
}

// repairOnce compares digests with a random live peer and fetches the
// buckets that differ.
func (r *retainedSync) repairOnce() {
	c := r.c
	peers := c.livePeers()
	if len(peers) == 0 {
		return
	}
	p := peers[rand.IntN(len(peers))]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := c.clients.peerClient(p.Name, p.PeerAddr)
	if err != nil {
		c.log.Debug("retained digest: no client", "peer", p.Name, "err", err)
		return
	}
	resp, err := client.RetainedDigest(ctx, &clusterpb.RetainedDigestRequest{Buckets: r.cfg.DigestBuckets})
	if err != nil {
		c.log.Debug("retained digest from a peer failed", "peer", p.Name, "err", err)
		return
	}
	local, err := r.node.RetainedDigest(r.cfg.DigestBuckets)
	if err != nil {
		c.log.Warn("local retained digest failed", "err", err)
		return
	}
	if len(resp.Hashes) != len(local) {
		c.log.Warn("retained digest of a peer has the wrong bucket count", "peer", p.Name, "got", len(resp.Hashes), "expected", len(local))
		return
	}

	var want []uint32
	for i := range local {
		if local[i] != resp.Hashes[i] {
			want = append(want, uint32(i))
		}
	}
	if len(want) > 0 {
		if _, err := r.fetchAndMerge(p, want, 0); err != nil {
			c.log.Debug("retained repair from a peer failed", "peer", p.Name, "err", err)
			return
		}
		r.repairs.Add(uint64(len(want)))
		return
	}
	r.recordSync(p.SiteID, time.Now())
}

// fetchAndMerge fetches the buckets want (all, when nil) from peer p,
// merges them and records the sync. It returns the number of entries.
func (r *retainedSync) fetchAndMerge(p fsm.Node, want []uint32, staleBeforeMS int64) (int, error) {
	c := r.c
	start := time.Now()
	client, err := c.clients.peerClient(p.Name, p.PeerAddr)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := client.RetainedFetch(ctx, &clusterpb.RetainedFetchRequest{Buckets: r.cfg.DigestBuckets, Want: want})
	if err != nil {
		return 0, err
	}

	var entries []*clusterpb.ForwardMessage
	for {
		e, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		if e.Message != nil {
			entries = append(entries, e.Message)
		}
	}
	if _, _, err := r.node.MergeRetained(entries, staleBeforeMS); err != nil {
		return 0, err
	}
	// The fetch started after every write this node saw from p until then,
	// so the sync time is its start.
	r.recordSync(p.SiteID, start)
	return len(entries), nil
}

// recordSync records a completed sync with site, in memory and on disk.
func (r *retainedSync) recordSync(site string, at time.Time) {
	r.syncs.Add(1)
	r.mu.Lock()
	r.mu.lastSync[site] = at
	r.mu.Unlock()
	if err := r.node.RecordRetainedSync(site, at); err != nil {
		r.c.log.Warn("recording a retained sync failed", "peer_site", site, "err", err)
	}
}

// serveDigest serves the RetainedDigest call.
func (r *retainedSync) serveDigest(req *clusterpb.RetainedDigestRequest) (*clusterpb.RetainedDigestResponse, error) {
	if !r.bootstrapped.Load() {
		return nil, errRetainedNotBootstrapped
	}
	hashes, err := r.node.RetainedDigest(req.Buckets)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &clusterpb.RetainedDigestResponse{Hashes: hashes}, nil
}

// serveFetch serves the RetainedFetch call.
func (r *retainedSync) serveFetch(req *clusterpb.RetainedFetchRequest, stream clusterpb.Peer_RetainedFetchServer) error {
	if !r.bootstrapped.Load() {
		return errRetainedNotBootstrapped
	}
	err := r.node.RetainedEntries(req.Buckets, req.Want, func(m *clusterpb.ForwardMessage) error {
		return stream.Send(&clusterpb.RetainedEntry{Message: m})
	})
	if err != nil && status.Code(err) == codes.Unknown {
		return status.Error(codes.InvalidArgument, fmt.Sprintf("retained fetch: %v", err))
	}
	return err
}

// status returns the retained replication state for Status.
func (r *retainedSync) status() RetainedStatus {
	sent, applied, ignored := r.node.RetainedCounters()
	st := RetainedStatus{
		Bootstrapped: r.bootstrapped.Load(),
		UpdatesSent:  sent, Applied: applied, IgnoredOlder: ignored,
		Repairs: r.repairs.Load(), Syncs: r.syncs.Load(), ClockClamps: r.clamps.Load(),
		LastSyncAgeSeconds: -1,
	}
	if latest := r.latestSync(); !latest.IsZero() {
		st.LastSyncAgeSeconds = time.Since(latest).Seconds()
	}
	return st
}
