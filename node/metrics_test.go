package node

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/starling-mqtt/starling/node/packet"
)

func TestCollector_CountsTraffic(t *testing.T) {
	srv := testServer(t, "", nil)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(srv.Collector()); err != nil {
		t.Fatal(err)
	}
	sub := dialRaw(t, srv, packet.Version311)
	sub.connect(&packet.Connect{ClientID: "m-sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "m/#", QoS: 1})
	pub := dialRaw(t, srv, packet.Version311)
	pub.connect(&packet.Connect{ClientID: "m-pub", CleanStart: true})
	pub.publish(1, 1, "m/1", "x", false)
	sub.ack(sub.expectPublish())
	waitFor(t, 2*time.Second, "PUBACK processed", func() bool { return srv.Stats().Inflight == 0 })

	values := gather(t, reg)
	checks := map[string]float64{
		"starling_connections":               2,
		"starling_subscriptions":             1,
		"starling_messages_received_total/1": 1,
		"starling_messages_sent_total/1":     1,
		"starling_inflight_messages":         0,
	}
	for key, want := range checks {
		if got, ok := values[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if len(values) < 25 {
		t.Errorf("gathered %d series, want at least 25", len(values))
	}
}

// gather returns every series of reg as "name" or "name/label" -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			if len(m.GetLabel()) > 0 {
				key += "/" + m.GetLabel()[0].GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestSys_BrokerTopicsPublished(t *testing.T) {
	srv := testServer(t, "", func(c *Config) { c.SysInterval = 100 * time.Millisecond })
	// The first tick runs when the server starts; wait for it so the
	// subscription below finds a retained value to replay.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := srv.retained.Get("$SYS/broker/clients/connected"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no $SYS value retained 5 s after start")
		}
		time.Sleep(10 * time.Millisecond)
	}

	c := dialRaw(t, srv, packet.Version311)
	c.connect(&packet.Connect{ClientID: "sys", CleanStart: true})
	c.subscribe(1, packet.Subscription{Filter: "$SYS/broker/clients/connected"})

	// A tick may land between the subscription taking effect and the
	// retained replay, so the two kinds can arrive in either order.
	var sawRetained, sawLive bool
	for i := 0; i < 5 && !(sawRetained && sawLive); i++ {
		got := c.expectPublish()
		if got.Retain {
			sawRetained = true
			continue
		}
		if string(got.Payload) == "1" {
			sawLive = true
		}
	}
	if !sawRetained || !sawLive {
		t.Fatalf("retained replay seen %v, live refresh of 1 seen %v", sawRetained, sawLive)
	}
}
