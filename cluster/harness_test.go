package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/starling-mqtt/starling/cluster/membership"
	"github.com/starling-mqtt/starling/node"
	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/router"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Pebble keeps background goroutines for a short while after Close.
		goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble/v2.(*DB).maybeScheduleCompaction"),
	)
}

// testLogger returns a logger that discards everything, or writes Debug
// lines to stderr when STARLING_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("STARLING_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// harnessOptions configures startHarness. The zero value starts three nodes.
type harnessOptions struct {
	// nodes is the number of nodes. Default 3.
	nodes int

	// bootstrapPeers overrides the bootstrap set. Default: every node's name.
	bootstrapPeers []string

	// noWait returns from startHarness without waiting for the nodes to
	// become ready.
	noWait bool

	// cluster and broker, when set, change the configurations of node i
	// before its first start.
	cluster func(i int, cfg *Config)
	broker  func(i int, cfg *node.Config)
}

// harness is a cluster of in-process nodes on loopback: each one a real
// node.Server joined to a real Cluster over plaintext gossip and peer ports.
type harness struct {
	tb    testing.TB
	nodes []*testNode
}

// testNode is one node of a harness. Its gossip and peer ports are chosen
// at the first start and kept across restarts, since Raft dials the peer
// address in its configuration.
type testNode struct {
	h        *harness
	index    int
	name     string
	dir      string
	clusterC Config
	brokerC  node.Config

	// Set by start, cleared by stop. Only the test goroutine uses them.
	srv *node.Server
	cl  *Cluster
}

// startHarness starts opts.nodes nodes, the first one as the gossip seed
// of the others, waits until every one is ready unless opts.noWait is set,
// and stops them all when the test ends.
func startHarness(tb testing.TB, opts harnessOptions) *harness {
	tb.Helper()
	if opts.nodes == 0 {
		opts.nodes = 3
	}
	h := &harness{tb: tb}
	names := make([]string, opts.nodes)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i+1)
	}
	peers := opts.bootstrapPeers
	if peers == nil {
		peers = names
	}
	for i, name := range names {
		n := &testNode{
			h:     h,
			index: i,
			name:  name,
			dir:   tb.TempDir(),
		}
		n.clusterC = Config{
			NodeName:       name,
			DataDir:        n.dir,
			GossipBind:     "127.0.0.1:0",
			PeerBind:       "127.0.0.1:0",
			BootstrapPeers: peers,
			Profile:        membership.ProfileLocal,
			Logger:         testLogger(),
		}
		if i > 0 {
			n.clusterC.Join = []string{h.nodes[0].gossipAddr()}
		}
		n.brokerC = node.Config{
			NodeName:    name,
			DataDir:     n.dir,
			Listeners:   []node.ListenerConfig{{URL: "tcp://127.0.0.1:0"}},
			SysInterval: -1,
			Logger:      testLogger(),
		}
		if opts.cluster != nil {
			opts.cluster(i, &n.clusterC)
		}
		if opts.broker != nil {
			opts.broker(i, &n.brokerC)
		}
		h.nodes = append(h.nodes, n)
		n.start()
	}
	if !opts.noWait {
		h.waitReady(30 * time.Second)
	}
	return h
}

// start starts the node's broker and cluster and registers their stop at
// cleanup. On the first start it records the bound gossip and peer
// addresses, so that a restart binds the same ones.
func (n *testNode) start() {
	tb := n.h.tb
	tb.Helper()
	srv, err := node.New(n.brokerC)
	if err != nil {
		tb.Fatalf("%s: node.New: %v", n.name, err)
	}
	cl, err := Start(context.Background(), n.clusterC, srv)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		tb.Fatalf("%s: cluster Start: %v", n.name, err)
	}
	srv.SetCluster(cl)
	if err := srv.Start(); err != nil {
		cl.Close()
		_ = srv.Shutdown(context.Background())
		tb.Fatalf("%s: node Start: %v", n.name, err)
	}
	n.srv, n.cl = srv, cl
	n.clusterC.GossipBind = cl.members.LocalNode().Addr
	n.clusterC.PeerBind = cl.port.Addr().String()
	tb.Cleanup(n.stop)
}

// stop closes the cluster first, because its forwarder writes to the
// broker's store, then shuts the broker down. Calling it twice is harmless.
func (n *testNode) stop() {
	if n.cl == nil {
		return
	}
	n.cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		n.h.tb.Errorf("%s: Shutdown: %v", n.name, err)
	}
	n.srv, n.cl = nil, nil
}

// restart stops the node and starts it again on the same data directory
// and ports, joining through the other nodes' gossip addresses.
func (n *testNode) restart() {
	n.h.tb.Helper()
	n.stop()
	n.clusterC.Join = nil
	for _, o := range n.h.nodes {
		if o != n {
			n.clusterC.Join = append(n.clusterC.Join, o.clusterC.GossipBind)
		}
	}
	n.start()
}

