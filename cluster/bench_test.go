package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node"
)

// reportLatency reports the median and 99th percentile of lat in
// milliseconds, as name-p50-ms and name-p99-ms.
func reportLatency(b *testing.B, name string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		d := lat[int(q*float64(len(lat)-1))]
		return float64(d.Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
}

// BenchmarkCluster_SubackLatencyNewFilter times a SUBSCRIBE of a filter no
// node has yet, on one node of three, to its SUBACK. The SUBACK waits for
// one Raft commit and until every node has applied the route.
func BenchmarkCluster_SubackLatencyNewFilter(b *testing.B) {
	h := startHarness(b, harnessOptions{broker: func(_ int, cfg *node.Config) {
		cfg.Limits.MaxSubscriptionsPerClient = 1 << 20
	}})
	lead := h.leader()
	follower := h.followers()[0]
	for _, tc := range []struct {
		name string
		n    *testNode
	}{{"leader", lead}, {"follower", follower}} {
		b.Run(tc.name, func(b *testing.B) {
			c := dialMQTT(b, tc.n.mqttAddr(), "bench-suback-"+tc.name, true)
			var lat []time.Duration
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				filter := fmt.Sprintf("bench/%s/%d/+", tc.name, i)
				start := time.Now()
				if err := c.subscribe(filter); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			reportLatency(b, "suback", lat)
		})
	}
}

// BenchmarkCluster_CrossNodePublishQoS1 publishes QoS 1 messages on one
// node to a subscriber on another, one at a time. puback is the time to
// the PUBACK. delivery is the time until the subscriber has read the
// message, which it reads after the PUBACK, so delivery is never less
// than puback.
func BenchmarkCluster_CrossNodePublishQoS1(b *testing.B) {
	h := startHarness(b, harnessOptions{})
	sub := dialMQTT(b, h.nodes[1].mqttAddr(), "bench-cross-sub", true)
	if err := sub.subscribe("bench/cross"); err != nil {
		b.Fatal(err)
	}
	pub := dialMQTT(b, h.nodes[0].mqttAddr(), "bench-cross-pub", true)
	var puback, delivery []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if err := pub.publish("bench/cross", 1, "payload"); err != nil {
			b.Fatal(err)
		}
		puback = append(puback, time.Since(start))
		m, err := sub.receive(ioTimeout)
		if err != nil {
			b.Fatal(err)
		}
		if m.Topic != "bench/cross" {
			b.Fatalf("subscriber got a message on %s, want bench/cross", m.Topic)
		}
		delivery = append(delivery, time.Since(start))
	}
	reportLatency(b, "puback", puback)
	reportLatency(b, "delivery", delivery)
}
