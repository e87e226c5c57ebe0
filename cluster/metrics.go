package cluster

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/starling-mqtt/starling/cluster/fsm"
)

// metricsCollector exports the cluster's figures to Prometheus. It reads
// them at scrape time from Raft, the state machine, gossip and the
// forwarder, so the hot paths pay nothing for it.
type metricsCollector struct {
	c     *Cluster
	descs map[string]*prometheus.Desc
}

// Collector returns a Prometheus collector for the cluster's metrics, all
// named starling_cluster_*. Register it once per Cluster. Collect may run
// after Close and then reports the last known figures.
func (c *Cluster) Collector() prometheus.Collector {
	m := &metricsCollector{c: c, descs: make(map[string]*prometheus.Desc)}
	for name, help := range clusterMetricHelp {
		var labels []string
		switch name {
		case "raft_state":
			labels = []string{"state"}
		case "members":
			labels = []string{"state"}
		case "raft_servers":
			labels = []string{"suffrage"}
		case "forward_connected", "forward_lag", "outbox_messages", "outbox_bytes", "forward_queue_bytes",
			"forward_disk_mode", "forward_dropped_qos0_total", "forward_resent_total":
			labels = []string{"peer"}
		}
		m.descs[name] = prometheus.NewDesc("starling_cluster_"+name, help, labels, nil)
	}
	return m
}

var clusterMetricHelp = map[string]string{
	"ready":                        "1 when this node's record and routes are committed and it accepts clients, else 0.",
	"raft_state":                   "1 for this node's current Raft state, 0 for the others.",
	"is_leader":                    "1 when this node is the Raft leader, else 0.",
	"raft_term":                    "Current Raft term.",
	"raft_applied_index":           "Index of the last Raft log entry applied to this node's state machine.",
	"raft_commit_index":            "Highest Raft log index this node knows to be committed.",
	"raft_last_log_index":          "Index of the last entry in this node's Raft log.",
	"raft_last_snapshot_index":     "Raft index of this node's latest snapshot.",
	"raft_fsm_pending":             "Committed Raft log entries queued for the state machine.",
	"raft_last_contact_seconds":    "Seconds since a follower last heard from the leader; 0 on the leader, absent before first contact.",
	"raft_servers":                 "Servers in the Raft configuration, by suffrage (voter, nonvoter).",
	"membership_epoch":             "Committed membership epoch, raised by every change of a node's state.",
	"members":                      "Committed node records, by state (joined, dead, back, left).",
	"gossip_members":               "Members that gossip lists as alive, this node included.",
	"routes_local":                 "Routes of this node in the committed route table.",
	"routes_remote":                "Routes of other nodes in this node's route view.",
	"route_batches_total":          "Route batches this node committed.",
	"route_ops_total":              "Route operations in the batches this node committed.",
	"route_batch_failures_total":   "Route batch proposals that failed and were retried.",
	"route_wait_misses_total":      "Times a peer did not confirm a new route within the route wait, so a SUBACK went without it.",
	"shared_settles_sent_total":    "Settle notices of shared-subscription messages sent to the nodes they were published on.",
	"home_records":                 "Session ownership records this node keeps as home or as the home's copy.",
	"home_lookups_total":           "Claims for which this node, as home, had no record and asked every live node.",
	"home_registrations_total":     "Owned sessions this node registered with a new home after a change of membership.",
	"home_records_pruned_total":    "Home records dropped because their session ended or their owner left.",
	"shared_settles_dropped_total": "Settle notices dropped (queue full or call failed); their messages stay in custody until it expires.",
	"forward_connected":            "1 while the forward stream to the peer is established, else 0.",
	"forward_lag":                  "Forward sequence numbers assigned toward the peer and not yet acknowledged.",
	"outbox_messages":              "QoS 1 and 2 messages in the on-disk outbox toward the peer.",
	"outbox_bytes":                 "Bytes of the messages in the on-disk outbox toward the peer.",
	"forward_queue_bytes":          "Encoded bytes in the in-memory send queue toward the peer.",
	"forward_disk_mode":            "1 while the sender reads the peer's outbox from disk because its queue overflowed, else 0.",
	"forward_dropped_qos0_total":   "QoS 0 messages toward the peer dropped at the send queue bound.",
	"forward_resent_total":         "Outbox entries sent to the peer again after a reconnect.",
}

// raftStates lists the values of the state label of raft_state.
var raftStates = []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}

// nodeStates lists the values of the state label of members.
var nodeStates = []fsm.NodeState{fsm.NodeJoined, fsm.NodeDead, fsm.NodeBack, fsm.NodeLeft}

func (m *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
	ch <- m.c.routes.timer.histogram().Desc()
}

