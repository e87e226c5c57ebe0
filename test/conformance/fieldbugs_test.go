package conformance

// Scenarios rebuilt from faults that other MQTT brokers shipped, each
// checked on one node. Their cluster variants need several nodes, which
// this suite does not start, so they skip here and run in test/e2e
// (fieldbugs_cluster_test.go).

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// skipClusterStep records a scenario step that needs a cluster.
func skipClusterStep(t *testing.T) {
	t.Run("cluster", func(t *testing.T) {
		t.Skip("needs several nodes; test/e2e/fieldbugs_cluster_test.go runs this step on a cluster")
	})
}

// withMaximumPacketSize sets the client's Maximum Packet Size.
func withMaximumPacketSize(n uint32) connectOption {
	return withProps(func(p *packet.Properties) { p.MaximumPacketSize, p.HasMaximumPacketSize = n, true })
}

// publishSize returns the size of a PUBLISH without properties in MQTT 5.0
// whose remaining length fits one byte: fixed header, topic, packet
// identifier, property length, payload.
func publishSize(topic string, qos byte, payload int) int {
	n := 2 + 2 + len(topic) + 1 + payload
	if qos > 0 {
		n += 2
	}
	return n
}

// TestFieldBug_B03_OutboundLimits checks that a forwarded PUBLISH respects
// the Maximum Packet Size and the Topic Alias Maximum of each subscriber,
// never those of the publisher. Brokers have sent a 100-byte PUBLISH to a
// client that allowed 99, and forwarded the publisher's Topic Alias.
//
// [MQTT-3.1.2-24] [MQTT-3.1.2-25] [MQTT-3.3.2-7] [MQTT-3.1.2-26] [MQTT-3.1.2-27] [MQTT-3.3.2-11] v5
func TestFieldBug_B03_OutboundLimits(t *testing.T) {
	t.Parallel()
	b := startBroker(t)

	t.Run("maximum-packet-size", func(t *testing.T) {
		const limit = 99
		topic := b.topic("a")
		if publishSize(topic, 2, 1) > limit {
			t.Fatalf("topic %q leaves no room for a payload in %d bytes", topic, limit)
		}
		sub1 := dial(t, b, v5)
		sub1.id = b.clientID("sub1")
		sub1.connect(persistent(60), withMaximumPacketSize(limit))
		sub1.mustSubscribe(topic, 2)
		sub2 := newClient(t, b, v5, "sub2")
		sub2.mustSubscribe(topic, 2)

		// One byte over the limit, then small.
		over := strings.Repeat("o", limit+1-publishSize(topic, 2, 0))
		pub := newClient(t, b, v5, "pub1")
		pub.publish(topic, over, 2, false)
		pub.publish(topic, "small", 2, false)

		f, ok := sub1.nextFrame(ioTimeout)
		if !ok || f.err != nil {
			t.Fatalf("sub1: expected the small message: %s %v", sub1.closeReason(), f.err)
		}
		if len(f.raw) > limit {
			t.Fatalf("sub1: %d-byte packet to a client with Maximum Packet Size %d [MQTT-3.1.2-24]", len(f.raw), limit)
		}
		p, isPub := f.p.(*packet.Publish)
		if !isPub || string(p.Payload) != "small" {
			t.Fatalf("sub1: expected the small message, got %s", describe(f.p))
		}
		sub1.ack(p)
		sub1.ping()
		sub2.expectMessage(topic, over)
		sub2.expectMessage(topic, "small")

		// The dropped message counts as delivered [MQTT-3.1.2-25]: no packet
		// identifier stays in flight, so nothing comes on reconnect.
		sub1.drop()
		again, ack := sub1.reconnect(persistent(60), withMaximumPacketSize(limit))
		if !ack.SessionPresent {
			t.Fatalf("sub1: reconnect found no session")
		}
		again.expectNothing(quietPeriod)
	})

	t.Run("topic-alias", func(t *testing.T) {
		filter := b.topic("t/#")
		topic := b.topic("t/leak")
		sub3 := newClient(t, b, v5, "sub3")
		sub3.mustSubscribe(filter, 1)
		sub4 := newClient(t, b, v5, "sub4", withProps(func(p *packet.Properties) { p.TopicAliasMaximum = 2 }))
		sub4.mustSubscribe(filter, 1)

		pub := dial(t, b, v5)
		pub.id = b.clientID("pub2")
		if ack := pub.connect(); ack.Properties.TopicAliasMaximum < 5 {
			t.Skipf("the broker's Topic Alias Maximum is %d; the scenario uses alias 5", ack.Properties.TopicAliasMaximum)
		}
		alias := packet.Properties{TopicAlias: 5, HasTopicAlias: true}
		pub.send(&packet.Publish{Topic: topic, Payload: []byte("first"), Properties: alias})
		pub.send(&packet.Publish{Topic: "", Payload: []byte("second"), Properties: alias})

		// sub3 allowed no aliases [MQTT-3.1.2-26] [MQTT-3.3.2-11].
		for _, want := range []string{"first", "second"} {
			p := sub3.expectMessage(topic, want)
			if p.Properties.HasTopicAlias {
				t.Errorf("sub3: Topic Alias %d sent to a client that allowed none", p.Properties.TopicAlias)
			}
		}

		// sub4 may get aliases 1 and 2, each set by a message that also
		// carries the topic name [MQTT-3.1.2-27] [MQTT-3.3.2-7].
		aliases := map[uint16]string{}
		for _, want := range []string{"first", "second"} {
			p := sub4.receive()
			if string(p.Payload) != want {
				t.Fatalf("sub4: got %s, want %q", describe(p), want)
			}
			if !p.Properties.HasTopicAlias {
				if p.Topic != topic {
					t.Fatalf("sub4: message %q on %q, want %q", want, p.Topic, topic)
				}
				continue
			}
			a := p.Properties.TopicAlias
			if a < 1 || a > 2 {
				t.Fatalf("sub4: Topic Alias %d outside the client's maximum 2", a)
			}
			if p.Topic != "" {
				aliases[a] = p.Topic
			}
			if aliases[a] != topic {
				t.Fatalf("sub4: message %q resolves to %q through alias %d, want %q", want, aliases[a], a, topic)
			}
		}
	})

	skipClusterStep(t)
}

