// Package cluster joins a node to the other nodes of a Starling cluster:
// memberlist finds them, one Raft group agrees on the route table and the
// node records, and gRPC streams on the peer port forward publishes to the
// nodes that hold matching subscribers. This package wires its parts (membership, peer, fsm, forward,
// storage/raftstore) together and owns the decisions of when to propose:
// the node's own record, its route changes, and the leader's reconciliation
// of membership into Raft.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/starling-mqtt/starling/cluster/forward"
	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/cluster/membership"
	"github.com/starling-mqtt/starling/cluster/peer"
	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage"
	"github.com/starling-mqtt/starling/storage/raftstore"
)

// Node is what the cluster needs of the local broker node (node.Server).
type Node interface {
	// Store is the node's storage; outbox entries commit in its batches.
	Store() *storage.Store
	forward.Deliverer
	// ReloadAuth makes a change of users, groups, roles or rules apply to
	// the connected clients.
	ReloadAuth(ctx context.Context) error
	RetainedNode
}

// Cluster is this node's membership in a cluster. It implements
// node.Cluster. Start creates it; Close stops it.
type Cluster struct {
	cfg         Config
	log         *slog.Logger
	siteID      string
	incarnation atomic.Uint64 // boot incarnation; raised past a committed death

	port    *peer.Port
	grpc    *grpc.Server
	members *membership.Membership
	fsm     *fsm.FSM
	raft    *raft.Raft
	logs    *raftstore.Store
	snaps   raft.SnapshotStore
	fwd     *forward.Forwarder
	recv    *forward.Receiver
	routes  *routeSyncer
	view    *routeView
	clients *clientPool

	routeWaitMisses atomic.Uint64 // peers that did not confirm a route in time

	node   Node
	holder SessionHolder // the node, when it moves sessions; see sessions.go
	home   sessionHome
	settle settler       // shared custody notices; see custody.go
	owned  ownedSessions // sessions this node owns; see owners.go
	// ownedChanged wakes ownerLoop when sessions were added to owned.
	ownedChanged chan struct{}

	retained *retainedSync // retained replication; see retained.go

	leaving    atomic.Bool // Leave was called: the node no longer registers itself
	registered atomic.Bool // this node's record with its incarnation is committed
	ready      atomic.Bool // registered, routes re-asserted, caught up

	stop chan struct{}
	wg   sync.WaitGroup
}

// Start joins the cluster: it opens the Raft state in cfg.DataDir/cluster,
// binds the peer port and gossip, and starts the background loops. The
// node becomes ready (Ready) once its record and routes are committed.
func Start(ctx context.Context, cfg Config, node Node) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	dir := filepath.Join(cfg.DataDir, "cluster")
	siteID, err := membership.LoadOrCreateSiteID(dir)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	inc, err := nextIncarnation(dir)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c := &Cluster{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "cluster", "node", cfg.NodeName),
		siteID: siteID,
		fsm:    fsm.New(),
		stop:   make(chan struct{}),

		ownedChanged: make(chan struct{}, 1),
	}
	c.incarnation.Store(inc)
	c.node = node
	c.holder, _ = node.(SessionHolder)
	c.retained = newRetainedSync(c, node, cfg.Retained)
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()

	peerAdvertise := advertiseAddr(cfg.Advertise, cfg.PeerBind)
	c.port, err = peer.Listen(peer.Config{
		Bind:         cfg.PeerBind,
		Advertise:    peerAdvertise,
		NodeName:     cfg.NodeName,
		TLS:          cfg.PeerTLS,
		Insecure:     cfg.Insecure,
		RaftPeerName: c.nameAtPeerAddr,
		MaxMsgSize:   maxGRPCMessage(cfg.MaxPacketSize),
		Logger:       cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: peer port: %w", err)
	}
	peerAdvertise = c.port.Addr().String()
	if cfg.Advertise != "" {
		_, port, _ := net.SplitHostPort(peerAdvertise)
		peerAdvertise = net.JoinHostPort(cfg.Advertise, port)
	}
	c.clients = newClientPool(c.port)

	if err := c.startRaft(dir); err != nil {
		return nil, err
	}

	c.view = newRouteView(c, cfg.ApplyDelay)
	c.routes = newRouteSyncer(c)
	c.fwd, err = forward.New(forward.Config{
		Store:      node.Store(),
		SelfName:   cfg.NodeName,
		SelfSiteID: siteID,
		Logger:     cfg.Logger,
		Dial:       c.clients.forwardClient,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: forwarder: %w", err)
	}
	c.recv = forward.NewReceiver(node, cfg.Logger, siteID, c.checkForwardHello)
	c.grpc = grpc.NewServer(c.port.GRPCServerOptions()...)
	clusterpb.RegisterPeerServer(c.grpc, &service{c: c})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := c.grpc.Serve(c.port.GRPCListener()); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			c.log.Error("gRPC server stopped", "err", err)
		}
	}()

	mcfg := membership.DefaultConfig()
	mcfg.NodeName = cfg.NodeName
	mcfg.SiteID = siteID
	mcfg.BindAddr = cfg.GossipBind
	if cfg.Advertise != "" {
		mcfg.AdvertiseAddr = cfg.Advertise
	}
	mcfg.Join = cfg.Join
	mcfg.GossipKey = cfg.GossipKey
	mcfg.Insecure = cfg.Insecure
	mcfg.Profile = cfg.Profile
	mcfg.Logger = cfg.Logger
	mcfg.Meta = membership.Meta{PeerAddr: peerAdvertise, MQTTAddr: cfg.MQTTAddr, BootIncarnation: inc}
	c.members, err = membership.Start(ctx, mcfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip: %w", err)
	}

	c.loop(c.view.run)
	c.loop(c.routes.run)
	c.loop(c.bootstrapLoop)
	c.loop(c.registerLoop)
	c.loop(c.reconcileLoop)
	c.loop(c.peersLoop)
	c.loop(c.willLoop)
	c.loop(c.custodyLoop)
	c.loop(c.staleLoop)
	c.loop(c.ownerLoop)
	c.loop(c.retained.run)
	c.loop(func() { c.authLoop(node.ReloadAuth) })
	c.log.Info("cluster started", "site_id", siteID, "incarnation", inc,
		"peer_addr", peerAdvertise, "gossip_addr", c.members.LocalNode().Addr)
	ok = true
	return c, nil
}