// gossipAddr returns the gossip address the node advertises.
func (n *testNode) gossipAddr() string { return n.cl.members.LocalNode().Addr }

// mqttAddr returns the address of the node's MQTT listener.
func (n *testNode) mqttAddr() string { return n.srv.Addrs()[0].String() }

// waitReady waits until every running node reports Ready.
func (h *harness) waitReady(timeout time.Duration) {
	h.tb.Helper()
	waitFor(h.tb, timeout, "every node ready", func() error {
		for _, n := range h.nodes {
			if n.cl != nil && !n.cl.Ready() {
				st := n.cl.Status()
				return fmt.Errorf("%s is not ready: raft %s, leader %q, %d members", n.name, st.RaftState, st.Leader, len(st.Members))
			}
		}
		return nil
	})
}

// leader returns the node that leads Raft, waiting until one node does.
func (h *harness) leader() *testNode {
	h.tb.Helper()
	var found *testNode
	waitFor(h.tb, 10*time.Second, "a leader", func() error {
		found = nil
		for _, n := range h.nodes {
			if n.cl != nil && n.cl.raft.State() == raft.Leader {
				found = n
				return nil
			}
		}
		return errors.New("no node leads")
	})
	return found
}

// followers returns the running nodes that do not lead, in index order.
func (h *harness) followers() []*testNode {
	lead := h.leader()
	var out []*testNode
	for _, n := range h.nodes {
		if n != lead && n.cl != nil {
			out = append(out, n)
		}
	}
	return out
}

// remoteSites returns the site ids of the remote routes that match topic on
// n, sorted.
func (n *testNode) remoteSites(topic string) []string {
	return entrySites(n.cl.MatchRemote(topic, nil))
}

// hasRemote reports whether n's view routes topic to site.
func (n *testNode) hasRemote(topic, site string) bool {
	return slices.Contains(n.remoteSites(topic), site)
}

// waitFor polls cond every 10 ms until it returns nil, and fails the test
// with cond's last error when timeout passes first.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mqttClient is a minimal MQTT 3.1.1 client on the broker's own codec. It
// acknowledges QoS 1 publishes as it reads them and keeps publishes that
// arrive while it waits for an acknowledgement. Only one goroutine may use
// a client at a time. Its methods return errors rather than fail the test,
// so that goroutines other than the test's may call them.
type mqttClient struct {
	id     string
	conn   net.Conn
	r      *bufio.Reader
	lastID uint16
	inbox  []*packet.Publish

	closeOnce sync.Once
}

// ioTimeout bounds one wait of a test client for a packet.
const ioTimeout = 5 * time.Second

// dialMQTT connects a client with the given clean session flag and closes
// it when the test ends.
func dialMQTT(tb testing.TB, addr, clientID string, clean bool) *mqttClient {
	tb.Helper()
	c, err := connectMQTT(addr, clientID, clean)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.close)
	return c
}

// connectMQTT connects a client that the caller must close.
func connectMQTT(addr, clientID string, clean bool) (*mqttClient, error) {
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, fmt.Errorf("client %s: dial %s: %w", clientID, addr, err)
	}
	c := &mqttClient{id: clientID, conn: conn, r: bufio.NewReader(conn)}
	err = c.write(&packet.Connect{ProtocolName: "MQTT", ProtocolVersion: packet.Version311,
		CleanStart: clean, KeepAlive: 60, ClientID: clientID})
	if err == nil {
		var p packet.Packet
		p, err = c.read(ioTimeout)
		if ack, ok := p.(*packet.Connack); err == nil && (!ok || ack.ReasonCode != 0) {
			err = fmt.Errorf("got %#v, want a CONNACK with code 0", p)
		}
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("client %s: connect: %w", clientID, err)
	}
	return c, nil
}