// TestFieldBug_B14_RetainFlagAndQoS checks the RETAIN flag and QoS of
// retained and live deliveries. Brokers have sent a retained QoS 2 message
// at QoS 2 to a QoS 0 subscriber, and kept RETAIN 1 on live forwards.
//
// [MQTT-3.3.1-8] [MQTT-3.3.1-9] [MQTT-3.8.4-6] v3
// [MQTT-3.3.1-12] [MQTT-3.3.1-13] [MQTT-3.8.4-8] v5
func TestFieldBug_B14_RetainFlagAndQoS(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	pub := newClient(t, b, v5, "pub1")
	pub.publish(b.topic("rq/1"), "r1", 2, true)

	// New subscriptions get the retained message with RETAIN 1, at the
	// lower of the published and the granted QoS.
	for _, version := range []byte{v3, v5} {
		t.Run("new-subscriber-"+versionName(version), func(t *testing.T) {
			for _, tc := range []struct {
				filter string
				qos    byte
			}{{"rq/+", 0}, {"rq/#", 1}, {"rq/1", 2}} {
				sub := newClient(t, b, version, "sub")
				sub.mustSubscribe(b.topic(tc.filter), tc.qos)
				p := sub.expectMessage(b.topic("rq/1"), "r1")
				if !p.Retain || p.QoS != tc.qos {
					t.Errorf("filter %s at QoS %d: retained message with RETAIN %v at QoS %d, want RETAIN true at QoS %d",
						tc.filter, tc.qos, p.Retain, p.QoS, tc.qos)
				}
			}
		})
	}

	// Live forwards clear RETAIN unless Retain As Published is set.
	live3 := newClient(t, b, v3, "live3")
	live3.mustSubscribe(b.topic("rq/#"), 2)
	live5a := newClient(t, b, v5, "live5a")
	live5a.subscribeWith(packet.Properties{}, packet.Subscription{Filter: b.topic("rq/#"), QoS: 2})
	live5b := newClient(t, b, v5, "live5b")
	live5b.subscribeWith(packet.Properties{}, packet.Subscription{Filter: b.topic("rq/#"), QoS: 2, RetainAsPublished: true})
	for _, c := range []*client{live3, live5a, live5b} {
		if p := c.expectMessage(b.topic("rq/1"), "r1"); !p.Retain || p.QoS != 2 {
			t.Errorf("%s: retained message on subscribe with RETAIN %v at QoS %d, want RETAIN true at QoS 2", c.id, p.Retain, p.QoS)
		}
	}

	pub.publish(b.topic("rq/2"), "r2", 1, true)
	for _, tc := range []struct {
		c      *client
		retain bool
	}{{live3, false}, {live5a, false}, {live5b, true}} {
		p := tc.c.expectMessage(b.topic("rq/2"), "r2")
		if p.Retain != tc.retain || p.QoS != 1 {
			t.Errorf("%s: live forward with RETAIN %v at QoS %d, want RETAIN %v at QoS 1", tc.c.id, p.Retain, p.QoS, tc.retain)
		}
	}

	skipClusterStep(t)
}

