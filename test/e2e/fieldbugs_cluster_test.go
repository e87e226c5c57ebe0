package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// Cluster variants of field bugs whose single-node steps are in
// test/conformance/fieldbugs_test.go: publishers on n1, subscribers on n2, so
// every message crosses the forward between nodes.

// rawSize returns the size on the wire of a packet as the raw client read it.
func rawSize(p *packet) int { return 1 + len(appendVarint(nil, len(p.Body))) + len(p.Body) }

// TestCluster_FieldBugB03OutboundLimitsAcrossNodes: a forwarded PUBLISH must
// respect the Maximum Packet Size and Topic Alias Maximum of the subscriber on
// the receiving node, and never carry the publisher's Topic Alias
// (5.0 [MQTT-3.1.2-24] [MQTT-3.1.2-25] [MQTT-3.3.2-7] [MQTT-3.1.2-26]
// [MQTT-3.1.2-27] [MQTT-3.3.2-11]).
func TestCluster_FieldBugB03OutboundLimitsAcrossNodes(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 2})
	n1, n2 := c.node("n1"), c.node("n2")

	t.Run("maximum-packet-size", func(t *testing.T) {
		const limit = 99
		const topic = "a"
		// sub-1 exactly as the scenario's bytes: Maximum Packet Size 99.
		spec1 := v5("sub1", false, propU32(propSessionExpiry, 300), propU32(propMaximumPacketSize, limit))
		sub1, _ := connectRaw(t, n2.broker, "sub-1", spec1)
		sub1.mustSubscribe(topic, 2)
		sub2, _ := connectRaw(t, n2.broker, "sub-2", v5("sub2", true))
		sub2.mustSubscribe(topic, 2)
		waitRoute(t, n1, n2, topic)

		// 1 + 1 + 98 = 100 bytes delivered at QoS 2: fixed header, topic
		// (2+1), packet id (2), property length (1), payload (92).
		over := strings.Repeat("o", 92)
		pub, _ := connectRaw(t, n1.broker, "pub-1", v5("pub1", true))
		pub.publish(topic, 2, false, over)
		pub.publish(topic, 2, false, "small")

		p := sub1.await(typePublish, ioTimeout)
		if size := rawSize(p); size > limit {
			t.Fatalf("sub-1: %d-byte PUBLISH to a client with Maximum Packet Size %d", size, limit)
		}
		m, err := decodePublish(5, p)
		if err != nil {
			t.Fatal(err)
		}
		if m.Payload != "small" {
			t.Fatalf("sub-1: got %q, expected only small", m.Payload)
		}
		sub1.ack(m)
		sub1.ping()
		for _, want := range []string{over, "small"} {
			if got := sub2.receive(ioTimeout); got.Payload != want {
				t.Fatalf("sub-2: got %.10q, expected %.10q", got.Payload, want)
			}
		}

		// The dropped message counts as delivered: nothing is left in
		// flight to resend on reconnect.
		sub1.close()
		sub1, ca := connectRaw(t, n2.broker, "sub-1 again", spec1)
		if !ca.SessionPresent {
			t.Fatal("sub-1: reconnect found no session")
		}
		sub1.expectNoPublish(quietPeriod)
	})

	t.Run("topic-alias", func(t *testing.T) {
		sub3, _ := connectRaw(t, n2.broker, "sub-3", v5("sub3", true))
		sub3.mustSubscribe("t/#", 1)
		sub4, _ := connectRaw(t, n2.broker, "sub-4", v5("sub4", true, propU16(propTopicAliasMaximum, 2)))
		sub4.mustSubscribe("t/#", 1)
		waitRoute(t, n1, n2, "t/#")

		pub, ca := connectRaw(t, n1.broker, "pub-2", v5("pub2", true))
		if tam, _ := ca.Props.u32(propTopicAliasMaximum); tam < 5 {
			t.Skipf("n1's Topic Alias Maximum is %d; the scenario uses alias 5", tam)
		}
		// The scenario's bytes: t/leak with alias 5, then alias 5 alone.
		pub.send([]byte{0x30, 0x11, 0x00, 0x06, 't', '/', 'l', 'e', 'a', 'k', 0x03, 0x23, 0x00, 0x05, 'f', 'i', 'r', 's', 't'})
		pub.send([]byte{0x30, 0x0C, 0x00, 0x00, 0x03, 0x23, 0x00, 0x05, 's', 'e', 'c', 'o', 'n', 'd'})

		for _, want := range []string{"first", "second"} {
			m := sub3.receive(ioTimeout)
			if m.Topic != "t/leak" || m.Payload != want {
				t.Fatalf("sub-3: got %q on %q, expected %q on t/leak", m.Payload, m.Topic, want)
			}
			if a, ok := m.Props.u32(propTopicAlias); ok {
				t.Errorf("sub-3: Topic Alias %d sent to a client that allowed none", a)
			}
		}
		aliases := map[uint32]string{}
		for _, want := range []string{"first", "second"} {
			m := sub4.receive(ioTimeout)
			if m.Payload != want {
				t.Fatalf("sub-4: got %q, expected %q", m.Payload, want)
			}
			a, ok := m.Props.u32(propTopicAlias)
			if !ok {
				if m.Topic != "t/leak" {
					t.Fatalf("sub-4: %q on %q without an alias", want, m.Topic)
				}
				continue
			}
			if a < 1 || a > 2 {
				t.Fatalf("sub-4: Topic Alias %d outside the client's maximum 2", a)
			}
			if m.Topic != "" {
				aliases[a] = m.Topic
			}
			if aliases[a] != "t/leak" {
				t.Fatalf("sub-4: %q resolves to %q through alias %d", want, aliases[a], a)
			}
		}
	})
}

