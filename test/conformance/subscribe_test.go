package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// [MQTT-2.3.1-7] [MQTT-3.8.4-1] [MQTT-3.8.4-2] v3
func TestV3_SubackEchoesPacketID(t *testing.T) {
	t.Parallel()
	testSubackEchoesPacketID(t, v3)
}

// [MQTT-2.2.1-6] [MQTT-3.8.4-1] [MQTT-3.8.4-2] v5
func TestV5_SubackEchoesPacketID(t *testing.T) {
	t.Parallel()
	testSubackEchoesPacketID(t, v5)
}

// testSubackEchoesPacketID sends SUBSCRIBE with packet identifiers 1, 256
// and 65535 in one write: each gets its own SUBACK with the same identifier,
// in order.
func testSubackEchoesPacketID(t *testing.T, version byte) {
	b := startBroker(t)
	c := newClient(t, b, version, "a")
	ids := []uint16{1, 256, 65535}
	var burst []byte
	for i, id := range ids {
		burst = append(burst, encodeAs(t, version, &packet.Subscribe{PacketID: id,
			Subscriptions: []packet.Subscription{{Filter: b.topic(fmt.Sprint(i)), QoS: 1}}})...)
	}
	c.write(burst)
	for _, id := range ids {
		if ack := expectPacket[*packet.Suback](c); ack.PacketID != id {
			t.Errorf("SUBACK packet id %d, want %d", ack.PacketID, id)
		}
	}
}

// [MQTT-2.3.1-7] [MQTT-3.10.4-4] [MQTT-3.10.4-5] v3
func TestV3_UnsubackEchoesPacketID(t *testing.T) {
	t.Parallel()
	testUnsubackEchoesPacketID(t, v3)
}

// [MQTT-2.2.1-6] [MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-3.11.3-2] v5
func TestV5_UnsubackEchoesPacketID(t *testing.T) {
	t.Parallel()
	testUnsubackEchoesPacketID(t, v5)
}

// testUnsubackEchoesPacketID unsubscribes from a subscribed filter and from
// one never subscribed. Both get an UNSUBACK with the same packet
// identifier. In 5.0 the codes are Success and No subscription existed
// (0x11, or 0x00, which the table also allows).
func testUnsubackEchoesPacketID(t *testing.T, version byte) {
	b := startBroker(t)
	c := newClient(t, b, version, "a")
	c.mustSubscribe(b.topic("t"), 1)
	for _, tc := range []struct {
		id     uint16
		filter string
		codes  []packet.ReasonCode
	}{
		{65535, b.topic("t"), []packet.ReasonCode{0x00}},
		{256, b.topic("never"), []packet.ReasonCode{0x11, 0x00}},
	} {
		c.send(&packet.Unsubscribe{PacketID: tc.id, Filters: []string{tc.filter}})
		ack := expectPacket[*packet.Unsuback](c)
		if ack.PacketID != tc.id {
			t.Errorf("UNSUBACK packet id %d, want %d", ack.PacketID, tc.id)
		}
		if version != v5 {
			continue
		}
		if len(ack.ReasonCodes) != 1 {
			t.Fatalf("UNSUBACK has %d reason codes for one filter", len(ack.ReasonCodes))
		}
		if code := ack.ReasonCodes[0]; !unsubackCodes[code] || !containsCode(tc.codes, code) {
			t.Errorf("UNSUBACK for %q: code 0x%02X, want one of %s", tc.filter, byte(code), codeList(tc.codes))
		}
	}
}

func containsCode(list []packet.ReasonCode, c packet.ReasonCode) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

// [MQTT-3.8.4-3] v3
func TestV3_ResubscribeReplaces(t *testing.T) {
	t.Parallel()
	testResubscribeReplaces(t, v3)
}

// [MQTT-3.8.4-3] [MQTT-3.8.4-4] v5
func TestV5_ResubscribeReplaces(t *testing.T) {
	t.Parallel()
	testResubscribeReplaces(t, v5)
}

// testResubscribeReplaces subscribes to a filter at QoS 0, then again at QoS
// 2: the retained message comes again, and a new message arrives once, at
// QoS 2.
func testResubscribeReplaces(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	pub := newClient(t, b, version, "pub")
	pub.publish(topic, "r", 2, true)

	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(topic, 0)
	if p := sub.expectMessage(topic, "r"); p.QoS != 0 {
		t.Errorf("retained message at QoS %d for a QoS 0 subscription", p.QoS)
	}
	sub.mustSubscribe(topic, 2)
	if p := sub.expectMessage(topic, "r"); p.QoS != 2 || !p.Retain {
		t.Errorf("retained message after resubscribing: %s, want QoS 2 RETAIN 1", describe(p))
	}
	pub.publish(topic, "m", 2, false)
	if p := sub.expectMessage(topic, "m"); p.QoS != 2 {
		t.Errorf("message after resubscribing at QoS 2 arrived at QoS %d", p.QoS)
	}
	sub.expectNothing(quietPeriod)
}

