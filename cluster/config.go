package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/starling-mqtt/starling/cluster/membership"
	"github.com/starling-mqtt/starling/cluster/peer"
)

// Config configures a node's part in a cluster. Start reads it once.
type Config struct {
	// NodeName is the node's stable name (the pod name in Kubernetes).
	// Required.
	NodeName string

	// DataDir is the node's data directory. The cluster keeps its state in
	// DataDir/cluster: the site id, the boot incarnation, the Raft log and
	// snapshots.
	DataDir string

	// GossipBind is the IP:port of memberlist gossip (TCP and UDP).
	GossipBind string

	// PeerBind is the host:port of the peer port, shared by Raft and gRPC.
	PeerBind string

	// Advertise is the host (IP or DNS name) other nodes use to reach this
	// one, for gossip and the peer port. Empty: the bind addresses.
	Advertise string

	// MQTTAddr is the advertised address of the node's MQTT listener, shown
	// to operators and other nodes.
	MQTTAddr string

	// Join lists gossip seeds: host:port or DNS names.
	Join []string

	// GossipKey encrypts gossip; required off loopback unless Insecure.
	GossipKey []byte

	// PeerTLS is the mutual TLS of the peer port; required off loopback
	// unless Insecure.
	PeerTLS *peer.TLSFiles

	// Insecure allows plaintext gossip and peer traffic off loopback.
	Insecure bool

	// BootstrapExpect is the size of the bootstrap set when it is given
	// by number: the N member names with the lowest trailing numbers.
	BootstrapExpect int

	// BootstrapPeers names the bootstrap set explicitly.
	BootstrapPeers []string

	// Voters is the number of Raft voters the leader keeps: 3 or 5.
	// Default 3.
	Voters int

	// DeadGrace is how long the leader keeps the non-durable routes of a
	// node whose death is committed. Default 60 s.
	DeadGrace time.Duration

	// ReapTime is how long a dead node's durable routes, and the messages
	// waiting for it in other nodes' outboxes, are kept before the node is
	// removed from the cluster. Default 24 h.
	ReapTime time.Duration

	// VoterGrace is how long a dead voter keeps its seat before a healthy
	// nonvoter replaces it. Default 10 min.
	VoterGrace time.Duration

	// SessionWait is how long a client whose persistent session is on a
	// node that died is refused (0x88) before it gets a fresh session
	// elsewhere. Default 60 s.
	SessionWait time.Duration

	// SharedCustody is how long the publishing node keeps a QoS 1 message
	// that it forwarded to another node for a shared-subscription group.
	// Until that node reports the message settled, it can be offered to a
	// third node should that one die (custody.go). Default 10 min.
	SharedCustody time.Duration

	// Strict rejects, while this node has no Raft leader, what cannot be
	// confirmed: new subscriptions (SUBACK 0x83, 3.1.1 0x80), session
	// claims (CONNACK 0x88, 3.1.1 0x03), and readiness. Off by default:
	// a node on the minority side of a partition then keeps serving with
	// the last known routes.
	Strict bool

	// RouteWait bounds how long a SUBACK waits for one peer to confirm a new
	// route (invariant 6). Default 2 s.
	RouteWait time.Duration

	// Profile selects the gossip and Raft timings: membership.ProfileLAN
	// (default) or membership.ProfileLocal for nodes on one host.
	Profile membership.Profile

	// MaxPacketSize is the node's largest MQTT packet; the peer port's
	// gRPC message limit is set above it, so any message a client may
	// publish can be forwarded. Default 1 MiB.
	MaxPacketSize int

	// Retained configures retained replication; zero fields take defaults.
	Retained RetainedConfig

	// ApplyDelay delays every update of this node's view of remote routes.
	// A test hook: it stands for a slow node in route-before-SUBACK tests.
	ApplyDelay time.Duration

	Logger *slog.Logger
}

