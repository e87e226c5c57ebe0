package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// partitionNodeNames are the node names of the partition cluster. Each is
// also the node's alias on the cluster network and its --advertise host,
// and ends in a number so that --bootstrap-expect 3 picks all three.
var partitionNodeNames = []string{"starling-1", "starling-2", "starling-3"}

// partitionConfig lets anonymous clients use the 0.0.0.0 listener and the
// partition/ topics, so the test needs no users: it is about the cluster
// network, not about auth.
const partitionConfig = `listeners:
  - name: mqtt
    url: tcp://0.0.0.0:1883
    allow_anonymous: true
auth:
  rules:
    - {subject: anonymous, action: all, permission: allow, topic: "partition/#"}
log:
  format: json
`

// partitionNode is one node of the partition cluster, with the host
// addresses of its published client ports.
type partitionNode struct {
	name      string
	container *container
	// mqttURL is tcp://127.0.0.1:PORT of the MQTT listener.
	mqttURL string
	// httpAddr is 127.0.0.1:PORT of --http.
	httpAddr string
}

// partitionCluster is three nodes on two networks: clusterNet carries
// gossip and the peer port, clientNet carries MQTT and HTTP. Disconnecting
// a node from clusterNet cuts it off from the other nodes while its
// clients stay connected.
type partitionCluster struct {
	clusterNet string
	clientNet  string
	nodes      []*partitionNode
}

// startPartitionCluster starts the three nodes and waits until each one
// reports ready.
//
// The cluster network is --internal, so it has no default gateway and
// Docker publishes the ports on the client network: cutting the cluster
// network leaves the published ports working. Docker Engine 20.10 (API
// 1.41) takes one --network per `docker run`, so each container is
// created on the client network, connected to the cluster network under
// its alias, and only then started, because the node resolves its
// --advertise name once at start.
func startPartitionCluster(t *testing.T) *partitionCluster {
	t.Helper()
	image := testImage(t)

	pc := &partitionCluster{
		clientNet:  newPartitionNetwork(t, "client"),
		clusterNet: newPartitionNetwork(t, "cluster", "--internal"),
	}

	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if _, err := runCommand("", nil, nil, binaryPath, "certs", "init", certs,
		"--nodes", strings.Join(partitionNodeNames, ",")); err != nil {
		t.Fatalf("starling certs init: %v", err)
	}
	makeReadable(t, dir)
	configFile := writeFile(t, filepath.Join(dir, "starling.yaml"), partitionConfig)
	tokenFile := writeFile(t, filepath.Join(dir, "admin-token"), adminToken+"\n")

	var seeds []string
	for _, name := range partitionNodeNames {
		seeds = append(seeds, name+":7946")
	}
	for _, name := range partitionNodeNames {
		c := createContainer(t, uniqueName("partition"+strings.ReplaceAll(name, "-", "")),
			"--network", pc.clientNet,
			"--read-only", "--cap-drop", "ALL",
			"-v", configFile+":/etc/starling/starling.yaml:ro",
			"-v", certs+":/etc/starling/certs:ro",
			"-v", tokenFile+":/etc/starling/admin-token:ro",
			"-e", "STARLING_ADMIN_TOKEN_FILE=/etc/starling/admin-token",
			"-p", "127.0.0.1::1883", "-p", "127.0.0.1::8080",
			image,
			"serve", "--config", "/etc/starling/starling.yaml", "--data-dir", "/data",
			"--http", "0.0.0.0:8080", "--node-name", name,
			"--cluster-bind", "0.0.0.0:7946", "--peer-bind", "0.0.0.0:7947",
			"--advertise", name, "--join", strings.Join(seeds, ","), "--bootstrap-expect", "3",
			"--gossip-key-file", "/etc/starling/certs/gossip.key",
			"--peer-ca", "/etc/starling/certs/peer-ca.pem",
			"--peer-cert", "/etc/starling/certs/nodes/"+name+".pem",
			"--peer-key", "/etc/starling/certs/nodes/"+name+"-key.pem",
		)
		docker(t, "network", "connect", "--alias", name, pc.clusterNet, c.name)
		pc.nodes = append(pc.nodes, &partitionNode{name: name, container: c})
	}
	for _, n := range pc.nodes {
		docker(t, "start", n.container.name)
	}
	for _, n := range pc.nodes {
		n.mqttURL = "tcp://" + n.container.hostPort(t, "1883/tcp")
		n.httpAddr = n.container.hostPort(t, "8080/tcp")
	}
	for _, n := range pc.nodes {
		waitFor(t, clusterReadyTimeout, func() error {
			code, body, err := httpGet("http://" + n.httpAddr + "/readyz")
			if err != nil {
				return fmt.Errorf("GET /readyz on %s: %w", n.name, err)
			}
			if code != http.StatusOK {
				return fmt.Errorf("GET /readyz on %s: status %d, body %q", n.name, code, body)
			}
			return nil
		})
	}
	// A node in a cluster writes the configured rules to Raft only after
	// it reports ready, so the rule for anonymous clients takes effect a
	// moment later.
	for _, n := range pc.nodes {
		waitFor(t, readyTimeout, func() error { return n.checkRulesInForce() })
	}
	return pc
}