// [MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1] [MQTT-3.9.3-2] v3
func TestV3_MultiFilterSubscribe(t *testing.T) {
	t.Parallel()
	testMultiFilterSubscribe(t, v3)
}

// [MQTT-3.8.4-5] [MQTT-3.8.4-6] [MQTT-3.8.4-7] [MQTT-3.9.3-1] [MQTT-3.9.3-2] v5
func TestV5_MultiFilterSubscribe(t *testing.T) {
	t.Parallel()
	testMultiFilterSubscribe(t, v5)
}

// testMultiFilterSubscribe subscribes to four filters in one packet, the
// second one invalid: one SUBACK with four codes in order, the granted QoS
// or a failure, and the valid subscriptions work.
func testMultiFilterSubscribe(t *testing.T, version byte) {
	b := startBroker(t)
	c := newClient(t, b, version, "a")
	subs := []packet.Subscription{
		{Filter: b.topic("ok/0"), QoS: 0},
		{Filter: b.topic("bad/#/x"), QoS: 1},
		{Filter: b.topic("ok/2"), QoS: 2},
		{Filter: b.topic("ok/1"), QoS: 1},
	}
	c.send(&packet.Subscribe{PacketID: 3, Subscriptions: subs})
	f, ok := c.nextFrame(ioTimeout)
	if d, isDisc := f.p.(*packet.Disconnect); ok && isDisc {
		checkServerDisconnect(t, d)
		c.expectClosedRaw()
		ok = false
	}
	if !ok && c.closed {
		t.Skipf("the broker closed the connection on the invalid filter, which the standard also allows; per-filter codes cannot be checked")
	}
	if !ok || f.err != nil {
		t.Fatalf("no SUBACK: %v", f.err)
	}
	ack, isAck := f.p.(*packet.Suback)
	if !isAck {
		t.Fatalf("expected SUBACK, got %s", describe(f.p))
	}
	if len(ack.ReasonCodes) != len(subs) {
		t.Fatalf("SUBACK has %d codes for %d filters", len(ack.ReasonCodes), len(subs))
	}
	for i, code := range ack.ReasonCodes {
		if version == v5 && !subackCodes[code] || version == v3 && code > 2 && code != 0x80 {
			t.Errorf("SUBACK code %d is 0x%02X, not an allowed value", i, byte(code))
		}
	}
	for i, want := range []packet.ReasonCode{0, 0x80, 2, 1} {
		got := ack.ReasonCodes[i]
		if want == 0x80 && got < 0x80 || want != 0x80 && got != want {
			t.Errorf("SUBACK code %d for %q is 0x%02X, want %s", i, subs[i].Filter, byte(got), map[bool]string{true: "a failure", false: fmt.Sprintf("0x%02X", byte(want))}[want == 0x80])
		}
	}

	pub := newClient(t, b, version, "pub")
	pub.publish(b.topic("ok/2"), "two", 2, false)
	pub.publish(b.topic("ok/1"), "one", 2, false)
	if p := c.expectMessage(b.topic("ok/2"), "two"); p.QoS != 2 {
		t.Errorf("message on ok/2 at QoS %d, want 2", p.QoS)
	}
	if p := c.expectMessage(b.topic("ok/1"), "one"); p.QoS != 1 {
		t.Errorf("message on ok/1 at QoS %d, want 1", p.QoS)
	}
}

// [MQTT-3.8.4-6] v3
func TestV3_DeliveredQoSIsMinimum(t *testing.T) {
	t.Parallel()
	testDeliveredQoSIsMinimum(t, v3)
}

// [MQTT-3.8.4-8] v5
func TestV5_DeliveredQoSIsMinimum(t *testing.T) {
	t.Parallel()
	testDeliveredQoSIsMinimum(t, v5)
}

