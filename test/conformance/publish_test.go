package conformance

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/starling-mqtt/starling/node/packet"
)

// [MQTT-2.3.1-5] [MQTT-3.3.1-2] [MQTT-4.3.1-1] v3
func TestV3_QoS0PublishHasNoPacketID(t *testing.T) {
	t.Parallel()
	testQoS0PublishHasNoPacketID(t, v3)
}

// [MQTT-2.2.1-2] [MQTT-3.3.1-2] [MQTT-4.3.1-1] [MQTT-2.2.2-1] v5
func TestV5_QoS0PublishHasNoPacketID(t *testing.T) {
	t.Parallel()
	testQoS0PublishHasNoPacketID(t, v5)
}

// testQoS0PublishHasNoPacketID checks the bytes of a forwarded QoS 0
// PUBLISH: first byte 0x30 (QoS 0, DUP 0, RETAIN 0), then the topic, no
// packet identifier, in 5.0 a Property Length of 0, then the payload.
func testQoS0PublishHasNoPacketID(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(topic, 2)
	pub := newClient(t, b, version, "pub")
	pub.publish(topic, "payload", 0, false)

	f, ok := sub.nextFrame(ioTimeout)
	if !ok || f.err != nil {
		t.Fatalf("no well-formed PUBLISH: %v %v", sub.closeReason(), f.err)
	}
	body := mqttString(topic)
	if version == v5 {
		body = append(body, 0)
	}
	want := rawPacket(0x30, body, []byte("payload"))
	if string(f.raw) != string(want) {
		t.Errorf("QoS 0 PUBLISH bytes\n got % x\nwant % x", f.raw, want)
	}
}

// [MQTT-2.3.1-1] [MQTT-2.3.1-4] v3
func TestV3_ServerPacketIDsUnique(t *testing.T) {
	t.Parallel()
	testServerPacketIDsUnique(t, v3)
}

// [MQTT-2.2.1-4] [MQTT-4.3.2-1] [MQTT-4.3.3-1] v5
func TestV5_ServerPacketIDsUnique(t *testing.T) {
	t.Parallel()
	testServerPacketIDsUnique(t, v5)
}

// testServerPacketIDsUnique lets 16 QoS 1 and QoS 2 messages stay
// unacknowledged at a subscriber: their packet identifiers must be non-zero
// and all different.
func testServerPacketIDsUnique(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(topic, 2)
	pub := newClient(t, b, version, "pub")
	const n = 16
	for i := 0; i < n; i++ {
		pub.publish(topic, fmt.Sprint(i), byte(1+i%2), false)
	}
	seen := map[uint16]bool{}
	for i := 0; i < n; i++ {
		p := sub.expectPublish()
		switch {
		case p.PacketID == 0:
			t.Errorf("QoS %d PUBLISH with packet id 0", p.QoS)
		case seen[p.PacketID]:
			t.Errorf("packet id %d reused while still unacknowledged", p.PacketID)
		}
		seen[p.PacketID] = true
	}
}

// [MQTT-2.3.1-6] [MQTT-3.3.4-1] [MQTT-4.3.3-2] v3
func TestV3_AcksEchoPacketID(t *testing.T) {
	t.Parallel()
	testAcksEchoPacketID(t, v3)
}

// [MQTT-2.2.1-5] [MQTT-3.3.4-1] [MQTT-4.3.2-4] [MQTT-4.3.3-8] [MQTT-4.3.3-11] [MQTT-4.3.3-4] v5
func TestV5_AcksEchoPacketID(t *testing.T) {
	t.Parallel()
	testAcksEchoPacketID(t, v5)
}