// Default values of Config.
const (
	DefaultVoters      = 3
	DefaultDeadGrace   = 60 * time.Second
	DefaultVoterGrace  = 10 * time.Minute
	DefaultReapTime    = 24 * time.Hour
	DefaultRouteWait   = 2 * time.Second
	DefaultSessionWait = 60 * time.Second
	// DefaultSharedCustody outlasts gossip detection and the commit of a
	// death several times over, and keeps a burst of unsettled messages
	// bounded in time.
	DefaultSharedCustody = 10 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.Voters == 0 {
		c.Voters = DefaultVoters
	}
	if c.DeadGrace == 0 {
		c.DeadGrace = DefaultDeadGrace
	}
	if c.VoterGrace == 0 {
		c.VoterGrace = DefaultVoterGrace
	}
	if c.ReapTime == 0 {
		c.ReapTime = DefaultReapTime
	}
	if c.RouteWait == 0 {
		c.RouteWait = DefaultRouteWait
	}
	if c.SessionWait == 0 {
		c.SessionWait = DefaultSessionWait
	}
	if c.SharedCustody == 0 {
		c.SharedCustody = DefaultSharedCustody
	}
	if c.Profile == "" {
		c.Profile = membership.ProfileLAN
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks c and returns an error that names the field and the fix.
func (c Config) Validate() error {
	if c.NodeName == "" {
		return errors.New("cluster: node name is required in a cluster: set --node-name (in Kubernetes, the pod name)")
	}
	if c.DataDir == "" {
		return errors.New("cluster: data directory is required")
	}
	if c.PeerBind == "" {
		return errors.New("cluster: --peer-bind is required in a cluster (the Raft and gRPC port, such as 127.0.0.1:7947)")
	}
	if c.GossipBind == "" {
		return errors.New("cluster: --cluster-bind is required in a cluster (the gossip port, such as 127.0.0.1:7946)")
	}
	if c.Voters != 0 && c.Voters != 3 && c.Voters != 5 {
		return fmt.Errorf("cluster: voters = %d: use 3 or 5", c.Voters)
	}
	if c.BootstrapExpect < 0 {
		return fmt.Errorf("cluster: bootstrap_expect = %d: use a positive number", c.BootstrapExpect)
	}
	if c.BootstrapExpect > 0 && len(c.BootstrapPeers) > 0 {
		return errors.New("cluster: give --bootstrap-expect or --bootstrap-peers, not both")
	}
	if c.BootstrapExpect > 0 {
		if _, _, ok := splitOrdinal(c.NodeName); !ok {
			return fmt.Errorf("cluster: --bootstrap-expect needs node names that end in a number (such as starling-0); %q does not: use --bootstrap-peers", c.NodeName)
		}
	}
	if c.Advertise == "" {
		for _, addr := range []string{c.GossipBind, c.PeerBind} {
			host, _, err := net.SplitHostPort(addr)
			if err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
				return fmt.Errorf("cluster: %s binds every address, so other nodes cannot tell where to reach this one: set --advertise", addr)
			}
		}
	}
	return nil
}

var ordinalRE = regexp.MustCompile(`^(.*?)(\d+)$`)

// splitOrdinal splits a name such as "starling-12" into "starling-" and 12.
func splitOrdinal(name string) (prefix string, n int, ok bool) {
	m := ordinalRE.FindStringSubmatch(name)
	if m == nil {
		return "", 0, false
	}
	n, err := strconv.Atoi(m[2])
	if err != nil {
		return "", 0, false
	}
	return m[1], n, true
}

// bootstrapSet returns the names of the bootstrap set as far as seen lists
// the members, and whether self belongs to it. With BootstrapPeers the set
// is fixed. With BootstrapExpect N it is the N names of self's prefix with
// the lowest numbers, compared as numbers; it is complete only when N such
// names are seen.
func (c Config) bootstrapSet(seen []string) (set []string, member bool) {
	if len(c.BootstrapPeers) > 0 {
		return c.BootstrapPeers, slices.Contains(c.BootstrapPeers, c.NodeName)
	}
	if c.BootstrapExpect == 0 {
		return nil, false
	}
	prefix, _, _ := splitOrdinal(c.NodeName)
	type named struct {
		name string
		n    int
	}
	var cands []named
	for _, name := range seen {
		p, n, ok := splitOrdinal(name)
		if ok && p == prefix {
			cands = append(cands, named{name, n})
		}
	}
	slices.SortFunc(cands, func(a, b named) int { return a.n - b.n })
	if len(cands) < c.BootstrapExpect {
		return nil, false
	}
	for _, cd := range cands[:c.BootstrapExpect] {
		set = append(set, cd.name)
	}
	return set, slices.Contains(set, c.NodeName)
}
