package node

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/starling-mqtt/starling/node/transport"
)

// collector exports the node's counters to Prometheus. It reads a Stats
// snapshot at scrape time, so the hot paths pay only their atomic adds.
type collector struct {
	srv   *Server
	descs map[string]*prometheus.Desc
}

// Collector returns a Prometheus collector for the node's metrics. Register it
// once per node.
func (s *Server) Collector() prometheus.Collector {
	c := &collector{srv: s, descs: make(map[string]*prometheus.Desc)}
	for name, help := range metricHelp {
		var labels []string
		switch name {
		case "messages_received_total", "messages_sent_total":
			labels = []string{"qos"}
		case "messages_dropped_total", "auth_failures_total":
			labels = []string{"reason"}
		case "authorization_denied_total":
			labels = []string{"action"}
		case "listener_connections", "listener_accepted_total", "tls_certificate_expiry_timestamp_seconds", "tls_reload_failures_total":
			labels = []string{"listener"}
		case "listener_rejected_total":
			labels = []string{"listener", "reason"}
		}
		c.descs[name] = prometheus.NewDesc("starling_"+name, help, labels, nil)
	}
	return c
}

var metricHelp = map[string]string{
	"connections":                              "Client connections with a bound session.",
	"sessions":                                 "Sessions, connected or not.",
	"subscriptions":                            "Topic filters subscribed, over all sessions.",
	"retained_messages":                        "Retained messages stored.",
	"retained_bytes":                           "Approximate memory of the retained messages, in bytes.",
	"queued_messages":                          "Messages waiting in session queues beyond the inflight windows.",
	"inflight_messages":                        "Outbound QoS 1 and 2 messages sent and not yet acknowledged.",
	"disk_bytes":                               "Bytes of the node's Pebble store on disk.",
	"connects_total":                           "Connections accepted (CONNACK success).",
	"disconnects_total":                        "Connections ended after CONNACK.",
	"takeovers_total":                          "Connections closed because a new connection took over their client id.",
	"connect_refused_total":                    "CONNECT packets refused with a CONNACK error code.",
	"messages_received_total":                  "PUBLISH packets received from clients, by QoS.",
	"messages_sent_total":                      "PUBLISH packets sent to clients, by QoS (resends included).",
	"bytes_received_total":                     "Bytes read from client sockets.",
	"bytes_sent_total":                         "Bytes written to client sockets.",
	"messages_dropped_total":                   "Messages discarded before delivery, by reason.",
	"messages_expired_total":                   "Messages discarded because their Message Expiry Interval passed.",
	"publish_refused_total":                    "QoS 1/2 publishes refused with a reason code (quota, disk limit).",
	"protocol_errors_total":                    "Connections closed because of a malformed packet or protocol violation.",
	"connection_panics_total":                  "Connections closed after a recovered panic; any value above zero is a bug.",
	"sessions_expired_total":                   "Sessions ended by their Session Expiry Interval.",
	"retained_rejected_total":                  "Retained messages not stored because the retained limits were reached.",
	"storage_errors_total":                     "Failed storage writes.",
	"shared_redelivered_total":                 "Shared subscription messages offered to another member after a member's connection broke or its node died.",
	"shared_custody_expired_total":             "Shared subscription messages forwarded to another node and never settled there within the custody time.",
	"listener_connections":                     "Connections holding a slot of the listener, handshakes included.",
	"listener_accepted_total":                  "Connections the listener accepted.",
	"listener_rejected_total":                  "Connections the listener rejected before MQTT, by reason (deny, allow, rate, max_connections, proxy, tls_handshake, ws_upgrade).",
	"tls_certificate_expiry_timestamp_seconds": "Expiry of the listener's server certificate, as a Unix time.",
	"tls_reload_failures_total":                "Failed reloads of the listener's certificate, key, CA or CRL files.",
	"slow_clients_closed_total":                "Connections closed because the client stopped reading while its replies piled up.",
	"pebble_disk_bytes":                        "Bytes of every file of the node's Pebble store.",
	"pebble_wal_bytes":                         "Bytes of the live write-ahead log files.",
	"pebble_memtable_bytes":                    "Bytes of the memtables.",
	"pebble_l0_files":                          "Files in level 0; a growing number means compactions lag behind writes.",
	"pebble_read_amplification":                "Sublevels a point read may check.",
	"pebble_compaction_debt_bytes":             "Estimated bytes to compact before the LSM is in shape.",
	"pebble_compactions_total":                 "Compactions completed since the store opened.",
	"pebble_flushes_total":                     "Memtable flushes since the store opened.",
	"pebble_block_cache_hits_total":            "Block cache hits.",
	"pebble_block_cache_misses_total":          "Block cache misses.",
	"publisher_pauses_total":                   "Batches of publishes whose acknowledgements waited for a subscriber that fell behind.",
	"auth_failures_total":                      "Failed authentications, by reason (bad_credentials, not_authorized, banned, busy, error).",
	"authorization_denied_total":               "Actions refused by the ACL rules, by action (publish, subscribe, delivery, will).",
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	gauge := func(name string, v int64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, float64(v))
	}
	counter := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge("connections", st.Connected)
	gauge("sessions", st.Sessions)
	gauge("subscriptions", st.Subscriptions)
	gauge("retained_messages", st.Retained)
	gauge("retained_bytes", st.RetainedBytes)
	gauge("queued_messages", st.Queued)
	gauge("inflight_messages", st.Inflight)
	gauge("disk_bytes", st.DiskBytes)
	counter("connects_total", st.Connects)
	counter("disconnects_total", st.Disconnects)
	counter("takeovers_total", st.Takeovers)
	counter("connect_refused_total", st.ConnectRefused)
	for q := range 3 {
		counter("messages_received_total", st.MessagesIn[q], strconv.Itoa(q))
		counter("messages_sent_total", st.MessagesOut[q], strconv.Itoa(q))
	}
	counter("bytes_received_total", st.BytesIn)
	counter("bytes_sent_total", st.BytesOut)
	counter("messages_dropped_total", st.DroppedQueueFull, "queue_full")
	counter("messages_dropped_total", st.DroppedNoMember, "no_shared_member")
	counter("messages_dropped_total", st.TooLarge, "too_large_for_client")
	counter("messages_expired_total", st.Expired)
	counter("publish_refused_total", st.PublishRefused)
	counter("protocol_errors_total", st.ProtocolErrors)
	counter("connection_panics_total", st.Panics)
	counter("sessions_expired_total", st.ExpiredSessions)
	counter("retained_rejected_total", st.RetainedRejected)
	counter("storage_errors_total", st.StorageErrors)
	counter("shared_redelivered_total", st.SharedRedelivered)
	counter("shared_custody_expired_total", st.CustodyExpired)
	counter("publisher_pauses_total", st.PublisherPauses)
	counter("slow_clients_closed_total", st.SlowClients)
	c.collectListeners(ch)
	es := c.srv.store.EngineStats()
	gauge("pebble_disk_bytes", int64(es.DiskBytes))
	gauge("pebble_wal_bytes", int64(es.WALBytes))
	gauge("pebble_memtable_bytes", int64(es.MemtableBytes))
	gauge("pebble_l0_files", es.L0Files)
	gauge("pebble_read_amplification", int64(es.ReadAmplification))
	gauge("pebble_compaction_debt_bytes", int64(es.CompactionDebt))
	counter("pebble_compactions_total", uint64(es.Compactions))
	counter("pebble_flushes_total", uint64(es.Flushes))
	counter("pebble_block_cache_hits_total", uint64(es.BlockCacheHits))
	counter("pebble_block_cache_misses_total", uint64(es.BlockCacheMisses))
	for reason, n := range st.AuthFailures {
		counter("auth_failures_total", n, reason)
	}
	for action, n := range st.Denied {
		counter("authorization_denied_total", n, action)
	}
}