// testAcksEchoPacketID publishes with unusual packet identifiers and checks
// the acknowledgements: PUBACK for QoS 1, PUBREC then PUBCOMP for QoS 2,
// nothing for QoS 0. As a sender the broker follows a PUBREC with a PUBREL
// of the same identifier.
func testAcksEchoPacketID(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	c := newClient(t, b, version, "a")
	c.mustSubscribe(b.topic("echo"), 2)

	c.send(&packet.Publish{Topic: topic, Payload: []byte("q0")})
	c.send(&packet.Publish{Topic: topic, QoS: 1, PacketID: 65535, Payload: []byte("q1")})
	if ack := expectPacket[*packet.Puback](c); ack.PacketID != 65535 {
		t.Errorf("PUBACK packet id %d, want 65535 (a QoS 0 PUBLISH gets no answer)", ack.PacketID)
	}
	c.send(&packet.Publish{Topic: topic, QoS: 2, PacketID: 256, Payload: []byte("q2")})
	if rec := expectPacket[*packet.Pubrec](c); rec.PacketID != 256 {
		t.Errorf("PUBREC packet id %d, want 256", rec.PacketID)
	}
	c.send(&packet.Pubrel{PacketID: 256})
	if comp := expectPacket[*packet.Pubcomp](c); comp.PacketID != 256 {
		t.Errorf("PUBCOMP packet id %d, want 256", comp.PacketID)
	}

	pub := newClient(t, b, version, "pub")
	pub.publish(b.topic("echo"), "x", 2, false)
	p := c.expectPublish()
	c.send(&packet.Pubrec{PacketID: p.PacketID})
	if rel := expectPacket[*packet.Pubrel](c); rel.PacketID != p.PacketID {
		t.Errorf("PUBREL packet id %d, want %d", rel.PacketID, p.PacketID)
	}
	c.send(&packet.Pubcomp{PacketID: p.PacketID})
	c.expectNothing(quietPeriod)
}

// [MQTT-4.3.2-2] v3
func TestV3_QoS1SameIDAfterPubackIsNew(t *testing.T) {
	t.Parallel()
	testQoS1SameIDAfterPubackIsNew(t, v3)
}

// [MQTT-4.3.2-5] v5
func TestV5_QoS1SameIDAfterPubackIsNew(t *testing.T) {
	t.Parallel()
	testQoS1SameIDAfterPubackIsNew(t, v5)
}

// testQoS1SameIDAfterPubackIsNew reuses a QoS 1 packet identifier after its
// PUBACK, the second time with DUP 1: both are delivered.
func testQoS1SameIDAfterPubackIsNew(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(topic, 1)
	pub := newClient(t, b, version, "pub")
	pub.publishPacket(&packet.Publish{Topic: topic, QoS: 1, PacketID: 7, Payload: []byte("one")})
	pub.publishPacket(&packet.Publish{Topic: topic, QoS: 1, PacketID: 7, Dup: true, Payload: []byte("two")})
	sub.expectMessage(topic, "one")
	sub.expectMessage(topic, "two")
}

// [MQTT-4.3.3-2] v3
func TestV3_QoS2ReceiverExactlyOnce(t *testing.T) {
	t.Parallel()
	testQoS2ReceiverExactlyOnce(t, v3)
}

// [MQTT-4.3.3-8] [MQTT-4.3.3-10] [MQTT-4.3.3-11] [MQTT-4.3.3-12] v5
func TestV5_QoS2ReceiverExactlyOnce(t *testing.T) {
	t.Parallel()
	testQoS2ReceiverExactlyOnce(t, v5)
}

// testQoS2ReceiverExactlyOnce sends a QoS 2 PUBLISH twice before PUBREL:
// both get PUBREC, the message is delivered once. After PUBCOMP the same
// packet identifier starts a new message.
func testQoS2ReceiverExactlyOnce(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(topic, 2)
	pub := newClient(t, b, version, "pub")

	pub.send(&packet.Publish{Topic: topic, QoS: 2, PacketID: 5, Payload: []byte("once")})
	if rec := expectPacket[*packet.Pubrec](pub); rec.PacketID != 5 {
		t.Fatalf("PUBREC packet id %d, want 5", rec.PacketID)
	}
	pub.send(&packet.Publish{Topic: topic, QoS: 2, PacketID: 5, Dup: true, Payload: []byte("once")})
	if rec := expectPacket[*packet.Pubrec](pub); rec.PacketID != 5 {
		t.Fatalf("PUBREC for the duplicate: packet id %d, want 5", rec.PacketID)
	}
	pub.send(&packet.Pubrel{PacketID: 5})
	if comp := expectPacket[*packet.Pubcomp](pub); comp.PacketID != 5 {
		t.Fatalf("PUBCOMP packet id %d, want 5", comp.PacketID)
	}
	sub.expectMessage(topic, "once")
	sub.expectNothing(quietPeriod)

	pub.publishPacket(&packet.Publish{Topic: topic, QoS: 2, PacketID: 5, Payload: []byte("again")})
	sub.expectMessage(topic, "again")
}

