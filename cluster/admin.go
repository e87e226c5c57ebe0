package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/cluster/membership"
	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage/raftstore"
)

// Errors of RemoveNode.
var (
	// ErrRemoveSelf rejects removing the node that handles the request.
	ErrRemoveSelf = errors.New("cluster: a node cannot remove itself")
	// ErrNodeNotFound means no committed node record has the name.
	ErrNodeNotFound = errors.New("cluster: node not found")
	// ErrNodeAlive rejects removing a node that gossip lists as alive,
	// unless the caller forces it.
	ErrNodeAlive = errors.New("cluster: node is alive in gossip")
	// ErrNotLeader means the request needs the Raft leader. The error is
	// a *NotLeaderError, which names the leader when one is known.
	ErrNotLeader = errors.New("cluster: this node is not the raft leader")
)

// NotLeaderError is returned by leader-only operations on another node.
type NotLeaderError struct {
	Leader string // name of the leader; empty while none is known
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "cluster: no raft leader is known; retry once the cluster has elected one"
	}
	return fmt.Sprintf("cluster: this node is not the raft leader; send the request to the leader, node %q", e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// RemovedNode describes a node that RemoveNode removed.
type RemovedNode struct {
	Name   string `json:"name"`
	SiteID string `json:"site_id"`
	// Suffrage is the node's suffrage in the Raft configuration before the
	// removal (Voter or Nonvoter), empty if it was not in it.
	Suffrage string `json:"suffrage,omitempty"`
	// OutboxDropped counts the messages deleted from this node's outbox
	// toward the removed node.
	OutboxDropped int64 `json:"outbox_dropped"`
}

// removeTimeout bounds each Raft step of RemoveNode when ctx has no
// deadline.
const removeTimeout = 10 * time.Second

// RemoveNode removes a node that will not return from the cluster for good.
// It commits a NodeLeave with remove_record, which purges all the node's
// routes and drops its record. Then it removes the node's site id from the
// Raft configuration and drops this node's outbox toward it. The other
// nodes drop theirs when the record disappears from their state
// (outboxReaper).
//
// It runs only on the Raft leader, because only the leader can change the
// Raft configuration; on another node it returns a *NotLeaderError naming
// the leader. It rejects removing this node (ErrRemoveSelf), an unknown
// name (ErrNodeNotFound) and, unless force is set, a node that gossip
// lists as alive (ErrNodeAlive). A forced removal of a node that still
// runs does not last: the node registers again and the leader adds it back.
func (c *Cluster) RemoveNode(ctx context.Context, name string, force bool) (RemovedNode, error) {
	if name == c.cfg.NodeName {
		return RemovedNode{}, fmt.Errorf("%w: %q handles this request; send it to another node", ErrRemoveSelf, name)
	}
	n, ok := c.fsm.Node(name)
	if !ok {
		return RemovedNode{}, fmt.Errorf("%w: %q has no committed record", ErrNodeNotFound, name)
	}
	if !force {
		for _, m := range c.members.Members() {
			if m.Name == name {
				return RemovedNode{}, fmt.Errorf("%w: %q is %s in gossip; stop it first, or force the removal", ErrNodeAlive, name, m.State)
			}
		}
	}
	if c.raft.State() != raft.Leader {
		_, id := c.raft.LeaderWithID()
		return RemovedNode{}, &NotLeaderError{Leader: c.nameOfSite(string(id))}
	}

	out := RemovedNode{Name: n.Name, SiteID: n.SiteID}
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return out, fmt.Errorf("cluster: read raft configuration: %w", err)
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == n.SiteID {
			out.Suffrage = s.Suffrage.String()
		}
	}

	ctx, cancel := withDefaultTimeout(ctx, removeTimeout)
	defer cancel()

	// The record goes first. Without it, the leader's reconcile loop
	// treats the site id as retired and adds it back only while gossip
	// still lists the node.
	// NOTE: NodeLeave names the node, not its site id, so a node that
	// re-registered under the same name with a new disk between the checks
	// above and the commit loses its new record; it registers again.
	// Read the outbox before the leave commits: from then on the reaper of
	// peersLoop may drop it first.
	before := c.fwd.Stats()
	_, err := c.propose(ctx, clusterpb.CommandType_COMMAND_TYPE_NODE_LEAVE,
		&clusterpb.NodeLeave{Name: n.Name, RemoveRecord: true})
	if errors.Is(err, errNoLeader) {
		return out, &NotLeaderError{}
	}
	if err != nil {
		return out, fmt.Errorf("cluster: commit the removal of %q: %w", name, err)
	}

	if out.Suffrage != "" {
		timeout := removeTimeout
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d)
		}
		if err := c.raft.RemoveServer(raft.ServerID(n.SiteID), 0, timeout).Error(); err != nil {
			return out, fmt.Errorf("cluster: record of %q removed, but removing site id %s from the raft configuration failed (the leader retries on its own): %w",
				name, n.SiteID, err)
		}
	}

	if err := c.fwd.DropPeer(n.SiteID); err != nil {
		c.log.Error("removed node's outbox not dropped; its messages stay on disk", "peer", name, "site_id", n.SiteID, "err", err)
	}
	for _, ps := range before {
		if ps.SiteID == n.SiteID {
			out.OutboxDropped = ps.OutboxDepth
		}
	}
	c.log.Info("node removed from the cluster", "peer", name, "site_id", n.SiteID,
		"suffrage", out.Suffrage, "forced", force, "outbox_dropped", out.OutboxDropped)
	return out, nil
}

