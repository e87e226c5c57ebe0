package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// clusterOptions configures a cluster of starling processes.
type clusterOptions struct {
	// Nodes is the number of nodes started at once; all of them form the
	// bootstrap set (--bootstrap-expect).
	Nodes int
	// Plaintext runs gossip and the peer port without the gossip key and
	// mutual TLS, as loopback allows. The default is the production setup:
	// `starling certs init` makes the key and the certificates.
	Plaintext bool
	// DeadGrace is the cluster's dead_grace; zero keeps a short test value.
	DeadGrace time.Duration
	// ApplyDelay sets the test_apply_delay hook, per node name.
	ApplyDelay map[string]time.Duration
	// Extra holds YAML lines added to the cluster section of every node.
	Extra []string
}

// testCluster is a set of starling processes on their own 127.0.0.x
// addresses, with shared certificates.
type testCluster struct {
	t     testing.TB
	opts  clusterOptions
	base  string // first three octets, such as "127.0.57"
	certs string
	seeds []string

	mu    sync.Mutex
	nodes []*clusterNode
}

// clusterNode is one node of a testCluster.
type clusterNode struct {
	*broker
	name   string
	ip     string
	gossip string
	peer   string
	http   string
}

var clusterSubnets sync.Map // "127.x.y" -> true, so parallel tests never share addresses

// startCluster starts opts.Nodes nodes named n1..nN and waits until every
// one is ready.
func startCluster(t testing.TB, opts clusterOptions) *testCluster {
	t.Helper()
	if !isStarling() {
		t.Skip("cluster tests need starling")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if opts.DeadGrace == 0 {
		opts.DeadGrace = 3 * time.Second
	}
	c := &testCluster{t: t, opts: opts}
	for {
		c.base = fmt.Sprintf("127.%d.%d", 1+rand.IntN(250), 1+rand.IntN(250))
		if _, taken := clusterSubnets.LoadOrStore(c.base, true); !taken {
			break
		}
	}
	c.certs = filepath.Join(t.TempDir(), "certs")
	if !opts.Plaintext {
		var names []string
		for i := 1; i <= max(opts.Nodes, 5); i++ {
			names = append(names, fmt.Sprintf("n%d", i))
		}
		out, err := exec.Command(starlingBin, "certs", "init", c.certs, "--nodes", strings.Join(names, ",")).CombinedOutput()
		if err != nil {
			t.Fatalf("starling certs init: %v\n%s", err, out)
		}
	}
	for i := 1; i <= opts.Nodes; i++ {
		c.seeds = append(c.seeds, fmt.Sprintf("%s.%d:7946", c.base, i))
	}
	for i := 1; i <= opts.Nodes; i++ {
		c.add(i)
	}
	c.waitReady(60 * time.Second)
	return c
}

// add starts node number i and returns it; it does not wait for readiness.
func (c *testCluster) add(i int) *clusterNode {
	t := c.t
	t.Helper()
	n := &clusterNode{name: fmt.Sprintf("n%d", i), ip: fmt.Sprintf("%s.%d", c.base, i)}
	n.gossip = n.ip + ":7946"
	n.peer = n.ip + ":7947"
	n.http = n.ip + ":8080"
	dir := t.TempDir()
	b := &broker{
		t:       t,
		kind:    kindStarling,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "broker.log"),
		addr:    n.ip + ":1883",
	}
	b.opts.Command = func(b *broker) (*exec.Cmd, error) {
		path := filepath.Join(b.dir, "starling.yaml")
		if err := os.WriteFile(path, []byte(c.config(n)), 0o644); err != nil {
			return nil, err
		}
		return exec.Command(starlingBin, "serve", "--config", path, "--http", n.http), nil
	}
	b.opts.ProbeAcceptsUnavailable = slices.Contains(c.opts.Extra, "strict: true")
	n.broker = b
	t.Cleanup(b.cleanup)
	if err := b.start(); err != nil {
		t.Fatalf("start %s: %v", n.name, err)
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

// config renders node n's YAML.
func (c *testCluster) config(n *clusterNode) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node_name: %s\ndata_dir: %s\n", n.name, n.broker.dataDir)
	fmt.Fprintf(&b, "listeners:\n  - url: tcp://%s\n    max_conn_rate: 100000\n", n.broker.addr)
	fmt.Fprintf(&b, "cluster:\n  cluster_bind: %s\n  peer_bind: %s\n", n.gossip, n.peer)
	fmt.Fprintf(&b, "  join: [%s]\n", strings.Join(c.seeds, ", "))
	fmt.Fprintf(&b, "  bootstrap_expect: %d\n  profile: local\n", c.opts.Nodes)
	fmt.Fprintf(&b, "  dead_grace: %s\n", c.opts.DeadGrace)
	if d := c.opts.ApplyDelay[n.name]; d > 0 {
		fmt.Fprintf(&b, "  test_apply_delay: %s\n", d)
	}
	if !c.opts.Plaintext {
		fmt.Fprintf(&b, "  gossip_key_file: %s\n", filepath.Join(c.certs, "gossip.key"))
		fmt.Fprintf(&b, "  peer_tls:\n    ca_file: %s\n    cert_file: %s\n    key_file: %s\n",
			filepath.Join(c.certs, "peer-ca.pem"),
			filepath.Join(c.certs, "nodes", n.name+".pem"),
			filepath.Join(c.certs, "nodes", n.name+"-key.pem"))
	}
	for _, line := range c.opts.Extra {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	return b.String()
}

// node returns the node named name.
func (c *testCluster) node(name string) *clusterNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no node %s", name)
	return nil
}

// waitReady waits until every running node reports ready on /readyz.
func (c *testCluster) waitReady(timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, func() error {
		c.mu.Lock()
		nodes := append([]*clusterNode(nil), c.nodes...)
		c.mu.Unlock()
		for _, n := range nodes {
			if !n.Running() {
				continue
			}
			if err := n.ready(); err != nil {
				return fmt.Errorf("%s: %v", n.name, err)
			}
		}
		return nil
	})
}

// ready asks the node's /readyz.
func (n *clusterNode) ready() error {
	resp, err := httpClient.Get("http://" + n.http + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s", resp.Status)
	}
	return nil
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// clusterStatus is the part of GET /api/v1/cluster the tests read.
type clusterStatus struct {
	Name         string `json:"name"`
	Ready        bool   `json:"ready"`
	RaftState    string `json:"raft_state"`
	Leader       string `json:"leader"`
	Routes       int    `json:"routes"`
	RemoteRoutes int    `json:"remote_routes"`
	RouteBatches uint64 `json:"route_batches"`
	RouteOps     uint64 `json:"route_ops"`
	Members      []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Gossip   string `json:"gossip"`
		Suffrage string `json:"suffrage"`
	} `json:"members"`
	Streams []struct {
		Peer        string `json:"peer"`
		Connected   bool   `json:"connected"`
		Lag         uint64 `json:"lag"`
		OutboxDepth uint64 `json:"outbox_depth"`
	} `json:"streams"`
}

// status reads the node's view of the cluster.
func (n *clusterNode) status() (clusterStatus, error) {
	var st clusterStatus
	resp, err := httpClient.Get("http://" + n.http + "/api/v1/cluster")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /api/v1/cluster: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// mustStatus reads the node's view of the cluster or fails the test.
func (n *clusterNode) mustStatus(t testing.TB) clusterStatus {
	t.Helper()
	st, err := n.status()
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	return st
}

// hostPort splits the node's MQTT address.
func (n *clusterNode) hostPort() (string, string) {
	h, p, _ := net.SplitHostPort(n.broker.addr)
	return h, p
}
