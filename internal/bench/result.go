package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Result is the outcome of one run. Counts cover the whole run, drain phase
// included, and rates cover the publishing phase only.
type Result struct {
	Scenario     Scenario `json:"scenario"`
	Protocol     string   `json:"protocol"`
	QoS          int      `json:"qos"`
	Publishers   int      `json:"publishers"`
	Subscribers  int      `json:"subscribers"`
	PayloadBytes int      `json:"payload_bytes"`
	Inflight     int      `json:"inflight"`        // per publisher, after the broker's Receive Maximum
	TargetRate   float64  `json:"target_rate"`     // messages per second, 0 when saturating
	CleanSession bool     `json:"clean_session"`   // subscribers; publishers always use clean sessions
	StoppedBy    string   `json:"stopped_by"`      // duration, count, interrupted or error
	PublishSecs  float64  `json:"publish_seconds"` // length of the publishing phase
	MaxLagMillis float64  `json:"max_lag_ms"`      // largest delay of a send behind the --rate schedule
	DrainSecs    float64  `json:"drain_seconds"`   // time spent waiting for the last deliveries

	Sent       uint64 `json:"sent"`
	Confirmed  uint64 `json:"confirmed"`  // PUBACK, PUBCOMP or, for QoS 0, PINGRESP
	Rejected   uint64 `json:"rejected"`   // MQTT 5.0 acknowledgements with a failure reason code
	Unexpected uint64 `json:"unexpected"` // acknowledgements for packet ids not in flight

	Expected   uint64 `json:"expected"` // deliveries the subscribers should have received
	Received   uint64 `json:"received"` // first deliveries
	Lost       uint64 `json:"lost"`     // sum over subscribers of expected minus received, when positive
	LossySubs  int    `json:"subscribers_with_loss"`
	Duplicates uint64 `json:"duplicates"`
	OutOfOrder uint64 `json:"out_of_order"`
	Stale      uint64 `json:"stale"`   // messages of another run or not sent by this tool
	Foreign    uint64 `json:"foreign"` // this run's messages at a subscriber that should not get them

	// ShareGroup is the share name of the shared scenario. Its Expected is
	// the messages sent and Lost counts the group as a whole, while
	// LossySubs stays 0: no member is expected to receive a given message.
	ShareGroup      string `json:"share_group,omitempty"`
	GroupDuplicates uint64 `json:"group_duplicates,omitempty"` // received by more than one member of the group
	SubAddr         string `json:"sub_addr,omitempty"`         // subscribers' broker, when not the publishers'

	SendRate    float64 `json:"send_rate"`    // messages per second
	ReceiveRate float64 `json:"receive_rate"` // first deliveries per second during the publishing phase

	Latency LatencySummary `json:"latency_us"`

	// TLS describes the first TLS session of the run; nil without TLS.
	TLS *TLSInfo `json:"tls,omitempty"`

	// Connections is the outcome of the storm and idle scenarios, which
	// publish nothing: their message counts stay 0.
	Connections *ConnectionStats `json:"connections,omitempty"`

	Broker  *BrokerUsage `json:"broker,omitempty"`
	ToolCPU float64      `json:"tool_cpu_seconds"` // this process, from before publishing to after the drain

	Errors []string `json:"errors,omitempty"`
}

// LatencySummary is the distribution of publish-to-delivery latencies of
// first deliveries, in microseconds. Percentiles are bucket upper bounds,
// within 0.8% of the recorded values.
type LatencySummary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// BrokerUsage is the broker's CPU time and memory, sampled from /proc before
// publishing starts and after the drain phase ends.
type BrokerUsage struct {
	PID                  int     `json:"pid"`
	CPUSeconds           float64 `json:"cpu_seconds"`
	CPUSecondsPerMillion float64 `json:"cpu_seconds_per_million"` // per million first deliveries
	RSSBeforeBytes       int64   `json:"rss_before_bytes"`
	RSSAfterBytes        int64   `json:"rss_after_bytes"`
}