func (c *mqttClient) write(p packet.Packet) error {
	buf, err := p.Encode(nil, packet.Version311)
	if err != nil {
		return err
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err = c.conn.Write(buf)
	return err
}

// read reads the next packet and acknowledges it when it is a QoS 1
// publish.
func (c *mqttClient) read(timeout time.Duration) (packet.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	p, err := packet.Read(c.r, packet.Version311, 0)
	if err != nil {
		return nil, err
	}
	if pub, ok := p.(*packet.Publish); ok && pub.QoS == 1 {
		if err := c.write(&packet.Puback{PacketID: pub.PacketID}); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (c *mqttClient) nextPacketID() uint16 {
	c.lastID++
	if c.lastID == 0 {
		c.lastID = 1
	}
	return c.lastID
}

// awaitAck reads until the acknowledgement of type typ for packet id id,
// keeping the publishes read meanwhile.
func (c *mqttClient) awaitAck(typ packet.Type, id uint16, timeout time.Duration) (packet.Packet, error) {
	deadline := time.Now().Add(timeout)
	for {
		p, err := c.read(time.Until(deadline))
		if err != nil {
			return nil, fmt.Errorf("client %s: waiting for %v %d: %w", c.id, typ, id, err)
		}
		if pub, ok := p.(*packet.Publish); ok {
			c.inbox = append(c.inbox, pub)
			continue
		}
		if p.Type() == typ && ackID(p) == id {
			return p, nil
		}
	}
}

func ackID(p packet.Packet) uint16 {
	switch p := p.(type) {
	case *packet.Suback:
		return p.PacketID
	case *packet.Unsuback:
		return p.PacketID
	case *packet.Puback:
		return p.PacketID
	}
	return 0
}

// sendSubscribe sends a SUBSCRIBE of filters at QoS 1 without waiting and
// returns its packet id.
func (c *mqttClient) sendSubscribe(filters ...string) (uint16, error) {
	sub := &packet.Subscribe{PacketID: c.nextPacketID()}
	for _, f := range filters {
		sub.Subscriptions = append(sub.Subscriptions, packet.Subscription{Filter: f, QoS: 1})
	}
	return sub.PacketID, c.write(sub)
}

// awaitSuback waits for the SUBACK of id and checks that it grants every
// filter.
func (c *mqttClient) awaitSuback(id uint16, timeout time.Duration) error {
	p, err := c.awaitAck(packet.TypeSuback, id, timeout)
	if err != nil {
		return err
	}
	for i, code := range p.(*packet.Suback).ReasonCodes {
		if code >= 0x80 {
			return fmt.Errorf("client %s: SUBACK %d refused filter %d with 0x%02x", c.id, id, i, byte(code))
		}
	}
	return nil
}

// subscribe subscribes to filters at QoS 1 and waits for the SUBACK.
func (c *mqttClient) subscribe(filters ...string) error {
	id, err := c.sendSubscribe(filters...)
	if err != nil {
		return fmt.Errorf("client %s: subscribe: %w", c.id, err)
	}
	return c.awaitSuback(id, ioTimeout)
}

// unsubscribe unsubscribes from filters and waits for the UNSUBACK.
func (c *mqttClient) unsubscribe(filters ...string) error {
	id := c.nextPacketID()
	if err := c.write(&packet.Unsubscribe{PacketID: id, Filters: filters}); err != nil {
		return fmt.Errorf("client %s: unsubscribe: %w", c.id, err)
	}
	_, err := c.awaitAck(packet.TypeUnsuback, id, ioTimeout)
	return err
}

// publish publishes payload to topic and, at QoS 1, waits for the PUBACK.
func (c *mqttClient) publish(topic string, qos byte, payload string) error {
	p := &packet.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)}
	if qos > 0 {
		p.PacketID = c.nextPacketID()
	}
	if err := c.write(p); err != nil {
		return fmt.Errorf("client %s: publish: %w", c.id, err)
	}
	if qos == 0 {
		return nil
	}
	_, err := c.awaitAck(packet.TypePuback, p.PacketID, ioTimeout)
	return err
}

// receive returns the next publish, from those kept while waiting for an
// acknowledgement first.
func (c *mqttClient) receive(timeout time.Duration) (*packet.Publish, error) {
	if len(c.inbox) > 0 {
		p := c.inbox[0]
		c.inbox = c.inbox[1:]
		return p, nil
	}
	deadline := time.Now().Add(timeout)
	for {
		p, err := c.read(time.Until(deadline))
		if err != nil {
			return nil, fmt.Errorf("client %s: waiting for a publish: %w", c.id, err)
		}
		if pub, ok := p.(*packet.Publish); ok {
			return pub, nil
		}
	}
}

// close sends DISCONNECT and closes the socket. Calling it again does
// nothing.
func (c *mqttClient) close() {
	c.closeOnce.Do(func() {
		_ = c.write(&packet.Disconnect{})
		_ = c.conn.Close()
	})
}

// entrySites returns the sorted site ids of entries.
func entrySites(entries []router.Entry) []string {
	var sites []string
	for _, e := range entries {
		sites = append(sites, e.ClientID)
	}
	slices.Sort(sites)
	return slices.Compact(sites)
}

// viewRoutesOf returns the number of routes of site in n's view of remote
// routes.
func (n *testNode) viewRoutesOf(site string) int {
	v := n.cl.view
	v.mu.Lock()
	defer v.mu.Unlock()
	count := 0
	for r := range v.mu.entries {
		if r.SiteID == site {
			count++
		}
	}
	return count
}