// [MQTT-4.3.2-2] [MQTT-4.3.3-2] [MQTT-4.3.3-6] v5
func TestV5_QoSSenderFirstPublish(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, v5, "sub")
	sub.mustSubscribe(topic, 2)
	pub := newClient(t, b, v5, "pub")
	pub.publish(topic, "q1", 1, false)
	pub.publish(topic, "q2", 2, false)

	p1 := sub.expectPublish()
	if p1.QoS != 1 || p1.Dup || p1.PacketID == 0 {
		t.Errorf("first QoS 1 delivery %s, want QoS 1, DUP 0 and a packet id", describe(p1))
	}
	sub.ack(p1)
	p2 := sub.expectPublish()
	if p2.QoS != 2 || p2.Dup || p2.PacketID == 0 {
		t.Errorf("first QoS 2 delivery %s, want QoS 2, DUP 0 and a packet id", describe(p2))
	}
	sub.send(&packet.Pubrec{PacketID: p2.PacketID})
	expectPacket[*packet.Pubrel](sub)
	// Without PUBCOMP the broker keeps the PUBREL pending, but never sends
	// the PUBLISH again.
	sub.expectNothing(2 * quietPeriod)
	sub.send(&packet.Pubcomp{PacketID: p2.PacketID})
	sub.expectNothing(quietPeriod)
}

// [MQTT-3.3.1-3] v3
func TestV3_DupNotForwarded(t *testing.T) {
	t.Parallel()
	testDupNotForwarded(t, v3)
}

// [MQTT-3.3.1-3] v5
func TestV5_DupNotForwarded(t *testing.T) {
	t.Parallel()
	testDupNotForwarded(t, v5)
}

// testDupNotForwarded publishes a first delivery with DUP 1: the subscriber
// gets DUP 0, since its copy is not a retransmission.
func testDupNotForwarded(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(topic, 1)
	pub := newClient(t, b, version, "pub")
	pub.publishPacket(&packet.Publish{Topic: topic, QoS: 1, Dup: true, Payload: []byte("x")})
	if p := sub.expectMessage(topic, "x"); p.Dup {
		t.Errorf("forwarded PUBLISH has DUP 1; the incoming DUP must not propagate")
	}
}

// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7] [MQTT-3.3.1-8] v3
func TestV3_RetainedReplacedAndDelivered(t *testing.T) {
	t.Parallel()
	testRetainedReplacedAndDelivered(t, v3)
}

// [MQTT-3.3.1-5] v5
func TestV5_RetainedReplacedAndDelivered(t *testing.T) {
	t.Parallel()
	testRetainedReplacedAndDelivered(t, v5)
}

// testRetainedReplacedAndDelivered retains "1" (QoS 1) then "2" (QoS 0) on
// one topic and "x" (QoS 1) on another. A new subscriber to a wildcard gets
// exactly "2" and "x", with RETAIN 1, each at the QoS it was published with.
func testRetainedReplacedAndDelivered(t *testing.T, version byte) {
	b := startBroker(t)
	pub := newClient(t, b, version, "pub")
	pub.publish(b.topic("r/one"), "1", 1, true)
	pub.publish(b.topic("r/one"), "2", 0, true)
	pub.publish(b.topic("r/two"), "x", 1, true)

	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(b.topic("r/#"), 2)
	got := map[string]*packet.Publish{}
	for i := 0; i < 2; i++ {
		p := sub.receive()
		got[p.Topic] = p
	}
	sub.expectNothing(quietPeriod)
	checks := []struct {
		topic, payload string
		qos            byte
	}{{b.topic("r/one"), "2", 0}, {b.topic("r/two"), "x", 1}}
	for _, want := range checks {
		p := got[want.topic]
		switch {
		case p == nil:
			t.Errorf("no retained message for %s", want.topic)
		case string(p.Payload) != want.payload || p.QoS != want.qos || !p.Retain:
			t.Errorf("retained %s, want payload %q QoS %d RETAIN 1", describe(p), want.payload, want.qos)
		}
	}
}