// checkRulesInForce returns nil when an anonymous client of the node may
// subscribe to a partition/ topic.
func (n *partitionNode) checkRulesInForce() error {
	client, _, err := connectClient(n.mqttURL, "partition-rules-probe", true, nil)
	if err != nil {
		return err
	}
	defer client.Disconnect(250)
	if err := subscribeQoS1(client, "partition/rules-probe", nil); err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	return nil
}

// subscribeQoS1 subscribes client to filter at QoS 1 and checks that the
// SUBACK grants QoS 1. An MQTT 3.1.1 SUBACK rejects a filter with return
// code 0x80, which paho does not report as an error.
func subscribeQoS1(client mqtt.Client, filter string, handler mqtt.MessageHandler) error {
	token := client.Subscribe(filter, 1, handler)
	if !token.WaitTimeout(mqttTimeout) {
		return fmt.Errorf("SUBSCRIBE %s timed out after %v", filter, mqttTimeout)
	}
	if err := token.Error(); err != nil {
		return fmt.Errorf("SUBSCRIBE %s: %w", filter, err)
	}
	if code := token.(*mqtt.SubscribeToken).Result()[filter]; code != 1 {
		return fmt.Errorf("SUBSCRIBE %s: SUBACK return code 0x%02x, expected 0x01 (QoS 1 granted)", filter, code)
	}
	return nil
}