// withDefaultTimeout returns ctx with timeout added when ctx has no
// deadline.
func withDefaultTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, timeout)
}

// outboxReaper drops the forward outbox of every site id whose node record
// disappears: a node removed by RemoveNode or reaped, or a site id retired
// because its name came back with a new disk. peersLoop owns it and calls
// reap with the committed records after every change of them.
//
// NOTE: it tracks only the site ids of records seen since this node
// started, so an outbox toward a site removed while this node was down
// stays on disk.
type outboxReaper struct {
	c     *Cluster
	known map[string]string // site id -> node name, of the records last seen
}

func newOutboxReaper(c *Cluster) *outboxReaper {
	return &outboxReaper{c: c, known: make(map[string]string)}
}

// reap drops the outbox of each known site id missing from nodes and
// remembers the site ids of nodes. A failed drop is logged and tried again
// at the next call.
func (r *outboxReaper) reap(nodes []fsm.Node) {
	current := make(map[string]string, len(nodes))
	for _, n := range nodes {
		if n.SiteID != r.c.siteID {
			current[n.SiteID] = n.Name
		}
	}
	for site, name := range r.known {
		if _, ok := current[site]; ok {
			continue
		}
		if err := r.c.fwd.DropPeer(site); err != nil {
			r.c.log.Error("outbox of a removed node not dropped; retrying at the next change", "peer", name, "site_id", site, "err", err)
			current[site] = name
			continue
		}
		r.c.log.Info("node record gone; dropped its outbox", "peer", name, "site_id", site)
	}
	r.known = current
}

// RecoverServer is one surviving node given to Recover.
type RecoverServer struct {
	Name    string // node name, for messages
	SiteID  string // Raft server id: the content of DataDir/cluster/site-id
	Address string // advertised peer address, host:port
}

// Recover replaces the Raft configuration stored in dataDir/cluster with
// one whose voters are servers, through raft.RecoverCluster, after the
// cluster lost its quorum for good. The node must be stopped; Recover
// fails while another process holds the Raft store open. Run it with the
// same servers on every surviving node, then start them.
//
// The recovery counts every entry in this node's log as committed, even
// one the old majority never committed, so nodes recovered from different
// logs can disagree. Recover rejects a list that lacks this node's own
// site id.
func Recover(dataDir string, servers []RecoverServer, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	conf, err := recoverConfiguration(servers)
	if err != nil {
		return err
	}
	st, err := openStoredRaft(dataDir, logger)
	if err != nil {
		return err
	}
	defer st.close()
	if !slices.ContainsFunc(conf.Servers, func(s raft.Server) bool { return string(s.ID) == st.siteID }) {
		return fmt.Errorf("cluster: this node's site id %s (in %s) is not among the servers given: list it, or do not recover this node",
			st.siteID, filepath.Join(dataDir, "cluster", membership.SiteIDFile))
	}

	if err := st.recover(conf); err != nil {
		return err
	}
	logger.Warn("raft configuration replaced by an offline recovery", "component", "cluster",
		"site_id", st.siteID, "servers", formatServers(conf.Servers))
	return nil
}

// StoredConfiguration returns the Raft configuration stored in
// dataDir/cluster, as the node would start with it. Like Recover it needs
// the node to be stopped.
func StoredConfiguration(dataDir string, logger *slog.Logger) (raft.Configuration, error) {
	if logger == nil {
		logger = slog.Default()
	}
	st, err := openStoredRaft(dataDir, logger)
	if err != nil {
		return raft.Configuration{}, err
	}
	defer st.close()
	conf, err := raft.GetConfiguration(st.raftConfig(), fsm.New(), st.logs, st.logs, st.snaps, st.trans)
	if err != nil {
		return raft.Configuration{}, fmt.Errorf("cluster: read the stored raft configuration: %w", err)
	}
	return conf, nil
}