func (m *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	c := m.c
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.GaugeValue, v, labels...)
	}
	counter := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.CounterValue, float64(v), labels...)
	}

	gauge("ready", boolValue(c.Ready()))
	m.collectRaft(gauge)

	records := c.fsm.Nodes()
	byState := make(map[fsm.NodeState]int)
	for _, n := range records {
		byState[n.State]++
	}
	for _, s := range nodeStates {
		gauge("members", float64(byState[s]), s.String())
	}
	gauge("membership_epoch", float64(c.fsm.Epoch()))
	gauge("gossip_members", float64(len(c.members.Members())))

	gauge("routes_local", float64(len(c.fsm.RoutesFor(c.siteID))))
	gauge("routes_remote", float64(c.view.routeCount()))
	counter("route_batches_total", c.routes.batches.Load())
	counter("route_ops_total", c.routes.ops.Load())
	counter("route_batch_failures_total", c.routes.failures.Load())
	counter("route_wait_misses_total", c.routeWaitMisses.Load())
	counter("shared_settles_sent_total", c.settle.sent.Load())
	counter("home_lookups_total", c.owned.lookups.Load())
	counter("home_registrations_total", c.owned.registered.Load())
	counter("home_records_pruned_total", c.owned.pruned.Load())
	c.home.mu.Lock()
	homeRecords := len(c.home.records)
	c.home.mu.Unlock()
	gauge("home_records", float64(homeRecords))
	counter("shared_settles_dropped_total", c.settle.dropped.Load())
	ch <- c.routes.timer.histogram()

	for _, ps := range c.fwd.Stats() {
		gauge("forward_connected", boolValue(ps.Connected), ps.Peer)
		gauge("forward_lag", float64(ps.Lag), ps.Peer)
		gauge("outbox_messages", float64(ps.OutboxDepth), ps.Peer)
		gauge("outbox_bytes", float64(ps.OutboxBytes), ps.Peer)
		gauge("forward_queue_bytes", float64(ps.QueueBytes), ps.Peer)
		gauge("forward_disk_mode", boolValue(ps.DiskMode), ps.Peer)
		counter("forward_dropped_qos0_total", ps.DroppedQoS0, ps.Peer)
		counter("forward_resent_total", ps.Resent, ps.Peer)
	}
}

// collectRaft exports Raft's own figures. raft.Stats also reads the
// configuration, through Raft's main goroutine, so a scrape waits for it.
func (m *metricsCollector) collectRaft(gauge func(string, float64, ...string)) {
	c := m.c
	state := c.raft.State()
	for _, s := range raftStates {
		gauge("raft_state", boolValue(s == state), strings.ToLower(s.String()))
	}
	gauge("is_leader", boolValue(state == raft.Leader))
	gauge("raft_applied_index", float64(c.fsm.AppliedIndex()))
	gauge("raft_commit_index", float64(c.raft.CommitIndex()))
	switch last := c.raft.LastContact(); {
	case state == raft.Leader:
		gauge("raft_last_contact_seconds", 0)
	case !last.IsZero():
		gauge("raft_last_contact_seconds", time.Since(last).Seconds())
	}

	stats := c.raft.Stats()
	for name, key := range map[string]string{
		"raft_term":                "term",
		"raft_last_log_index":      "last_log_index",
		"raft_last_snapshot_index": "last_snapshot_index",
		"raft_fsm_pending":         "fsm_pending",
	} {
		if v, err := strconv.ParseUint(stats[key], 10, 64); err == nil {
			gauge(name, float64(v))
		}
	}

	voters, nonvoters := 0, 0
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
			} else {
				nonvoters++
			}
		}
	}
	gauge("raft_servers", float64(voters), "voter")
	gauge("raft_servers", float64(nonvoters), "nonvoter")
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// routeBatchTimer times the route batches this node commits, from the
// proposal until every live peer confirmed it or the route wait ran out:
// the time a SUBACK of a new route waits. Its zero value is ready to use.
type routeBatchTimer struct {
	once sync.Once
	hist prometheus.Histogram
}

func (t *routeBatchTimer) histogram() prometheus.Histogram {
	t.once.Do(func() {
		t.hist = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "starling_cluster_route_batch_seconds",
			Help: "Seconds from proposing a route batch until it is committed, applied here and confirmed by every live peer (or the route wait ran out).",
			// 1 ms to about 4 s: a batch waits at most the route wait
			// (default 2 s) for its slowest peer.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 13),
		})
	})
	return t.hist
}

// observeSince records the time since start if the batch counter moved
// past batchesBefore, so failed proposals are left out. routeSyncer.flush
// defers it; only its goroutine commits batches.
func (t *routeBatchTimer) observeSince(start time.Time, batches *atomic.Uint64, batchesBefore uint64) {
	if batches.Load() > batchesBefore {
		t.histogram().Observe(time.Since(start).Seconds())
	}
}