func summarize(h *histogram) LatencySummary {
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	return LatencySummary{
		Count: h.total,
		Mean:  h.mean() / 1e3,
		P50:   us(h.quantile(0.50)),
		P99:   us(h.quantile(0.99)),
		P999:  us(h.quantile(0.999)),
		Max:   us(h.max),
	}
}

// WriteText writes r as an aligned, human-readable report.
func (r *Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", name, fmt.Sprintf(format, args...))
	}
	if r.Connections != nil {
		r.writeConnectionsText(row)
		return tw.Flush()
	}

	mode := "saturating"
	if r.TargetRate > 0 {
		mode = fmt.Sprintf("%.0f msg/s total", r.TargetRate)
	}
	session := "clean"
	if !r.CleanSession {
		session = "persistent"
	}
	row("scenario", "%s: %d publishers, %d subscribers, MQTT %s, QoS %d, %d-byte payloads",
		r.Scenario, r.Publishers, r.Subscribers, r.Protocol, r.QoS, r.PayloadBytes)
	r.writeTLSText(row)
	row("load", "%s, %d in flight per publisher, %s subscriber sessions", mode, r.Inflight, session)
	row("publishing", "%.2f s, stopped by %s; drain %.2f s", r.PublishSecs, r.StoppedBy, r.DrainSecs)
	if r.TargetRate > 0 {
		row("schedule lag", "max %.2f ms", r.MaxLagMillis)
	}
	row("sent", "%d (%.0f msg/s), %d confirmed, %d rejected, %d unexpected acks",
		r.Sent, r.SendRate, r.Confirmed, r.Rejected, r.Unexpected)
	row("received", "%d of %d expected (%.0f msg/s)", r.Received, r.Expected, r.ReceiveRate)
	if r.SubAddr != "" {
		row("subscribers at", "%s", r.SubAddr)
	}
	if r.ShareGroup != "" {
		row("lost", "%d (group $share/%s)", r.Lost, r.ShareGroup)
		row("group duplicates", "%d", r.GroupDuplicates)
	} else {
		row("lost", "%d (%d subscribers)", r.Lost, r.LossySubs)
	}
	row("duplicates", "%d", r.Duplicates)
	row("out of order", "%d", r.OutOfOrder)
	if r.Stale > 0 || r.Foreign > 0 {
		row("stale, foreign", "%d, %d", r.Stale, r.Foreign)
	}
	l := r.Latency
	row("latency", "p50 %s  p99 %s  p99.9 %s  max %s  mean %s",
		formatMicros(l.P50), formatMicros(l.P99), formatMicros(l.P999), formatMicros(l.Max), formatMicros(l.Mean))
	if b := r.Broker; b != nil {
		row("broker cpu", "%.2f s (%.2f s per million messages), pid %d", b.CPUSeconds, b.CPUSecondsPerMillion, b.PID)
		row("broker rss", "%s before, %s after", formatBytes(b.RSSBeforeBytes), formatBytes(b.RSSAfterBytes))
	}
	row("tool cpu", "%.2f s", r.ToolCPU)
	for _, e := range r.Errors {
		row("error", "%s", e)
	}
	return tw.Flush()
}

// writeTLSText writes the TLS row of a run over TLS.
func (r *Result) writeTLSText(row func(name, format string, args ...any)) {
	t := r.TLS
	if t == nil {
		return
	}
	check := "certificate verified for " + t.ServerName
	if !t.Verified {
		check = "certificate NOT verified (--insecure)"
	}
	group := ""
	if t.Group != "" {
		group = ", " + t.Group
	}
	row("tls", "%s, %s%s, %s", t.Version, t.CipherSuite, group, check)
}

func formatMicros(us float64) string {
	d := time.Duration(us * 1e3)
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", us)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", us/1e3)
	default:
		return fmt.Sprintf("%.3fs", us/1e6)
	}
}

func formatBytes(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
