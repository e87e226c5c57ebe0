package membership

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// Profile selects the failure-detection and retry timings. The zero value
// means ProfileLAN.
type Profile string

const (
	// ProfileLAN is for nodes on one network or one Kubernetes cluster.
	ProfileLAN Profile = "lan"

	// ProfileLocal is for nodes on one host, such as tests: every timing is
	// about five times shorter than in ProfileLAN.
	ProfileLocal Profile = "local"
)

// timings holds the values that a Profile sets. The memberlist fields keep
// memberlist's names so that its documentation applies to them.
//
// # How long a restarted node takes to get its name back
//
// memberlist stores one address per node name. While a name is alive or
// suspect at one address, every node rejects an alive message that claims
// the name from another address (memberlist logs "Conflicting address").
// A node that comes back from a crash with a new address, such as a
// Kubernetes pod with a new IP, gets its name back in four steps:
//
//  1. Detection. Every node probes one peer per ProbeInterval, in a
//     shuffled round-robin order, so the first probe of the dead address
//     comes within about ProbeInterval when all peers are probing, and within
//     (N-1)*ProbeInterval at worst. The probe fails after ProbeTimeout plus
//     indirect and TCP probes, before the next interval: the node is suspect.
//  2. Suspicion. memberlist declares a suspect dead after
//     min = SuspicionMult * max(1, log10(N)) * ProbeInterval when it expects
//     no confirmations (clusters of fewer than SuspicionMult nodes), and
//     otherwise starts from max = SuspicionMaxTimeoutMult * min and shrinks
//     toward min as SuspicionMult-2 other nodes confirm the suspicion.
//  3. Reclaim. A dead name can move to a new address only after
//     DeadNodeReclaimTime has passed since it was declared dead (zero would
//     disable that entirely, which is memberlist's default).
//  4. Delivery. The restarted node must send its alive message again after
//     step 3. Its join loop retries every reclaimRetry for as long as a peer
//     still lists the name at another address (see join.go), so it does not
//     wait for the next PushPullInterval.
//
// With ProfileLAN and up to 10 nodes, that is about 1-2 s of detection,
// 4 s (3 nodes) to 12 s (no confirmation) of suspicion, 2 s of reclaim and up
// to 1 s of delivery. The total is 8 to 17 s after the crash, and less if the
// pod took that long to restart anyway. With ProfileLocal the same steps take about
// 1.5 to 3 s. A node that called Leave first is "left", which memberlist lets
// any address reclaim at once, so a graceful restart costs only step 4.
//
// These values trade detection speed against false suspicion on a loaded
// network. A false suspicion costs little here, because the suspected node
// refutes it and gossip state alone changes no routes or voters.
type timings struct {
	ProbeInterval           time.Duration
	ProbeTimeout            time.Duration
	IndirectChecks          int
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	DeadNodeReclaimTime     time.Duration
	GossipInterval          time.Duration
	GossipToTheDeadTime     time.Duration
	PushPullInterval        time.Duration
	TCPTimeout              time.Duration

	// joinRetryMin and joinRetryMax bound the exponential backoff between
	// join attempts that reached no peer.
	joinRetryMin time.Duration
	joinRetryMax time.Duration

	// aloneCheck is how often a joined node checks that it still has a
	// live peer, and joins again through its seeds if it has none.
	aloneCheck time.Duration

	// reclaimRetry is the fixed wait between join attempts while a peer still
	// lists this node's name at another address.
	reclaimRetry time.Duration

	// reclaimPatience is how long the join loop retries at reclaimRetry before
	// it warns and falls back to the backoff. It covers the worst case of the
	// steps above with a margin.
	reclaimPatience time.Duration
}

// timings returns the timings of p. Validate has checked p.
func (p Profile) timings() timings {
	if p == ProfileLocal {
		return timings{
			ProbeInterval:           200 * time.Millisecond,
			ProbeTimeout:            100 * time.Millisecond,
			IndirectChecks:          1,
			SuspicionMult:           3, // min 600 ms, max 1.2 s up to 10 nodes
			SuspicionMaxTimeoutMult: 2,
			DeadNodeReclaimTime:     200 * time.Millisecond,
			GossipInterval:          50 * time.Millisecond,
			GossipToTheDeadTime:     2 * time.Second,
			PushPullInterval:        5 * time.Second,
			TCPTimeout:              2 * time.Second,
			joinRetryMin:            50 * time.Millisecond,
			joinRetryMax:            time.Second,
			aloneCheck:              time.Second,
			reclaimRetry:            100 * time.Millisecond,
			reclaimPatience:         10 * time.Second,
		}
	}
	return timings{
		ProbeInterval:  time.Second,
		ProbeTimeout:   500 * time.Millisecond,
		IndirectChecks: 3,
		SuspicionMult:  4, // min 4 s, max 12 s up to 10 nodes
		// memberlist's LAN default is 6 (24 s for small clusters). Confirmations
		// from other nodes usually cut the wait to min well before max.
		SuspicionMaxTimeoutMult: 3,
		DeadNodeReclaimTime:     2 * time.Second,
		GossipInterval:          200 * time.Millisecond,
		GossipToTheDeadTime:     30 * time.Second,
		PushPullInterval:        30 * time.Second,
		TCPTimeout:              10 * time.Second,
		joinRetryMin:            time.Second,
		joinRetryMax:            30 * time.Second,
		aloneCheck:              10 * time.Second,
		reclaimRetry:            time.Second,
		reclaimPatience:         time.Minute,
	}
}

// apply copies t into a memberlist configuration.
func (t timings) apply(c *memberlist.Config) {
	c.ProbeInterval = t.ProbeInterval
	c.ProbeTimeout = t.ProbeTimeout
	c.IndirectChecks = t.IndirectChecks
	c.SuspicionMult = t.SuspicionMult
	c.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	c.DeadNodeReclaimTime = t.DeadNodeReclaimTime
	c.GossipInterval = t.GossipInterval
	c.GossipToTheDeadTime = t.GossipToTheDeadTime
	c.PushPullInterval = t.PushPullInterval
	c.TCPTimeout = t.TCPTimeout
}