// subscribeChannel subscribes client to filter at QoS 1, fails the test
// unless the SUBACK grants it, and returns the channel of deliveries.
func subscribeChannel(t *testing.T, client mqtt.Client, filter string) <-chan received {
	t.Helper()
	ch := make(chan received, 16)
	err := subscribeQoS1(client, filter, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case ch <- received{Topic: m.Topic(), Payload: string(m.Payload()), Retained: m.Retained()}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// newPartitionNetwork creates a labelled Docker network with extra
// `docker network create` options, removed at cleanup.
func newPartitionNetwork(t *testing.T, kind string, options ...string) string {
	t.Helper()
	name := uniqueName("netpartition" + kind)
	args := append([]string{"network", "create", "--label", testLabel + "=" + runID}, options...)
	docker(t, append(args, name)...)
	t.Cleanup(func() { dockerQuiet(t, "network", "rm", name) })
	return name
}

// makeReadable opens dir and everything under it to all users, because the
// containers run as uid 65532 and `starling certs init` writes its keys
// with mode 0600 into 0700 directories.
func makeReadable(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(path, mode)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// createContainer creates a container from args (options, the image and
// its command) without starting it, and registers its removal, with its
// anonymous volumes, at cleanup. On failure the cleanup logs the
// container's output first.
func createContainer(t *testing.T, name string, args ...string) *container {
	t.Helper()
	full := append([]string{"create", "--name", name, "--label", testLabel + "=" + runID}, args...)
	docker(t, full...)
	c := &container{name: name}
	t.Cleanup(func() {
		if t.Failed() {
			c.logLogs(t)
		}
		dockerQuiet(t, "rm", "-f", "-v", name)
	})
	return c
}

// clusterNetIP returns the node's address on the cluster network, or ""
// while it is disconnected.
func (pc *partitionCluster) clusterNetIP(t *testing.T, n *partitionNode) string {
	t.Helper()
	format := fmt.Sprintf(`{{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}`, pc.clusterNet)
	return docker(t, "inspect", "--format", format, n.container.name)
}

// clusterStatus is the part of GET /api/v1/cluster that the partition
// test reads.
type clusterStatus struct {
	Name         string `json:"name"`
	RaftState    string `json:"raft_state"`
	Leader       string `json:"leader"`
	Routes       int    `json:"routes"`
	RemoteRoutes int    `json:"remote_routes"`
	Members      []struct {
		Name     string `json:"name"`
		SiteID   string `json:"site_id"`
		State    string `json:"state"`
		Gossip   string `json:"gossip"`
		Suffrage string `json:"suffrage"`
	} `json:"members"`
	Streams []struct {
		Peer        string `json:"peer"`
		Connected   bool   `json:"connected"`
		OutboxDepth uint64 `json:"outbox_depth"`
	} `json:"streams"`
	Retained struct {
		Applied uint64 `json:"applied"`
		Repairs uint64 `json:"repairs"`
		Syncs   uint64 `json:"syncs"`
	} `json:"retained"`
}

// membersKey returns the members as one comparable string: name, site
// id, committed state, gossip view and suffrage of each.
func (s *clusterStatus) membersKey() string {
	var parts []string
	for _, m := range s.Members {
		parts = append(parts, fmt.Sprintf("%s/%s/%s/%s/%s", m.Name, m.SiteID, m.State, m.Gossip, m.Suffrage))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// outboxDepth returns the outbox depth toward peer, or -1 without a
// stream to it.
func (s *clusterStatus) outboxDepth(peer string) int64 {
	for _, st := range s.Streams {
		if st.Peer == peer {
			return int64(st.OutboxDepth)
		}
	}
	return -1
}

// gossipOf returns peer's state in this node's gossip: alive or gone.
func (s *clusterStatus) gossipOf(peer string) string {
	for _, m := range s.Members {
		if m.Name == peer {
			return m.Gossip
		}
	}
	return ""
}

// status fetches GET /api/v1/cluster from the node with the admin token.
func (n *partitionNode) status() (*clusterStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr+"/api/v1/cluster", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /api/v1/cluster on %s: %w", n.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET /api/v1/cluster on %s: %w", n.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v1/cluster on %s: status %d, body %q", n.name, resp.StatusCode, body)
	}
	var st clusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("GET /api/v1/cluster on %s: %w", n.name, err)
	}
	return &st, nil
}

// droppedQueueFull reads starling_messages_dropped_total{reason="queue_full"}
// from the node's /metrics: the messages dropped because a session queue
// was full.
func (n *partitionNode) droppedQueueFull() (int64, error) {
	code, body, err := httpGet("http://" + n.httpAddr + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("GET /metrics on %s: %w", n.name, err)
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics on %s: status %d", n.name, code)
	}
	const name = `starling_messages_dropped_total{reason="queue_full"} `
	for _, line := range strings.Split(body, "\n") {
		if value, ok := strings.CutPrefix(line, name); ok {
			f, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return 0, fmt.Errorf("GET /metrics on %s: %q: %w", n.name, line, err)
			}
			return int64(f), nil
		}
	}
	return 0, fmt.Errorf("GET /metrics on %s: no line starts with %s", n.name, name)
}

// statuses fetches the status of every node, in node order.
func (pc *partitionCluster) statuses() ([]*clusterStatus, error) {
	var all []*clusterStatus
	for _, n := range pc.nodes {
		st, err := n.status()
		if err != nil {
			return nil, err
		}
		all = append(all, st)
	}
	return all, nil
}

// membersAgree returns nil when every node names the same leader, which
// is the only node in the Leader state, and lists the same members, each
// joined or back and alive in gossip.
func membersAgree(all []*clusterStatus) error {
	leader, members := all[0].Leader, all[0].membersKey()
	if leader == "" {
		return fmt.Errorf("%s names no leader", all[0].Name)
	}
	for _, st := range all {
		if st.Leader != leader {
			return fmt.Errorf("%s names leader %q, %s names %q", st.Name, st.Leader, all[0].Name, leader)
		}
		if (st.RaftState == "Leader") != (st.Name == leader) {
			return fmt.Errorf("%s is in Raft state %s, but the leader is %s", st.Name, st.RaftState, leader)
		}
		if key := st.membersKey(); key != members {
			return fmt.Errorf("members differ: %s lists %s, %s lists %s", st.Name, key, all[0].Name, members)
		}
		if len(st.Members) != len(all) {
			return fmt.Errorf("%s lists %d members, expected %d", st.Name, len(st.Members), len(all))
		}
		for _, m := range st.Members {
			if (m.State != "joined" && m.State != "back") || m.Gossip != "alive" {
				return fmt.Errorf("%s lists %s as %s and %s in gossip", st.Name, m.Name, m.State, m.Gossip)
			}
		}
	}
	return nil
}

// outboxesDrained returns nil when every node has a connected stream to
// each other node with an empty outbox.
func outboxesDrained(all []*clusterStatus) error {
	for _, st := range all {
		if len(st.Streams) != len(all)-1 {
			return fmt.Errorf("%s has %d forward streams, expected %d", st.Name, len(st.Streams), len(all)-1)
		}
		for _, s := range st.Streams {
			if !s.Connected || s.OutboxDepth != 0 {
				return fmt.Errorf("stream %s -> %s: connected %v, outbox depth %d", st.Name, s.Peer, s.Connected, s.OutboxDepth)
			}
		}
	}
	return nil
}

// routesConverged returns nil when each node's count of remote routes
// equals the sum of the committed route counts of the other nodes.
func routesConverged(all []*clusterStatus) error {
	total := 0
	for _, st := range all {
		total += st.Routes
	}
	for _, st := range all {
		if want := total - st.Routes; st.RemoteRoutes != want {
			return fmt.Errorf("%s has %d remote routes, the other nodes have %d routes (route counts %s)",
				st.Name, st.RemoteRoutes, want, routeCounts(all))
		}
	}
	return nil
}

func routeCounts(all []*clusterStatus) string {
	var parts []string
	for _, st := range all {
		parts = append(parts, fmt.Sprintf("%s=%d/remote %d", st.Name, st.Routes, st.RemoteRoutes))
	}
	return strings.Join(parts, ", ")
}

// sequencePublisher publishes numbered QoS 1 messages on one topic, one at
// a time, and records which got a PUBACK. It stays on one node: when its
// connection fails it reconnects to the same URL.
type sequencePublisher struct {
	url      string
	clientID string
	topic    string
	interval time.Duration
	max      int

	mu      sync.Mutex
	acked   []int // sequence numbers with a PUBACK, in order; guarded by mu
	failed  int   // publishes without a PUBACK; guarded by mu
	lastErr error // the last publish or CONNECT error; guarded by mu
}

// run publishes until ctx ends or max messages are sent. A failed publish
// uses up its sequence number, so every payload is unique.
func (p *sequencePublisher) run(ctx context.Context) {
	var client mqtt.Client
	defer func() {
		if client != nil {
			client.Disconnect(250)
		}
	}()
	for seq := 1; seq <= p.max && ctx.Err() == nil; {
		if client == nil {
			c, _, err := connectClient(p.url, p.clientID, true, nil)
			if err != nil {
				p.recordError(err)
				sleepContext(ctx, 200*time.Millisecond)
				continue
			}
			client = c
		}

		token := client.Publish(p.topic, 1, false, strconv.Itoa(seq))
		var err error
		if !token.WaitTimeout(mqttTimeout) {
			err = fmt.Errorf("PUBLISH %s %d: no PUBACK within %v", p.topic, seq, mqttTimeout)
		} else if token.Error() != nil {
			err = fmt.Errorf("PUBLISH %s %d: %w", p.topic, seq, token.Error())
		}
		p.mu.Lock()
		if err == nil {
			p.acked = append(p.acked, seq)
		} else {
			p.failed++
			p.lastErr = err
		}
		p.mu.Unlock()
		if err != nil {
			client.Disconnect(0)
			client = nil
		}
		seq++
		sleepContext(ctx, p.interval)
	}
}

func (p *sequencePublisher) recordError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastErr = err
}

func (p *sequencePublisher) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// results returns the acknowledged sequence numbers, the count of
// publishes without a PUBACK and the last error.
func (p *sequencePublisher) results() ([]int, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acked), p.failed, p.lastErr
}

