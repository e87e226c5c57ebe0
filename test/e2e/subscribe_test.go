package e2e

import (
	"fmt"
	"slices"
	"sort"
	"testing"
)

// Topic matching, overlapping and replaced subscriptions, invalid filters,
// unsubscribe and the per-client subscription limit.

func TestSubscribe_WildcardMatching(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	topics := []string{"a", "a/b", "a/b/c", "a/", "/x", "A/b", "a//b", "b/x", "$x/b", "$x/x"}
	cases := []struct {
		filter   string
		expected []string
	}{
		// "#" also matches the parent level (4.7.1.2).
		{"a/#", []string{"a", "a/", "a//b", "a/b", "a/b/c"}},
		{"a/+", []string{"a/", "a/b"}},
		// Levels may be empty (section 4.7.3), so "+/+" matches "/x" and "a/".
		{"+/+", []string{"/x", "A/b", "a/", "a/b", "b/x"}},
		// [MQTT-4.7.2-1] Filters starting with a wildcard do not match
		// topics starting with "$".
		{"+/x", []string{"/x", "b/x"}},
		{"#", []string{"/x", "A/b", "a", "a/", "a//b", "a/b", "a/b/c", "b/x"}},
		{"+/#", []string{"/x", "A/b", "a", "a/", "a//b", "a/b", "a/b/c", "b/x"}},
		// Matching is case sensitive and byte exact [MQTT-4.7.3-4].
		{"A/b", []string{"A/b"}},
		{"a/+/b", []string{"a//b"}},
		// An explicit "$" level does match.
		{"$x/#", []string{"$x/b", "$x/x"}},
		{"$x/+", []string{"$x/b", "$x/x"}},
	}

	subs := make([]*rawClient, len(cases))
	for i, tc := range cases {
		subs[i], _ = connectRaw(t, b, "match-"+tc.filter, v3(fmt.Sprintf("match-%d", i), true))
		subs[i].mustSubscribe(tc.filter, 1)
	}
	pub, _ := connectRaw(t, b, "match-pub", v3("match-pub", true))
	for _, topic := range topics {
		pub.publish(topic, 1, false, topic)
	}

	for i, tc := range cases {
		var got []string
		for _, m := range subs[i].receiveN(len(tc.expected), ioTimeout) {
			got = append(got, m.Topic)
		}
		sort.Strings(got)
		if !slices.Equal(got, tc.expected) {
			t.Errorf("filter %q matched %v, expected %v", tc.filter, got, tc.expected)
		}
		subs[i].expectNoPublish(quietPeriod)
	}
}

func TestSubscribe_OverlappingHighestQoSWins(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	for _, spec := range []connectSpec{v3("overlap-3", true), v5("overlap-5", true)} {
		sub, _ := connectRaw(t, b, spec.ClientID, spec)
		sub.mustSubscribe("ov/#", 2)
		sub.mustSubscribe("ov/+", 1)

		pub, _ := connectRaw(t, b, "overlap-pub", v3("overlap-pub", true))
		pub.publish("ov/b", 2, false, "both")

		// [MQTT-3.3.5-1] (5.0: [MQTT-3.3.4-2]) Overlapping subscriptions
		// deliver at least one copy at the maximum granted QoS; one copy
		// per subscription is allowed too.
		first := sub.receive(ioTimeout)
		copies := []publishMsg{first}
		if p, err := sub.next(quietPeriod); err == nil {
			second, err := decodePublish(sub.version, p)
			if err != nil {
				t.Fatal(err)
			}
			sub.ack(second)
			copies = append(copies, second)
		}
		maxQoS := byte(0)
		for _, m := range copies {
			maxQoS = max(maxQoS, m.QoS)
		}
		t.Logf("v%d: %d copies, QoS %v", spec.Version, len(copies), copies)
		if maxQoS != 2 && !knownMosquittoGap(t, "overlapping subscriptions delivered below the highest QoS") {
			t.Fatalf("v%d: no copy at QoS 2: %+v", spec.Version, copies)
		}
		sub.expectNoPublish(quietPeriod)
		sub.disconnect()
		pub.disconnect()
	}
}

func TestSubscribe_IdenticalFilterReplaces(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub, _ := connectRaw(t, b, "rep-pub", v3("rep-pub", true))
	pub.publish("rep/t", 2, true, "retained")

	sub, _ := connectRaw(t, b, "rep-sub", v3("rep-sub", true))
	sub.mustSubscribe("rep/t", 0)
	if m := sub.receive(ioTimeout); m.QoS != 0 || !m.Retain {
		t.Fatalf("first subscription: got %+v, expected the retained message at QoS 0", m)
	}

	// [MQTT-3.8.4-3] A SUBSCRIBE with an identical filter replaces the old
	// subscription (the new QoS applies) and re-sends retained messages.
	sub.mustSubscribe("rep/t", 2)
	if m := sub.receive(ioTimeout); m.QoS != 2 || !m.Retain || m.Payload != "retained" {
		t.Fatalf("replaced subscription: got %+v, expected the retained message at QoS 2", m)
	}

	pub.publish("rep/t", 2, false, "live")
	if m := sub.receive(ioTimeout); m.QoS != 2 || m.Payload != "live" {
		t.Fatalf("after replacement: got %+v, expected one delivery at QoS 2", m)
	}
	sub.expectNoPublish(quietPeriod)
}