// [MQTT-3.3.1-9] v3
func TestV3_LiveForwardClearsRetain(t *testing.T) {
	t.Parallel()
	testLiveForwardClearsRetain(t, v3)
}

// [MQTT-3.3.1-12] v5
func TestV5_LiveForwardClearsRetain(t *testing.T) {
	t.Parallel()
	testLiveForwardClearsRetain(t, v5)
}

func testLiveForwardClearsRetain(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(topic, 1)
	pub := newClient(t, b, version, "pub")
	pub.publish(topic, "r", 1, true)
	if p := sub.expectMessage(topic, "r"); p.Retain {
		t.Errorf("message forwarded to an existing subscription has RETAIN 1")
	}
}

// [MQTT-3.3.1-13] v5
func TestV5_RetainAsPublished(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, v5, "sub")
	sub.subscribeWith(packet.Properties{}, packet.Subscription{Filter: topic, QoS: 1, RetainAsPublished: true})
	pub := newClient(t, b, v5, "pub")
	pub.publish(topic, "r", 1, true)
	pub.publish(topic, "n", 1, false)
	if p := sub.expectMessage(topic, "r"); !p.Retain {
		t.Errorf("Retain As Published 1: retained message forwarded with RETAIN 0")
	}
	if p := sub.expectMessage(topic, "n"); p.Retain {
		t.Errorf("Retain As Published 1: non-retained message forwarded with RETAIN 1")
	}
}

// [MQTT-3.3.1-10] [MQTT-3.3.1-11] v3
func TestV3_EmptyRetainedDeletes(t *testing.T) {
	t.Parallel()
	testEmptyRetainedDeletes(t, v3)
}

// [MQTT-3.3.1-6] [MQTT-3.3.1-7] v5
func TestV5_EmptyRetainedDeletes(t *testing.T) {
	t.Parallel()
	testEmptyRetainedDeletes(t, v5)
}

// testEmptyRetainedDeletes retains a message, then publishes an empty
// retained one: a live subscriber gets the empty message, and a new
// subscriber gets nothing.
func testEmptyRetainedDeletes(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	pub := newClient(t, b, version, "pub")
	pub.publish(topic, "x", 1, true)
	live := newClient(t, b, version, "live")
	live.mustSubscribe(topic, 1)
	live.expectMessage(topic, "x")

	pub.publish(topic, "", 1, true)
	live.expectMessage(topic, "")
	expectNoRetained(t, b, version, topic)
}

// [MQTT-3.3.1-12] v3
func TestV3_NonRetainedKeepsStored(t *testing.T) {
	t.Parallel()
	testNonRetainedKeepsStored(t, v3)
}

// [MQTT-3.3.1-8] v5
func TestV5_NonRetainedKeepsStored(t *testing.T) {
	t.Parallel()
	testNonRetainedKeepsStored(t, v5)
}

func testNonRetainedKeepsStored(t *testing.T, version byte) {
	b := startBroker(t)
	pub := newClient(t, b, version, "pub")
	pub.publish(b.topic("kept"), "x", 1, true)
	pub.publish(b.topic("kept"), "y", 1, false)
	pub.publish(b.topic("never"), "z", 1, false)

	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(b.topic("#"), 1)
	if p := sub.expectMessage(b.topic("kept"), "x"); !p.Retain {
		t.Errorf("retained message arrived with RETAIN 0")
	}
	sub.expectNothing(quietPeriod)
}