// testDeliveredQoSIsMinimum publishes at QoS 0, 1 and 2 to subscribers
// granted QoS 0, 1 and 2: each message arrives at the lower of the two.
func testDeliveredQoSIsMinimum(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	var subs []*client
	for granted := byte(0); granted <= 2; granted++ {
		c := newClient(t, b, version, fmt.Sprint("g", granted))
		c.mustSubscribe(topic, granted)
		subs = append(subs, c)
	}
	pub := newClient(t, b, version, "pub")
	for qos := byte(0); qos <= 2; qos++ {
		pub.publish(topic, fmt.Sprint(qos), qos, false)
	}
	for granted, c := range subs {
		for qos := byte(0); qos <= 2; qos++ {
			p := c.expectMessage(topic, fmt.Sprint(qos))
			if want := min(qos, byte(granted)); p.QoS != want {
				t.Errorf("published at QoS %d, granted QoS %d: delivered at QoS %d, want %d", qos, granted, p.QoS, want)
			}
		}
	}
}

// [MQTT-3.10.4-1] [MQTT-3.10.4-2] v3
func TestV3_UnsubscribeExactMatch(t *testing.T) {
	t.Parallel()
	testUnsubscribeExactMatch(t, v3)
}

// [MQTT-3.10.4-1] [MQTT-3.10.4-2] v5
func TestV5_UnsubscribeExactMatch(t *testing.T) {
	t.Parallel()
	testUnsubscribeExactMatch(t, v5)
}

// testUnsubscribeExactMatch subscribes to "u/#", unsubscribes from filters
// that match it only as wildcards or differ in case (the subscription
// stays), then from "u/#" itself (deliveries stop).
func testUnsubscribeExactMatch(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("u/x")
	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(b.topic("u/#"), 1)
	pub := newClient(t, b, version, "pub")

	for i, other := range []string{b.topic("u/+"), b.topic("U/#"), b.topic("u/x"), b.topic("#")} {
		sub.unsubscribe(other)
		msg := fmt.Sprint("still-", i)
		pub.publish(topic, msg, 1, false)
		sub.expectMessage(topic, msg)
	}
	sub.unsubscribe(b.topic("u/#"))
	pub.publish(topic, "gone", 1, false)
	sub.expectNothing(quietPeriod)
}

// [MQTT-3.10.4-3] v3
func TestV3_UnsubscribeCompletesInflight(t *testing.T) {
	t.Parallel()
	testUnsubscribeCompletesInflight(t, v3)
}

// [MQTT-3.10.4-3] v5
func TestV5_UnsubscribeCompletesInflight(t *testing.T) {
	t.Parallel()
	testUnsubscribeCompletesInflight(t, v5)
}

// testUnsubscribeCompletesInflight receives a QoS 2 message, unsubscribes
// before acknowledging it, and checks that the broker still completes the
// flow with PUBREL.
func testUnsubscribeCompletesInflight(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(topic, 2)
	pub := newClient(t, b, version, "pub")
	pub.publish(topic, "x", 2, false)
	p := sub.expectPublish()
	sub.unsubscribe(topic)
	sub.send(&packet.Pubrec{PacketID: p.PacketID})
	rel := await(sub, func(r *packet.Pubrel) bool { return r.PacketID == p.PacketID })
	if rel.ReasonCode != packet.ReasonSuccess {
		t.Errorf("PUBREL after UNSUBSCRIBE: reason 0x%02X, want 0x00", byte(rel.ReasonCode))
	}
	sub.send(&packet.Pubcomp{PacketID: p.PacketID})
	sub.expectNothing(quietPeriod)
}

// [MQTT-3.10.4-6] v3
func TestV3_MultiFilterUnsubscribe(t *testing.T) {
	t.Parallel()
	testMultiFilterUnsubscribe(t, v3)
}

// [MQTT-3.10.4-6] [MQTT-3.11.3-1] v5
func TestV5_MultiFilterUnsubscribe(t *testing.T) {
	t.Parallel()
	testMultiFilterUnsubscribe(t, v5)
}

// testMultiFilterUnsubscribe unsubscribes from three filters, the middle one
// never subscribed: one UNSUBACK, in 5.0 with three codes in order, and both
// subscriptions are gone.
func testMultiFilterUnsubscribe(t *testing.T, version byte) {
	b := startBroker(t)
	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(b.topic("a"), 1)
	sub.mustSubscribe(b.topic("c"), 1)
	ack := sub.unsubscribe(b.topic("a"), b.topic("b"), b.topic("c"))
	if version == v5 {
		if len(ack.ReasonCodes) != 3 {
			t.Fatalf("UNSUBACK has %d codes for 3 filters", len(ack.ReasonCodes))
		}
		if ack.ReasonCodes[0] != 0 || ack.ReasonCodes[2] != 0 {
			t.Errorf("UNSUBACK codes % x, want 0x00 for the first and third filter", ack.ReasonCodes)
		}
		if c := ack.ReasonCodes[1]; c != 0x11 && c != 0x00 {
			t.Errorf("UNSUBACK code 0x%02X for a filter never subscribed, want 0x11", byte(c))
		}
	}
	pub := newClient(t, b, version, "pub")
	pub.publish(b.topic("a"), "x", 1, false)
	pub.publish(b.topic("c"), "x", 1, false)
	sub.expectNothing(quietPeriod)
}