// TestFieldBug_B15_RetainHandling checks when a SUBSCRIBE sends retained
// messages. Brokers have sent them only on the first subscription, ignored
// Retain Handling, and missed them for filters that mix + and #.
//
// [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] [MQTT-3.8.4-3] [MQTT-3.8.4-4] v5
// [MQTT-3.8.4-3] [MQTT-3.3.1-6] v3
func TestFieldBug_B15_RetainHandling(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	pub := newClient(t, b, v5, "pub")
	for topic, payload := range map[string]string{"rh/a": "x", "foo/bar/baz": "y", "a/x/b/c": "p", "a/y/b/c": "q"} {
		pub.publish(b.topic(topic), payload, 1, true)
	}
	filter := b.topic("rh/#")

	t.Run("sequence-v5", func(t *testing.T) {
		sub := newClient(t, b, v5, "sub1")
		steps := []struct {
			name        string
			handling    byte
			unsubscribe bool // before the SUBSCRIBE
			retained    bool
		}{
			{"new-rh0", 0, false, true},
			{"repeat-rh0", 0, false, true},
			{"repeat-rh1", 1, false, false},
			{"new-rh1", 1, true, true},
			{"new-rh2", 2, true, false},
		}
		for _, step := range steps {
			if step.unsubscribe {
				sub.unsubscribe(filter)
			}
			sub.subscribeWith(packet.Properties{}, packet.Subscription{Filter: filter, QoS: 1, RetainHandling: step.handling})
			if !step.retained {
				sub.expectNothing(quietPeriod)
				continue
			}
			if p := sub.expectMessage(b.topic("rh/a"), "x"); !p.Retain {
				t.Errorf("%s: retained message with RETAIN 0", step.name)
			}

			// A repeated SUBSCRIBE replaces the subscription without a gap
			// in live delivery [MQTT-3.8.4-3].
			if step.name == "repeat-rh0" {
				pub.publish(b.topic("rh/live"), "live", 1, false)
				sub.expectMessage(b.topic("rh/live"), "live")
			}
		}
	})

	t.Run("repeat-v3", func(t *testing.T) {
		sub := newClient(t, b, v3, "sub2")
		for i := 1; i <= 2; i++ {
			sub.mustSubscribe(filter, 1)
			if p := sub.expectMessage(b.topic("rh/a"), "x"); !p.Retain {
				t.Errorf("SUBSCRIBE %d: retained message with RETAIN 0", i)
			}
		}
	})

	t.Run("resumed-session-v5", func(t *testing.T) {
		sub := newClient(t, b, v5, "sub3", persistent(300))
		sub.mustSubscribe(filter, 1)
		sub.expectMessage(b.topic("rh/a"), "x")
		sub.disconnect()
		again, ack := sub.reconnect(persistent(300))
		if !ack.SessionPresent {
			t.Fatalf("reconnect found no session")
		}
		again.mustSubscribe(filter, 1)
		again.expectMessage(b.topic("rh/a"), "x")
	})

	for _, version := range []byte{v3, v5} {
		t.Run("mixed-wildcards-"+versionName(version), func(t *testing.T) {
			sub := newClient(t, b, version, "sub4")
			codes := sub.subscribeWith(packet.Properties{},
				packet.Subscription{Filter: b.topic("foo/+/#"), QoS: 1},
				packet.Subscription{Filter: b.topic("a/+/b/#"), QoS: 1})
			for i, code := range codes {
				if code != 1 {
					t.Fatalf("SUBACK code %d is 0x%02X, want 0x01", i, byte(code))
				}
			}
			got := map[string]string{}
			for range 3 {
				p := sub.receive()
				got[p.Topic] = string(p.Payload)
			}
			want := map[string]string{b.topic("foo/bar/baz"): "y", b.topic("a/x/b/c"): "p", b.topic("a/y/b/c"): "q"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("retained messages %v, want %v", got, want)
			}
			sub.expectNothing(quietPeriod)
		})
	}
}

