package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/starling-mqtt/starling/cluster/forward"
	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/cluster/peer"
	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage"
)

// service implements clusterpb.PeerServer on the peer port.
type service struct {
	clusterpb.UnimplementedPeerServer
	c *Cluster
}

func (s *service) Forward(stream clusterpb.Peer_ForwardServer) error {
	return s.c.recv.Forward(stream)
}

func (s *service) Propose(ctx context.Context, req *clusterpb.ProposeRequest) (*clusterpb.ProposeResponse, error) {
	c := s.c
	if c.raft.State() != raft.Leader {
		_, id := c.raft.LeaderWithID()
		return nil, status.Errorf(codes.FailedPrecondition, "not the leader; the leader is %q", c.nameOfSite(string(id)))
	}
	index, err := c.applyLocal(ctx, req.Command)
	if err == errNoLeader {
		return nil, status.Error(codes.FailedPrecondition, "leadership lost")
	}
	resp := &clusterpb.ProposeResponse{Index: index}
	if err != nil {
		if index == 0 {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
		resp.ApplyError = err.Error()
	}
	return resp, nil
}

func (s *service) WaitApplied(ctx context.Context, req *clusterpb.WaitAppliedRequest) (*clusterpb.WaitAppliedResponse, error) {
	got, err := s.c.view.waitApplied(ctx, req.Index)
	if err != nil {
		return nil, status.FromContextError(err).Err()
	}
	return &clusterpb.WaitAppliedResponse{AppliedIndex: got}, nil
}

func (s *service) Status(ctx context.Context, _ *clusterpb.StatusRequest) (*clusterpb.StatusResponse, error) {
	return s.c.localStatus(), nil
}

func (s *service) RetainedDigest(_ context.Context, req *clusterpb.RetainedDigestRequest) (*clusterpb.RetainedDigestResponse, error) {
	return s.c.retained.serveDigest(req)
}

func (s *service) RetainedFetch(req *clusterpb.RetainedFetchRequest, stream clusterpb.Peer_RetainedFetchServer) error {
	return s.c.retained.serveFetch(req, stream)
}

// checkForwardHello accepts a Forward stream only from the node its
// certificate names, when the peer port runs TLS.
func (c *Cluster) checkForwardHello(ctx context.Context, hello *clusterpb.ForwardHello) error {
	if name, ok := peer.PeerName(ctx); ok && name != hello.SenderName {
		return fmt.Errorf("certificate names %q but the stream claims %q", name, hello.SenderName)
	}
	return nil
}

// Stage implements node.Cluster.
func (c *Cluster) Stage(site string, m *clusterpb.ForwardMessage, b *storage.Batch) (any, error) {
	if m.OriginSiteId == "" {
		m.OriginSiteId = c.siteID
	}
	m.ReceiverIncarnation = c.incarnationOf(site)
	return c.fwd.Stage(site, m, b)
}

// Release implements node.Cluster.
func (c *Cluster) Release(t any) {
	if t, ok := t.(forward.Ticket); ok {
		c.fwd.Release(t)
	}
}

// Abort implements node.Cluster.
func (c *Cluster) Abort(t any) {
	if t, ok := t.(forward.Ticket); ok {
		c.fwd.Abort(t)
	}
}

// Full implements node.Cluster.
func (c *Cluster) Full(site string) bool { return c.fwd.Full(site) }

// Congested implements node.Cluster.
func (c *Cluster) Congested(site string) bool { return c.fwd.Congested(site) }

// livePeers returns the committed records of the other nodes that are
// joined or back and alive in gossip.
func (c *Cluster) livePeers() []fsm.Node {
	alive := make(map[string]bool)
	for _, m := range c.members.Members() {
		alive[m.Name] = true
	}
	var out []fsm.Node
	for _, n := range c.fsm.Nodes() {
		if n.SiteID == c.siteID || !alive[n.Name] {
			continue
		}
		if n.State == fsm.NodeJoined || n.State == fsm.NodeBack {
			out = append(out, n)
		}
	}
	return out
}

// clientPool keeps one gRPC connection per peer node.
type clientPool struct {
	port *peer.Port
	mu   sync.Mutex
	// conns is keyed by name and address, so a node that moved gets a new
	// connection.
	conns  map[string]*grpc.ClientConn
	closed bool // set by close: no new connection may outlive the cluster
}

func newClientPool(p *peer.Port) *clientPool {
	return &clientPool{port: p, conns: make(map[string]*grpc.ClientConn)}
}

func (p *clientPool) conn(name, addr string) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, fmt.Errorf("cluster: no peer address known for node %q", name)
	}
	key := name + "\x00" + addr
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("cluster: shutting down")
	}
	if cc := p.conns[key]; cc != nil {
		return cc, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, p.port.GRPCDialOptions(name)...)
	if err != nil {
		return nil, fmt.Errorf("cluster: dial peer %s at %s: %w", name, addr, err)
	}
	p.conns[key] = cc
	return cc, nil
}

func (p *clientPool) peerClient(name, addr string) (clusterpb.PeerClient, error) {
	cc, err := p.conn(name, addr)
	if err != nil {
		return nil, err
	}
	return clusterpb.NewPeerClient(cc), nil
}

func (p *clientPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for k, cc := range p.conns {
		_ = cc.Close()
		delete(p.conns, k)
	}
}

// forwardClient dials a peer for the forwarder.
func (p *clientPool) forwardClient(_ context.Context, peer forward.Peer) (clusterpb.PeerClient, error) {
	return p.peerClient(peer.Name, peer.Addr)
}

// Incarnation implements node.Cluster.
func (c *Cluster) Incarnation() uint64 { return c.incarnation.Load() }

// incarnationOf returns the committed boot incarnation of the node with
// site id site, or 0 when it has no record.
func (c *Cluster) incarnationOf(site string) uint64 {
	return c.view.incarnationOf(site)
}