// [MQTT-3.8.3-2] v3
func TestV3_WildcardSubscriptionsDisabled(t *testing.T) {
	t.Parallel()
	requireNodeField(t, "Features.DisableWildcardSubscriptions", true, "disabling wildcard subscriptions")
	b := startBroker(t, withField("Features.DisableWildcardSubscriptions", true))
	c := newClient(t, b, v3, "a")
	for _, filter := range []string{b.topic("+"), b.topic("#")} {
		if code := c.subscribe(filter, 1); code != 0x80 {
			t.Errorf("SUBSCRIBE %q on a broker without wildcard support: code 0x%02X, want 0x80", filter, byte(code))
		}
	}
	c.mustSubscribe(b.topic("plain"), 1)
}

// [MQTT-3.8.3-3] v5
func TestV5_NoLocal(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	c := newClient(t, b, v5, "a")
	c.subscribeWith(packet.Properties{}, packet.Subscription{Filter: topic, QoS: 1, NoLocal: true})
	c.publish(topic, "own", 1, false)
	c.expectNothing(quietPeriod)
	other := newClient(t, b, v5, "b")
	other.publish(topic, "other", 1, false)
	c.expectMessage(topic, "other")
}

// [MQTT-3.8.3-4] v5
func TestV5_NoLocalOnSharedRejected(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := newClient(t, b, v5, "a")
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "$share/g/" + b.topic("t"), QoS: 1, NoLocal: true}}})
	c.expectClosedWithCode(packet.ReasonProtocolError)
}

// [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1] v3
func TestV3_InvalidFilterRejected(t *testing.T) {
	t.Parallel()
	testInvalidFilterRejected(t, v3)
}

// [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1] [MQTT-4.8.2-1] [MQTT-4.8.2-2] v5
func TestV5_InvalidFilterRejected(t *testing.T) {
	t.Parallel()
	testInvalidFilterRejected(t, v5)
}

// testInvalidFilterRejected subscribes to filters that break the wildcard,
// empty-filter and (5.0) share-name rules: the broker refuses each, with a
// SUBACK failure code or by closing the connection.
func testInvalidFilterRejected(t *testing.T, version byte) {
	b := startBroker(t)
	filters := map[string]string{
		"hash-not-last":     b.topic("a/#/b"),
		"hash-inside-level": b.topic("a#"),
		"plus-inside-level": b.topic("a/b+"),
		"plus-leading":      b.topic("+a"),
		"empty":             "",
	}
	if version == v5 {
		filters["share-name-empty"] = "$share//" + b.topic("t")
		filters["share-name-plus"] = "$share/g+/" + b.topic("t")
		filters["share-name-hash"] = "$share/g#/" + b.topic("t")
		filters["share-without-filter"] = "$share/g"
	}
	for name, filter := range filters {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, b, version, "a")
			c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: 1}}})
			f, ok := c.nextFrame(ioTimeout)
			if !ok && c.closed {
				return
			}
			if ok && f.err == nil {
				if d, isDisc := f.p.(*packet.Disconnect); isDisc && version == v5 {
					checkServerDisconnect(t, d)
					c.expectClosedRaw()
					return
				}
			}
			if !ok || f.err != nil {
				t.Fatalf("expected SUBACK or a close: %v", f.err)
			}
			ack, isAck := f.p.(*packet.Suback)
			if !isAck {
				t.Fatalf("expected SUBACK or a close, got %s", describe(f.p))
			}
			if len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] < 0x80 {
				t.Errorf("SUBSCRIBE %q granted with % x; the filter is invalid", filter, ack.ReasonCodes)
			}
		})
	}
}