// loop runs fn on a goroutine that Close waits for; fn returns when c.stop
// closes.
func (c *Cluster) loop(fn func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
}

// Close leaves gossip, stops the loops, Raft, the streams and the peer
// port. It does not leave the cluster in Raft: a restart is not a leave.
func (c *Cluster) Close() {
	select {
	case <-c.stop:
		return
	default:
		close(c.stop)
	}
	if c.raft != nil && c.raft.State() == raft.Leader {
		// Hand leadership over so the others need no election timeout.
		if err := c.raft.LeadershipTransfer().Error(); err != nil {
			c.log.Debug("leadership transfer on shutdown failed", "err", err)
		}
	}
	if c.members != nil {
		_ = c.members.Leave(time.Second)
		_ = c.members.Close()
	}
	if c.fwd != nil {
		c.fwd.Close()
	}
	if c.grpc != nil {
		c.grpc.Stop()
	}
	if c.raft != nil {
		if err := c.raft.Shutdown().Error(); err != nil {
			c.log.Warn("raft shutdown", "err", err)
		}
	}
	if c.clients != nil {
		c.clients.close()
	}
	if c.port != nil {
		_ = c.port.Close()
	}
	c.wg.Wait()
	if c.logs != nil {
		_ = c.logs.Close()
	}
}

// SiteID returns this node's site id.
func (c *Cluster) SiteID() string { return c.siteID }

// Ready reports whether the node has caught up with the cluster: its record
// and its routes under this incarnation are committed, and it holds the
// retained set.
func (c *Cluster) Ready() bool { return c.ready.Load() && !c.StrictLeaderless() }

// StrictLeaderless reports whether strict mode is on and this node knows no
// leader: none is named, or a follower has not heard from it for two
// election timeouts (the time after which the route syncer, too, treats the
// node as cut off).
func (c *Cluster) StrictLeaderless() bool {
	if !c.cfg.Strict || c.raft == nil {
		return false
	}
	if c.raft.State() == raft.Leader {
		return false
	}
	if addr, _ := c.raft.LeaderWithID(); addr == "" {
		return true
	}
	last := c.raft.LastContact()
	return last.IsZero() || time.Since(last) >= 2*electionTimeout(c.cfg.Profile)
}

// maxGRPCMessage returns the gRPC message limit of the peer port: above a
// forward request of the forwarder's batch size, and above one message of
// the largest MQTT packet with its envelope.
func maxGRPCMessage(maxPacket int) int {
	if maxPacket <= 0 {
		maxPacket = 1 << 20
	}
	return max(4<<20, max(maxPacket, forward.DefaultBatchMaxBytes)+64<<10)
}

// advertiseAddr joins the advertised host with the port of bind.
func advertiseAddr(host, bind string) string {
	if host == "" {
		return bind
	}
	_, port, err := net.SplitHostPort(bind)
	if err != nil {
		return bind
	}
	return net.JoinHostPort(host, port)
}

// nextIncarnation raises the boot incarnation kept in dir and returns it.
// It grows by one at every start, so route batches of an earlier run are
// recognised as stale.
func nextIncarnation(dir string) (uint64, error) {
	path := filepath.Join(dir, "incarnation")
	var n uint64
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		n, err = strconv.ParseUint(string(data), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	n++
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	if _, err := f.WriteString(strconv.FormatUint(n, 10)); err != nil {
		f.Close()
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("rename %s: %w", tmp, err)
	}
	return n, nil
}