// waitAcked waits until n messages in all have a PUBACK.
func (p *sequencePublisher) waitAcked(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() error {
		if got := p.ackedCount(); got < n {
			_, failed, lastErr := p.results()
			return fmt.Errorf("publisher %s: %d messages acknowledged, waiting for %d (%d without PUBACK, last error %v)",
				p.clientID, got, n, failed, lastErr)
		}
		return nil
	})
}

// sequenceSubscriber is an MQTT 3.1.1 client with a persistent session
// (clean session 0) on one node that counts the deliveries of each
// sequence number per topic. When its connection drops, paho reconnects
// it to the same node, where the session keeps its subscription and
// queued messages.
type sequenceSubscriber struct {
	url      string
	clientID string
	client   mqtt.Client

	mu        sync.Mutex
	received  map[string]map[int]int // topic -> sequence number -> deliveries; guarded by mu
	invalid   []string               // payloads that are no sequence number; guarded by mu
	lost      int                    // connection losses; guarded by mu
	lostError error                  // the last connection loss; guarded by mu
}

func newSequenceSubscriber(url, clientID string) *sequenceSubscriber {
	return &sequenceSubscriber{url: url, clientID: clientID, received: make(map[string]map[int]int)}
}

// connect connects the subscriber.
func (s *sequenceSubscriber) connect() error {
	client, _, err := connectClient(s.url, s.clientID, false, func(opts *mqtt.ClientOptions) {
		opts.SetDefaultPublishHandler(s.handle).
			SetAutoReconnect(true).
			SetMaxReconnectInterval(time.Second).
			SetConnectionLostHandler(func(_ mqtt.Client, err error) {
				s.mu.Lock()
				defer s.mu.Unlock()
				s.lost++
				s.lostError = err
			})
	})
	if err != nil {
		return err
	}
	s.client = client
	return nil
}