// recoverConfiguration checks servers and returns them as a configuration
// of voters.
func recoverConfiguration(servers []RecoverServer) (raft.Configuration, error) {
	if len(servers) == 0 {
		return raft.Configuration{}, errors.New("cluster: recover needs at least one server: list the surviving nodes")
	}
	var conf raft.Configuration
	names := make(map[string]bool)
	sites := make(map[string]bool)
	for _, s := range servers {
		switch {
		case s.Name == "" || s.SiteID == "" || s.Address == "":
			return conf, fmt.Errorf("cluster: server %+v is incomplete: give NAME=SITEID@HOST:PORT", s)
		case names[s.Name]:
			return conf, fmt.Errorf("cluster: node name %q is listed twice", s.Name)
		case sites[s.SiteID]:
			return conf, fmt.Errorf("cluster: site id %s is listed twice", s.SiteID)
		}
		names[s.Name], sites[s.SiteID] = true, true
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s.SiteID), Address: raft.ServerAddress(s.Address)})
	}
	return conf, nil
}

// storedRaft is the Raft state of a stopped node, opened for an offline
// operation.
type storedRaft struct {
	siteID string
	logs   *raftstore.Store
	snaps  raft.SnapshotStore
	trans  *raft.InmemTransport
	hlog   hclog.Logger
}

// openStoredRaft opens the Raft state in dataDir/cluster as startRaft
// does. It fails when the directory holds no cluster state, rather than
// creating an empty one.
func openStoredRaft(dataDir string, logger *slog.Logger) (*storedRaft, error) {
	dir := filepath.Join(dataDir, "cluster")
	for _, p := range []string{filepath.Join(dir, membership.SiteIDFile), filepath.Join(dir, "raft")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("cluster: no cluster state in %s (%w): check --data-dir", dataDir, err)
		}
	}
	siteID, err := membership.LoadOrCreateSiteID(dir)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	raftDir := filepath.Join(dir, "raft")

	// Take the Pebble lock once before opening: a running node holds it,
	// and pebble v2.1.7 leaves a goroutine behind when Open fails on it.
	lock, err := pebble.LockDirectory(raftDir, vfs.Default)
	if err != nil {
		return nil, fmt.Errorf("cluster: the raft log in %s is locked (is the node still running? stop it first): %w", raftDir, err)
	}
	if err := lock.Close(); err != nil {
		return nil, fmt.Errorf("cluster: release the lock of %s: %w", raftDir, err)
	}

	hlog := newHCLogger(logger.With("component", "raft"), "raft")
	logs, err := raftstore.Open(raftstore.Config{Dir: raftDir, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("cluster: open the raft log (is the node still running? stop it first): %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		_ = logs.Close()
		return nil, fmt.Errorf("cluster: open raft snapshots: %w", err)
	}
	_, trans := raft.NewInmemTransport("")
	return &storedRaft{siteID: siteID, logs: logs, snaps: snaps, trans: trans, hlog: hlog}, nil
}

func (s *storedRaft) raftConfig() *raft.Config {
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(s.siteID)
	conf.Logger = s.hlog
	return conf
}

// recover runs raft.RecoverCluster, which replays the log into a fresh
// state machine to write the recovery snapshot. A command that panics there
// would also stop the node at its next start, so recover returns the panic
// as an error.
func (s *storedRaft) recover(conf raft.Configuration) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cluster: replaying the raft log failed: %v", p)
		}
	}()
	if err := raft.RecoverCluster(s.raftConfig(), fsm.New(), s.logs, s.logs, s.snaps, s.trans, conf); err != nil {
		return fmt.Errorf("cluster: recover the raft configuration: %w", err)
	}
	return nil
}

func (s *storedRaft) close() {
	_ = s.trans.Close()
	_ = s.logs.Close()
}

// formatServers lists servers as "ID@ADDRESS (Suffrage)", for logs and
// messages.
func formatServers(servers []raft.Server) string {
	parts := make([]string, 0, len(servers))
	for _, s := range servers {
		parts = append(parts, fmt.Sprintf("%s@%s (%s)", s.ID, s.Address, s.Suffrage))
	}
	return strings.Join(parts, ", ")
}