// TestCluster_FieldBugB14RetainFlagsAcrossNodes: the forward between nodes
// must carry the publisher's RETAIN flag and QoS, and the receiving node
// applies Retain As Published and the QoS cap per subscription (3.1.1
// [MQTT-3.3.1-9]; 5.0 [MQTT-3.3.1-12] [MQTT-3.3.1-13] [MQTT-3.8.4-8]).
// Retained messages sent on a new subscription carry RETAIN=1 at the
// minimum of published and granted QoS (3.1.1 [MQTT-3.3.1-8]
// [MQTT-3.8.4-6]).
func TestCluster_FieldBugB14RetainFlagsAcrossNodes(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 2})
	n1, n2 := c.node("n1"), c.node("n2")

	// Live subscribers on n2: 3.1.1 QoS 2, 5.0 RAP=0 and 5.0 RAP=1.
	live3, _ := connectRaw(t, n2.broker, "live-3", v3("live-3", true))
	live3.mustSubscribe("rq/#", 2)
	live5a, _ := connectRaw(t, n2.broker, "live-5a", v5("live-5a", true))
	live5a.mustSubscribe("rq/#", 2)
	live5b, _ := connectRaw(t, n2.broker, "live-5b", v5("live-5b", true))
	if code := live5b.subscribe("rq/#", 2|0x08); code != 2 {
		t.Fatalf("live-5b: SUBACK %#x", code)
	}
	waitRoute(t, n1, n2, "rq/#")

	pub, _ := connectRaw(t, n1.broker, "pub-1", v5("pub-1", true))
	pub.publish("rq/1", 2, true, "r1")
	pub.publish("rq/2", 1, true, "r2")
	for _, s := range []struct {
		c      *rawClient
		retain bool
	}{{live3, false}, {live5a, false}, {live5b, true}} {
		for _, want := range []struct {
			payload string
			qos     byte
		}{{"r1", 2}, {"r2", 1}} {
			m := s.c.receive(ioTimeout)
			if m.Payload != want.payload || m.QoS != want.qos || m.Retain != s.retain {
				t.Errorf("%s: got %q QoS %d RETAIN %v, expected %q QoS %d RETAIN %v", s.c.name, m.Payload, m.QoS, m.Retain, want.payload, want.qos, s.retain)
			}
		}
	}

	// New subscribers on n2 get the retained rq/1 (published at QoS 2 on
	// n1) with RETAIN=1 at the minimum QoS.
	watch, _ := connectRaw(t, n2.broker, "retained-watch", v5("retained-watch", true))
	waitRetained(t, watch, "rq/1", "r1", ioTimeout)
	for i, f := range []struct {
		filter string
		qos    byte
	}{{"rq/+", 0}, {"rq/#", 1}, {"rq/1", 2}} {
		id := fmt.Sprintf("sub-%d", i)
		s, _ := connectRaw(t, n2.broker, id, v5(id, true))
		s.mustSubscribe(f.filter, f.qos)
		var got []publishMsg
		want := 2
		if f.filter == "rq/1" {
			want = 1
		}
		got = s.receiveN(want, ioTimeout)
		for _, m := range got {
			if m.Topic != "rq/1" {
				continue
			}
			if !m.Retain || m.QoS != f.qos || m.Payload != "r1" {
				t.Errorf("%s %q QoS %d: got %q QoS %d RETAIN %v, expected r1 QoS %d RETAIN true", id, f.filter, f.qos, m.Payload, m.QoS, m.Retain, f.qos)
			}
		}
	}
}

// waitRoute waits until a message published on from reaches a probe
// subscribed on to, so that the routes of filter, added before the probe's,
// have reached from as well.
func waitRoute(t *testing.T, from, to *clusterNode, filter string) {
	t.Helper()
	probeTopic := "route-probe/" + strings.NewReplacer("#", "h", "+", "p").Replace(filter)
	sub, _ := connectRaw(t, to.broker, "route-probe-sub", v3("rp-sub-"+sanitizeID(filter), true))
	sub.mustSubscribe(probeTopic, 1)
	pub, _ := connectRaw(t, from.broker, "route-probe-pub", v3("rp-pub-"+sanitizeID(filter), true))
	for i := 0; ; i++ {
		pub.publish(probeTopic, 1, false, "probe")
		if _, err := sub.next(quietPeriod); err == nil {
			break
		}
		if i == 20 {
			t.Fatalf("no route from %s to %s", from.name, to.name)
		}
	}
	pub.disconnect()
	sub.disconnect()
}

func sanitizeID(s string) string {
	return strings.NewReplacer("/", "-", "#", "h", "+", "p").Replace(s)
}