func TestSubscribe_InvalidFilters(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	// [MQTT-4.7.1-2] "#" must be last and alone in its level,
	// [MQTT-4.7.1-3] "+" must fill a whole level, and [MQTT-4.7.3-1] a
	// filter is never empty. The server either refuses the filter in SUBACK
	// (3.1.1: 0x80, 5.0: 0x80 or 0x8F) or closes the connection.
	for _, version := range []byte{4, 5} {
		for _, filter := range []string{"a/#/b", "a#", "a/b+", "+a", ""} {
			c, _ := connectRaw(t, b, "bad-filter", connectSpec{Version: version, ClientID: "bad-filter", Clean: true, Keepalive: 60})
			c.send(encodeSubscribe(version, 7, []subscription{{Filter: filter, Options: 1}}))
			p, err := c.next(ioTimeout)
			switch {
			case err != nil && isClosed(err):
				t.Logf("v%d %q: connection closed", version, filter)
			case err != nil:
				t.Fatalf("v%d %q: %v", version, filter, err)
			case p.Type == typeDisconnect && version == 5:
				if r := disconnectReason(p); r != 0x8F && r != rcMalformedPacket && r != rcProtocolError {
					t.Fatalf("v%d %q: DISCONNECT reason %#x", version, filter, r)
				}
				c.expectClosed(ioTimeout)
			case p.Type == typeSuback:
				a, err := decodeAck(version, p)
				if err != nil {
					t.Fatal(err)
				}
				if len(a.Codes) != 1 || (a.Codes[0] != 0x80 && a.Codes[0] != 0x8F) {
					t.Fatalf("v%d %q: SUBACK codes % x, expected a failure code", version, filter, a.Codes)
				}
			default:
				t.Fatalf("v%d %q: unexpected %v", version, filter, p)
			}
			c.close()
		}
	}
	requireAlive(t, b)
}

func TestSubscribe_OneReturnCodePerFilter(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	// [MQTT-3.8.4-4] [MQTT-3.9.3-1] One SUBACK per SUBSCRIBE, with one code
	// per filter in the order of the request.
	c, _ := connectRaw(t, b, "multi", v3("multi", true))
	codes := c.subscribeMany(
		subscription{Filter: "ok/0", Options: 0},
		subscription{Filter: "ok/2", Options: 2},
		subscription{Filter: "ok/1", Options: 1},
	)
	if !slices.Equal(codes, []byte{0, 2, 1}) {
		t.Fatalf("SUBACK codes % x, expected 00 02 01", codes)
	}
}

func TestUnsubscribe_StopsDeliveryAndAlwaysAcks(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub, _ := connectRaw(t, b, "unsub-pub", v3("unsub-pub", true))

	c, _ := connectRaw(t, b, "unsub", v5("unsub", true))
	c.mustSubscribe("un/#", 1)
	c.mustSubscribe("un/x", 1)

	// [MQTT-3.10.4-5] A filter that was never subscribed still gets an
	// UNSUBACK; 5.0 reports 0x11 (no subscription existed).
	id := c.newID()
	c.send(encodeUnsubscribe(5, id, "never/subscribed", "un/x"))
	a, err := decodeAck(5, c.await(typeUnsuback, ioTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != id || !slices.Equal(a.Codes, []byte{0x11, 0x00}) {
		t.Fatalf("UNSUBACK id %d codes % x, expected id %d codes 11 00", a.ID, a.Codes, id)
	}

	// [MQTT-3.10.4-1] Filters compare byte for byte: removing "un/x" leaves
	// "un/#" in place, so exactly one copy still arrives.
	pub.publish("un/x", 1, false, "still")
	if m := c.receive(ioTimeout); m.Payload != "still" {
		t.Fatalf("got %+v", m)
	}
	c.expectNoPublish(quietPeriod)

	// [MQTT-3.10.4-2] After UNSUBSCRIBE nothing more is delivered.
	c.unsubscribe("un/#")
	pub.publish("un/x", 1, false, "gone")
	c.expectNoPublish(quietPeriod)
}

func TestSubscribe_LimitPerClient(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{Limits: limits{MaxSubscriptionsPerClient: 3}})

	// limits.max_subscriptions_per_client rejects the filter past the limit
	// with a failure code (3.1.1: 0x80; 5.0: 0x97 quota exceeded or 0x80)
	// and keeps the connection and the earlier subscriptions.
	for _, version := range []byte{4, 5} {
		c, _ := connectRaw(t, b, "sub-limit", connectSpec{Version: version, ClientID: "sub-limit", Clean: true, Keepalive: 60})
		for i := 0; i < 3; i++ {
			c.mustSubscribe(fmt.Sprintf("lim/%d", i), 1)
		}
		code := c.subscribe("lim/3", 1)
		if code != 0x80 && !(version == 5 && code == rcQuotaExceeded) {
			t.Fatalf("v%d: fourth subscription got SUBACK %#x, expected a failure", version, code)
		}
		// Re-subscribing an existing filter replaces it and is not a new one.
		c.mustSubscribe("lim/0", 0)

		c.publish("lim/2", 1, false, "inside the limit")
		if m := c.receive(ioTimeout); m.Payload != "inside the limit" {
			t.Fatalf("v%d: got %+v", version, m)
		}
		c.disconnect()
	}
}