// [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] [MQTT-3.8.4-4] v5
func TestV5_RetainHandling(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	cases := []struct {
		handling byte
		want     [2]bool // retained message on the first and on the repeated SUBSCRIBE
	}{
		{0, [2]bool{true, true}},
		{1, [2]bool{true, false}},
		{2, [2]bool{false, false}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("retain-handling-%d", tc.handling), func(t *testing.T) {
			t.Parallel()
			topic := b.topic(fmt.Sprintf("rh%d", tc.handling))
			pub := newClient(t, b, v5, "pub")
			pub.publish(topic, "r", 1, true)
			sub := newClient(t, b, v5, "sub")
			for i, want := range tc.want {
				sub.subscribeWith(packet.Properties{}, packet.Subscription{Filter: topic, QoS: 1, RetainHandling: tc.handling})
				if want {
					if p := sub.expectMessage(topic, "r"); !p.Retain {
						t.Errorf("subscribe %d: retained message with RETAIN 0", i+1)
					}
				} else {
					sub.expectNothing(quietPeriod)
				}
			}
		})
	}
}

// [MQTT-3.3.2-1] v3
func TestV3_PublishTopicEncoding(t *testing.T) {
	t.Parallel()
	testPublishTopicEncoding(t, v3)
}

// [MQTT-3.3.2-1] v5
func TestV5_PublishTopicEncoding(t *testing.T) {
	t.Parallel()
	testPublishTopicEncoding(t, v5)
}

// testPublishTopicEncoding forwards a message on a topic with multi-byte
// UTF-8 characters and checks that the PUBLISH body starts with the topic
// as a length-prefixed UTF-8 string, byte for byte.
func testPublishTopicEncoding(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("tést/ü/日本")
	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(topic, 1)
	pub := newClient(t, b, version, "pub")
	pub.publish(topic, "x", 1, false)
	f, ok := sub.nextFrame(ioTimeout)
	if !ok || f.err != nil {
		t.Fatalf("no well-formed PUBLISH: %s %v", sub.closeReason(), f.err)
	}
	body := f.raw[2:]
	if f.raw[1]&0x80 != 0 {
		body = f.raw[3:]
	}
	n := int(binary.BigEndian.Uint16(body))
	if got := string(body[2 : 2+n]); got != topic {
		t.Errorf("topic in the variable header %q, want %q", got, topic)
	}
}

// [MQTT-3.3.2-2] [MQTT-4.7.1-1] v3
func TestV3_WildcardTopicNameRejected(t *testing.T) {
	t.Parallel()
	testWildcardTopicNameRejected(t, v3)
}

// [MQTT-3.3.2-2] [MQTT-4.7.0-1] v5
func TestV5_WildcardTopicNameRejected(t *testing.T) {
	t.Parallel()
	testWildcardTopicNameRejected(t, v5)
}

// testWildcardTopicNameRejected publishes to topic names with + and #: the
// broker closes the connection and delivers nothing.
func testWildcardTopicNameRejected(t *testing.T, version byte) {
	b := startBroker(t)
	watcher := newClient(t, b, version, "watch")
	watcher.mustSubscribe(b.topic("#"), 1)
	for _, name := range []string{"a/+", "a/#", "+", "a+b"} {
		t.Run(sanitize(name), func(t *testing.T) {
			c := newClient(t, b, version, "pub")
			c.send(&packet.Publish{Topic: b.topic(name), QoS: 1, PacketID: 1, Payload: []byte("x")})
			c.expectClosedWithCode(packet.ReasonTopicNameInvalid, packet.ReasonProtocolError, packet.ReasonMalformedPacket)
		})
	}
	watcher.expectNothing(quietPeriod)
}

// [MQTT-3.3.5-1] v3
func TestV3_OverlappingSubscriptionsMaxQoS(t *testing.T) {
	t.Parallel()
	testOverlappingSubscriptionsMaxQoS(t, v3)
}

// [MQTT-3.3.4-2] v5
func TestV5_OverlappingSubscriptionsMaxQoS(t *testing.T) {
	t.Parallel()
	testOverlappingSubscriptionsMaxQoS(t, v5)
}