// [MQTT-4.8.2-3] v5
func TestV5_SharedSubscriptionGrantedQoS(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	filter := "$share/g/" + topic
	var members []*client
	for granted := byte(0); granted <= 1; granted++ {
		c := newClient(t, b, v5, fmt.Sprint("m", granted))
		c.mustSubscribe(filter, granted)
		members = append(members, c)
	}
	pub := newClient(t, b, v5, "pub")
	const n = 8
	for i := 0; i < n; i++ {
		pub.publish(topic, fmt.Sprint(i), 2, false)
	}

	got := 0
	for granted, c := range members {
		for {
			f, ok := c.nextFrame(quietPeriod)
			if !ok {
				break
			}
			p, isPub := f.p.(*packet.Publish)
			if !isPub {
				t.Fatalf("%s: expected PUBLISH, got %s", c.id, describe(f.p))
			}
			c.ack(p)
			got++
			if p.QoS != byte(granted) {
				t.Errorf("member granted QoS %d got a QoS 2 message at QoS %d", granted, p.QoS)
			}
		}
	}
	if got != n {
		t.Errorf("the group received %d messages, want %d, each once", got, n)
	}
}

// sharedPair subscribes two members to a shared subscription on a topic
// named after the case and returns them with the topic. The first member
// has a persistent session.
func sharedPair(t testing.TB, b *broker, name string, qos byte) (topic string, first, second *client) {
	t.Helper()
	topic = b.topic(name)
	filter := "$share/g/" + topic
	first = newClient(t, b, v5, "m1", persistent(60))
	first.mustSubscribe(filter, qos)
	second = newClient(t, b, v5, "m2")
	second.mustSubscribe(filter, qos)
	return topic, first, second
}

// awaitSharedDelivery publishes until the member first receives a message,
// at most 8 times, and returns that PUBLISH. Messages that go to second are
// acknowledged and dropped.
func awaitSharedDelivery(t testing.TB, pub, first, second *client, topic string, qos byte) *packet.Publish {
	t.Helper()
	for i := 0; i < 8; i++ {
		pub.publish(topic, fmt.Sprint("m", i), qos, false)
		if f, ok := first.nextFrame(quietPeriod); ok {
			p, isPub := f.p.(*packet.Publish)
			if !isPub {
				t.Fatalf("expected PUBLISH, got %s", describe(f.p))
			}
			return p
		}
		second.receive()
	}
	t.Fatalf("8 messages went to the other member; the group never chose %s", first.id)
	return nil
}

// [MQTT-4.8.2-4] v5
func TestV5_SharedQoS2CompletedOnReconnect(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic, first, second := sharedPair(t, b, "t", 2)
	pub := newClient(t, b, v5, "pub")
	p := awaitSharedDelivery(t, pub, first, second, topic, 2)
	first.drop()

	again, _ := first.reconnect(persistent(60))
	re := await(again, func(r *packet.Publish) bool { return string(r.Payload) == string(p.Payload) })
	if !re.Dup || re.PacketID != p.PacketID {
		t.Errorf("resend %s, want DUP 1 and packet id %d", describe(re), p.PacketID)
	}
	second.expectNothing(quietPeriod)
}

// [MQTT-4.8.2-5] v5
func TestV5_SharedQoS2KeptAfterSessionEnd(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	filter := "$share/g/" + topic
	first := newClient(t, b, v5, "m1", persistent(1))
	first.mustSubscribe(filter, 2)
	second := newClient(t, b, v5, "m2")
	second.mustSubscribe(filter, 2)
	pub := newClient(t, b, v5, "pub")
	p := awaitSharedDelivery(t, pub, first, second, topic, 2)
	first.drop()

	// The session of the first member ends after 1 s; its QoS 2 message
	// must not go to the second member.
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		f, ok := second.nextFrame(time.Until(deadline))
		if !ok {
			break
		}
		if q, isPub := f.p.(*packet.Publish); isPub && string(q.Payload) == string(p.Payload) {
			t.Fatalf("QoS 2 message %q went to another member after the first member's session ended", p.Payload)
		}
	}
}

// [MQTT-4.8.2-6] v5
func TestV5_SharedNegativeAckNotRedirected(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos-%d", qos), func(t *testing.T) {
			topic, first, second := sharedPair(t, b, fmt.Sprint("qos", qos), qos)
			pub := newClient(t, b, v5, "pub")
			p := awaitSharedDelivery(t, pub, first, second, topic, qos)
			if qos == 1 {
				first.send(&packet.Puback{PacketID: p.PacketID, ReasonCode: packet.ReasonUnspecifiedError})
			} else {
				first.send(&packet.Pubrec{PacketID: p.PacketID, ReasonCode: packet.ReasonUnspecifiedError})
			}
			for {
				f, ok := second.nextFrame(quietPeriod)
				if !ok {
					break
				}
				if q, isPub := f.p.(*packet.Publish); isPub && string(q.Payload) == string(p.Payload) {
					t.Fatalf("message %q refused by one member went to another", p.Payload)
				}
			}
			first.expectNothing(quietPeriod)
		})
	}
}