// Ready reports whether the node accepts clients: its listeners are bound and
// it is not shutting down.
func (s *Server) Ready() bool {
	if s.closing.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mu.listeners) != len(s.cfg.Listeners) {
		return false
	}
	if s.authSeedPending.Load() {
		return false
	}
	return s.cluster == nil || s.cluster.Ready()
}

// collectListeners exports each listener's transport counters.
func (c *collector) collectListeners(ch chan<- prometheus.Metric) {
	c.srv.mu.Lock()
	listeners := slices.Clone(c.srv.mu.listeners)
	c.srv.mu.Unlock()
	for _, ln := range listeners {
		name := ln.Name()
		st := ln.Stats()
		ch <- prometheus.MustNewConstMetric(c.descs["listener_connections"], prometheus.GaugeValue, float64(st.Current), name)
		ch <- prometheus.MustNewConstMetric(c.descs["listener_accepted_total"], prometheus.CounterValue, float64(st.Accepted), name)
		for _, r := range transport.Reasons() {
			ch <- prometheus.MustNewConstMetric(c.descs["listener_rejected_total"], prometheus.CounterValue, float64(st.Rejected[r]), name, r.String())
		}
		if rl := ln.Reloader(); rl != nil {
			rs := rl.Stats()
			ch <- prometheus.MustNewConstMetric(c.descs["tls_certificate_expiry_timestamp_seconds"], prometheus.GaugeValue, float64(rs.CertNotAfter.Unix()), name)
			ch <- prometheus.MustNewConstMetric(c.descs["tls_reload_failures_total"], prometheus.CounterValue, float64(rs.Failures), name)
		}
	}
}