// testOverlappingSubscriptionsMaxQoS subscribes one client to two filters
// that both match, at QoS 2 and QoS 1: a QoS 2 message must reach it at
// least once at QoS 2. Extra copies are allowed.
func testOverlappingSubscriptionsMaxQoS(t *testing.T, version byte) {
	b := startBroker(t)
	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(b.topic("o/#"), 2)
	sub.mustSubscribe(b.topic("o/+"), 1)
	pub := newClient(t, b, version, "pub")
	pub.publish(b.topic("o/b"), "x", 2, false)

	var qos []byte
	qos = append(qos, sub.receive().QoS)
	for {
		f, ok := sub.nextFrame(quietPeriod)
		if !ok {
			break
		}
		if p, isPub := f.p.(*packet.Publish); isPub {
			sub.ack(p)
			qos = append(qos, p.QoS)
		}
	}
	if !containsByte(qos, 2) {
		t.Errorf("copies arrived at QoS %v; one must be at QoS 2, the highest granted", qos)
	}
	t.Logf("the broker sent %d copies, at QoS %v", len(qos), qos)
}

// [MQTT-4.5.0-1] v3
func TestV3_MessageReachesEverySubscriber(t *testing.T) {
	t.Parallel()
	testMessageReachesEverySubscriber(t, v3)
}

// [MQTT-4.5.0-1] v5
func TestV5_MessageReachesEverySubscriber(t *testing.T) {
	t.Parallel()
	testMessageReachesEverySubscriber(t, v5)
}

func testMessageReachesEverySubscriber(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("a/b")
	var subs []*client
	for i, filter := range []string{topic, b.topic("a/+"), b.topic("#"), b.topic("+/b")} {
		c := newClient(t, b, version, fmt.Sprint("s", i))
		c.mustSubscribe(filter, 1)
		subs = append(subs, c)
	}
	pub := newClient(t, b, version, "pub")
	pub.publish(topic, "all", 1, false)
	for _, c := range subs {
		c.expectMessage(topic, "all")
	}
}

// [MQTT-4.6.0-5] [MQTT-4.6.0-6] v3
func TestV3_OrderedTopic(t *testing.T) {
	t.Parallel()
	testOrderedTopic(t, v3)
}

// [MQTT-4.6.0-5] [MQTT-4.6.0-6] v5
func TestV5_OrderedTopic(t *testing.T) {
	t.Parallel()
	testOrderedTopic(t, v5)
}

// testOrderedTopic sends 40 messages per QoS from one publisher on one topic
// to two subscribers, in bursts of 10 written at once without waiting for
// acknowledgements: each subscriber gets them in the order sent. A burst
// stays within any Receive Maximum a broker is likely to announce.
func testOrderedTopic(t *testing.T, version byte) {
	b := startBroker(t)
	for qos := byte(0); qos <= 2; qos++ {
		t.Run(fmt.Sprintf("qos-%d", qos), func(t *testing.T) {
			topic := b.topic(fmt.Sprintf("q%d", qos))
			subs := []*client{newClient(t, b, version, "s1"), newClient(t, b, version, "s2")}
			for _, s := range subs {
				s.mustSubscribe(topic, 2)
			}
			pub := newClient(t, b, version, "pub")
			const n, window = 40, 10
			for start := 1; start <= n; start += window {
				var burst []byte
				for i := start; i < start+window; i++ {
					p := &packet.Publish{Topic: topic, QoS: qos, Payload: []byte(fmt.Sprint(i))}
					if qos > 0 {
						p.PacketID = uint16(i)
					}
					burst = append(burst, encodeAs(t, version, p)...)
				}
				pub.write(burst)
				for done := 0; qos > 0 && done < window; {
					switch a := pub.expect().(type) {
					case *packet.Puback:
						done++
					case *packet.Pubrec:
						pub.send(&packet.Pubrel{PacketID: a.PacketID})
					case *packet.Pubcomp:
						done++
					default:
						t.Fatalf("publisher got %s", describe(a))
					}
				}
			}
			for _, s := range subs {
				for i := 1; i <= n; i++ {
					p := s.receive()
					if string(p.Payload) != fmt.Sprint(i) {
						t.Fatalf("%s: message %d is %q; messages arrived out of order", s.id, i, p.Payload)
					}
				}
			}
		})
	}
}