// subscribe subscribes the session to filter at QoS 1.
func (s *sequenceSubscriber) subscribe(filter string) error {
	if err := subscribeQoS1(s.client, filter, nil); err != nil {
		return fmt.Errorf("%s on %s: %w", s.clientID, s.url, err)
	}
	return nil
}

func (s *sequenceSubscriber) disconnect() {
	if s.client != nil {
		s.client.Disconnect(250)
	}
}

// handle records one delivery. paho sends the PUBACK after it returns.
func (s *sequenceSubscriber) handle(_ mqtt.Client, m mqtt.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, err := strconv.Atoi(string(m.Payload()))
	if err != nil {
		s.invalid = append(s.invalid, m.Topic()+" "+string(m.Payload()))
		return
	}
	if s.received[m.Topic()] == nil {
		s.received[m.Topic()] = make(map[int]int)
	}
	s.received[m.Topic()][seq]++
}

// missing returns the sequence numbers of acked on topic that never
// arrived.
func (s *sequenceSubscriber) missing(topic string, acked []int) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []int
	for _, seq := range acked {
		if s.received[topic][seq] == 0 {
			missing = append(missing, seq)
		}
	}
	return missing
}

// counts returns the distinct sequence numbers received on topic and the
// repeated deliveries, which QoS 1 allows.
func (s *sequenceSubscriber) counts(topic string) (distinct, duplicates int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.received[topic] {
		distinct++
		duplicates += n - 1
	}
	return distinct, duplicates
}

// connectionLosses returns how often the connection dropped, and the last
// error.
func (s *sequenceSubscriber) connectionLosses() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost, s.lostError
}

func (s *sequenceSubscriber) invalidPayloads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.invalid)
}

// connectClient connects an anonymous MQTT 3.1.1 paho client with the
// given clean session flag and returns it with the CONNACK's Session
// Present flag. configure, when not nil, changes the options first.
func connectClient(url, clientID string, clean bool, configure func(*mqtt.ClientOptions)) (mqtt.Client, bool, error) {
	opts := mqtt.NewClientOptions().
		AddBroker(url).
		SetClientID(clientID).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetProtocolVersion(4)
	if configure != nil {
		configure(opts)
	}
	client := mqtt.NewClient(opts)
	token := client.Connect()
	if !token.WaitTimeout(mqttTimeout) {
		client.Disconnect(0)
		return nil, false, fmt.Errorf("CONNECT to %s as %s timed out after %v", url, clientID, mqttTimeout)
	}
	if err := token.Error(); err != nil {
		return nil, false, fmt.Errorf("CONNECT to %s as %s: %w", url, clientID, err)
	}
	return client, token.(*mqtt.ConnectToken).SessionPresent(), nil
}