// TestFieldBug_B17_WillDelay checks that a will waits for its Will Delay
// Interval or the end of the session, whichever comes first, and that a
// reconnect or a normal DISCONNECT cancels it. Brokers have published the
// will at once, and copied the Will Delay Interval into the delivered
// PUBLISH. The scenario's delays of 10 s (will) and 5 s (session) are
// scaled down to 2 s and 1 s.
//
// [MQTT-3.1.2-8] [MQTT-3.1.3-9] [MQTT-3.14.4-3] [MQTT-3.1.2-10] v5
func TestFieldBug_B17_WillDelay(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	cases := []struct {
		name     string
		delay    uint32        // Will Delay Interval, seconds
		expiry   uint32        // Session Expiry Interval, seconds
		end      func(*client) // how the first connection ends
		earliest time.Duration // the will must not come before
		latest   time.Duration // the will must have come by, or 0 if it must never come
	}{
		{name: "c1-delay-elapses", delay: 2, expiry: 30, end: (*client).drop,
			earliest: 1500 * time.Millisecond, latest: 2*time.Second + closeTimeout},
		{name: "c2-reconnect-cancels", delay: 2, expiry: 30, end: (*client).drop},
		{name: "c3-session-ends-first", delay: 30, expiry: 1, end: (*client).drop,
			earliest: 500 * time.Millisecond, latest: time.Second + closeTimeout},
		{name: "c4-normal-disconnect", end: (*client).disconnect},
		{name: "c5-disconnect-with-will", end: func(c *client) {
			c.send(&packet.Disconnect{ReasonCode: packet.ReasonDisconnectWithWill})
			c.expectClosed()
		}, latest: closeTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := b.topic("wd/" + tc.name)
			watch := newClient(t, b, v5, "watch")
			watch.mustSubscribe(topic, 1)
			will := packet.Will{Payload: []byte("gone"), QoS: 1, Properties: packet.Properties{WillDelay: tc.delay}}
			c := willClient(t, b, v5, topic, will, persistent(tc.expiry))
			tc.end(c)
			start := time.Now()

			if tc.name == "c2-reconnect-cancels" {
				// Reconnect within the delay. The scenario reconnects at half
				// of it, and a quarter leaves room for a slow machine.
				time.Sleep(time.Duration(tc.delay) * time.Second / 4)
				c.reconnect(persistent(tc.expiry))
				watch.expectNothing(time.Duration(tc.delay)*time.Second + time.Second)
				return
			}
			if tc.latest == 0 {
				watch.expectNothing(quietPeriod)
				return
			}
			if tc.earliest > 0 {
				watch.expectNothing(tc.earliest)
			}

			// The decoder rejects a Will Delay Interval in a PUBLISH as a
			// property that PUBLISH cannot carry, so a well-formed frame
			// proves it absent.
			f, ok := watch.nextFrame(tc.latest - time.Since(start))
			if !ok {
				t.Fatalf("no will within %v (Will Delay %d s, Session Expiry %d s)", tc.latest, tc.delay, tc.expiry)
			}
			if f.err != nil {
				t.Fatalf("malformed will PUBLISH % x: %v", truncate(f.raw), f.err)
			}
			p, isPub := f.p.(*packet.Publish)
			if !isPub || string(p.Payload) != "gone" {
				t.Fatalf("expected the will, got %s", describe(f.p))
			}
			t.Logf("will arrived %v after the close", time.Since(start).Round(10*time.Millisecond))
			watch.ack(p)

			// Once published, the will is gone [MQTT-3.1.2-10]: a reconnect
			// without a will and another drop publish nothing.
			if tc.expiry > 1 {
				again, _ := c.reconnect(persistent(tc.expiry))
				again.drop()
			}
			watch.expectNothing(quietPeriod)
		})
	}
}