// matchCase is one topic filter and topic name pair.
type matchCase struct {
	name   string
	filter string
	topic  string
	match  bool
}

// matchCases returns filter and topic pairs. Cases that allow it start with
// prefix, and dollar is a topic level that starts with $ and is unique to
// the run.
func matchCases(prefix, dollar string) []matchCase {
	return []matchCase{
		{"hash-matches-parent", prefix + "/sport/#", prefix + "/sport", true},
		{"hash-matches-deep", prefix + "/sport/#", prefix + "/sport/tennis/p1", true},
		{"plus-matches-empty-level", prefix + "/sport/+", prefix + "/sport/", true},
		{"plus-one-level-only", prefix + "/sport/+", prefix + "/sport/tennis/p1", false},
		{"plus-plus-leading-slash", "+/+", "/" + dollar[1:], true},
		{"slash-plus", "/+", "/" + dollar[1:], true},
		{"plus-not-two-levels", "+", "/" + dollar[1:], false},
		{"case-sensitive", prefix + "/A/b", prefix + "/a/b", false},
		{"trailing-slash-differs", prefix + "/A/b", prefix + "/A/b/", false},
		{"empty-level-with-plus", prefix + "/A/+/b", prefix + "/A//b", true},
		{"no-unicode-normalisation", prefix + "/caf\u00e9", prefix + "/cafe\u0301", false},
		{"bom-kept", prefix + "/a\uFEFFb", prefix + "/a\uFEFFb", true},
		{"hash-skips-dollar", "#", dollar + "/b", false},
		{"plus-skips-dollar", "+/b", dollar + "/b", false},
		{"dollar-filter-matches", dollar + "/#", dollar + "/b", true},
	}
}

// [MQTT-3.3.2-3] [MQTT-4.7.2-1] [MQTT-4.7.3-4] [MQTT-1.5.3-3] [MQTT-4.7.1-2] [MQTT-4.7.1-3] v3
func TestV3_TopicMatching(t *testing.T) {
	t.Parallel()
	testTopicMatching(t, v3)
}

// [MQTT-3.3.2-3] [MQTT-4.7.2-1] [MQTT-4.7.3-4] [MQTT-1.5.4-3] [MQTT-4.7.1-1] [MQTT-4.7.1-2] v5
func TestV5_TopicMatching(t *testing.T) {
	t.Parallel()
	testTopicMatching(t, v5)
}

// testTopicMatching subscribes to each filter and publishes to each topic.
// The payload is unique to the case, so that on a shared broker a filter
// like "#" can ignore other traffic.
func testTopicMatching(t *testing.T, version byte) {
	b := startBroker(t)
	dollar := "$conf" + runID
	for _, mc := range matchCases(b.prefix, dollar) {
		t.Run(mc.name, func(t *testing.T) {
			t.Parallel()
			payload := runID + "/" + mc.name
			sub := newClient(t, b, version, "sub")
			sub.mustSubscribe(mc.filter, 0)
			pub := newClient(t, b, version, "pub")
			pub.publish(mc.topic, payload, 1, false)

			var got *packet.Publish
			for got == nil {
				f, ok := sub.nextFrame(quietPeriod)
				if !ok {
					break
				}
				if p, isPub := f.p.(*packet.Publish); isPub && string(p.Payload) == payload {
					got = p
				}
			}
			switch {
			case mc.match && got == nil:
				t.Errorf("filter %q did not receive topic %q", mc.filter, mc.topic)
			case !mc.match && got != nil:
				t.Errorf("filter %q received topic %q, which it must not match", mc.filter, mc.topic)
			case got != nil && got.Topic != mc.topic:
				t.Errorf("topic arrived as %q, want %q byte for byte", got.Topic, mc.topic)
			}
		})
	}
}
