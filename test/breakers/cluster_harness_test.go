package breakers

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// clusterNode is one starling process of a test cluster. Gossip and the peer
// port run without TLS, which loopback allows.
type clusterNode struct {
	*broker
	name    string
	gossip  string
	config  string // path of the YAML file that --config names
	expect  int    // --bootstrap-expect
	joinAll string // --join
}

// startTestCluster starts n nodes named n1..nN on 127.0.0.1, all in the
// bootstrap set, with the `local` gossip profile and the YAML lines of
// extraCluster added to the cluster section. It waits until every node
// returns 200 on /readyz.
func startTestCluster(t *testing.T, n int, extraCluster ...string) []*clusterNode {
	t.Helper()
	nodes := make([]*clusterNode, n)
	var seeds []string
	for i := range nodes {
		nodes[i] = &clusterNode{name: fmt.Sprintf("n%d", i+1), gossip: freeAddr(t)}
		seeds = append(seeds, nodes[i].gossip)
	}
	cfg := "cluster:\n  profile: local\n  dead_grace: 3s\n"
	for _, line := range extraCluster {
		cfg += "  " + line + "\n"
	}
	cfgPath := writeFile(t, t.TempDir(), "starling.yaml", cfg)
	for _, node := range nodes {
		node.config, node.expect, node.joinAll = cfgPath, n, strings.Join(seeds, ",")
		node.broker = newBroker(t, node.args(t)...)
		node.start()
	}
	for _, node := range nodes {
		node.waitReady(60 * time.Second)
	}
	return nodes
}

func (n *clusterNode) args(t *testing.T) []string {
	return []string{"--config", n.config, "--node-name", n.name,
		"--cluster-bind", n.gossip, "--peer-bind", freeAddr(t),
		"--join", n.joinAll, "--bootstrap-expect", fmt.Sprint(n.expect)}
}

// addClusterNode starts one more node, named nN for N = len(nodes)+1, that
// joins the cluster of nodes as a member outside the bootstrap set, and
// waits until it is ready.
func addClusterNode(t *testing.T, nodes []*clusterNode) *clusterNode {
	t.Helper()
	first := nodes[0]
	node := &clusterNode{name: fmt.Sprintf("n%d", len(nodes)+1), gossip: freeAddr(t),
		config: first.config, expect: first.expect, joinAll: first.joinAll}
	node.broker = newBroker(t)
	node.broker.args = node.args(t)
	node.start()
	node.waitReady(60 * time.Second)
	return node
}

// waitReady waits until the node returns 200 on /readyz.
func (n *clusterNode) waitReady(timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if code, _, err := n.httpGet("/readyz"); err == nil && code == 200 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatalf("node %s not ready within %v:\n%s", n.name, timeout, n.log.String())
}

// metric returns the value of an unlabelled metric on /metrics, or -1.
func (n *clusterNode) metric(name string) float64 {
	_, body, err := n.httpGet("/metrics")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return -1
}

// sessionExpiry is the CONNECT property Session Expiry Interval: 3600 s.
var sessionExpiry = []byte{0x11, 0x00, 0x00, 0x0e, 0x10}

// payloadSet records payloads received by a subscriber, from any goroutine.
type payloadSet struct {
	mu  sync.Mutex
	got map[string]int
}

func newPayloadSet() *payloadSet { return &payloadSet{got: make(map[string]int)} }

func (s *payloadSet) add(p string) {
	s.mu.Lock()
	s.got[p]++
	s.mu.Unlock()
}

func (s *payloadSet) has(p string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[p] > 0
}

// collectV5 reads PUBLISH packets from an MQTT 5.0 connection until it
// fails or stays silent for quiet, acknowledges QoS 1 ones and records their
// payloads in set. It never calls t.Fatal, so it may run in a goroutine.
func collectV5(c *rawConn, set *payloadSet, quiet time.Duration) {
	for {
		p, err := c.read(quiet)
		if err != nil {
			return
		}
		if p.typ != typePublish {
			continue
		}
		_, id, payload := publishFields(p, 5)
		set.add(string(payload))
		if id != 0 {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write(ackPacket(typePuback, id))
		}
	}
}

// qos1Publisher publishes QoS 1 messages "m1", "m2", ... on topic through
// one MQTT 5.0 connection, at most one per gap, and records those that got a
// PUBACK with a success code. It never calls t.Fatal.
type qos1Publisher struct {
	mu    sync.Mutex
	acked []string
	stop  chan struct{}
	done  chan struct{}
	err   error
}

func startQoS1Publisher(t *testing.T, addr, clientID, topic string, gap time.Duration) *qos1Publisher {
	t.Helper()
	c, ack := connect(t, addr, connectOpts{clientID: clientID, clean: true})
	if code := connackCode(ack); code != 0 {
		t.Fatalf("publisher CONNACK reason %#x", code)
	}
	p := &qos1Publisher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 1; ; i++ {
			select {
			case <-p.stop:
				return
			case <-time.After(gap):
			}
			payload := fmt.Sprintf("m%d", i)
			id := uint16(i%65535 + 1)
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(publishPacket(5, topic, []byte(payload), 1, id, false, nil)); err != nil {
				p.err = err
				return
			}
			ack, err := c.read(30 * time.Second)
			if err != nil {
				p.err = fmt.Errorf("waiting for the PUBACK of %s: %w", payload, err)
				return
			}
			if ack.typ != typePuback || binary.BigEndian.Uint16(ack.body) != id {
				p.err = fmt.Errorf("got %v, expected the PUBACK of %s", ack, payload)
				return
			}
			if len(ack.body) >= 3 && ack.body[2] >= 0x80 {
				continue // rejected: not acknowledged, so not counted
			}
			p.mu.Lock()
			p.acked = append(p.acked, payload)
			p.mu.Unlock()
		}
	}()
	return p
}

// finish stops the publisher and returns the acknowledged payloads.
func (p *qos1Publisher) finish(t *testing.T) []string {
	t.Helper()
	close(p.stop)
	<-p.done
	if p.err != nil {
		t.Fatalf("publisher: %v", p.err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}
