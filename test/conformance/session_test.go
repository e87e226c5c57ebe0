package conformance

import (
	"slices"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2] [MQTT-3.2.2-3] [MQTT-3.1.4-3] [MQTT-3.1.3-2] [MQTT-4.1.0-1] v3
func TestV3_PersistentSessionResumes(t *testing.T) {
	t.Parallel()
	testPersistentSessionResumes(t, v3)
}

// [MQTT-3.1.2-5] [MQTT-3.1.2-6] [MQTT-3.2.2-3] [MQTT-3.1.2-23] [MQTT-3.1.4-4] [MQTT-3.1.3-2] v5
func TestV5_PersistentSessionResumes(t *testing.T) {
	t.Parallel()
	testPersistentSessionResumes(t, v5)
}

// testPersistentSessionResumes stores a session with a subscription, lets
// QoS 1 and QoS 2 messages arrive while the client is away, and resumes it:
// Session Present 1, the messages, and the subscription still in place. The
// session belongs to its client identifier: another identifier finds none.
func testPersistentSessionResumes(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")

	c := dial(t, b, version)
	c.id = b.clientID("sub")
	if ack := c.connect(persistent(60)); ack.SessionPresent {
		t.Errorf("first connection of a new client id: Session Present 1, want 0")
	}
	c.mustSubscribe(topic, 2)
	c.disconnect()

	other := dial(t, b, version)
	other.id = b.clientID("other")
	if ack := other.connect(persistent(60)); ack.SessionPresent {
		t.Errorf("client id %q has no session, got Session Present 1", other.id)
	}

	pub := newClient(t, b, version, "pub")
	pub.publish(topic, "q1", 1, false)
	pub.publish(topic, "q2", 2, false)

	again, ack := c.reconnect(persistent(60))
	if !ack.SessionPresent {
		t.Fatalf("resumed session: Session Present 0, want 1")
	}
	if p := again.expectMessage(topic, "q1"); p.QoS != 1 {
		t.Errorf("queued QoS 1 message arrived at QoS %d", p.QoS)
	}
	if p := again.expectMessage(topic, "q2"); p.QoS != 2 {
		t.Errorf("queued QoS 2 message arrived at QoS %d", p.QoS)
	}
	pub.publish(topic, "live", 1, false)
	again.expectMessage(topic, "live")
	other.expectNothing(quietPeriod)
}

// [MQTT-3.1.2-6] [MQTT-3.2.2-1] v3
func TestV3_CleanSessionDiscardsState(t *testing.T) {
	t.Parallel()
	testCleanStartDiscardsState(t, v3)
}

// [MQTT-3.1.2-4] [MQTT-3.2.2-2] v5
func TestV5_CleanStartDiscardsState(t *testing.T) {
	t.Parallel()
	testCleanStartDiscardsState(t, v5)
}

// testCleanStartDiscardsState stores a session, then connects with a clean
// start: Session Present 0, no subscription left, and the clean session is
// not kept after its connection.
func testCleanStartDiscardsState(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	c := newClient(t, b, version, "a", persistent(60))
	c.mustSubscribe(topic, 1)
	c.disconnect()

	clean, ack := c.reconnect()
	if ack.SessionPresent {
		t.Errorf("clean connection: Session Present 1, want 0")
	}
	pub := newClient(t, b, version, "pub")
	pub.publish(topic, "after-clean", 1, false)
	clean.expectNothing(quietPeriod)
	clean.disconnect()

	_, ack = c.reconnect(persistent(60))
	if ack.SessionPresent {
		t.Errorf("the clean session outlived its connection: Session Present 1, want 0")
	}
}

// [MQTT-3.1.2-23] [MQTT-4.1.0-2] v5
func TestV5_SessionExpiryInterval(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	cases := []struct {
		name    string
		expiry  uint32
		wait    time.Duration
		present bool
	}{
		{"zero-ends-with-connection", 0, 0, false},
		{"kept-within-interval", 10, 300 * time.Millisecond, true},
		{"dropped-after-interval", 1, 2500 * time.Millisecond, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, b, v5)
			c.id = b.clientID(tc.name)
			c.connect(persistent(tc.expiry))
			c.mustSubscribe(b.topic(tc.name), 1)
			c.disconnect()
			time.Sleep(tc.wait)
			_, ack := c.reconnect(persistent(10))
			if ack.SessionPresent != tc.present {
				t.Errorf("Session Expiry Interval %d, reconnect after %v: Session Present %v, want %v",
					tc.expiry, tc.wait, ack.SessionPresent, tc.present)
			}
		})
	}
}

// [MQTT-4.1.0-1] [MQTT-4.1.0-2] v3
func TestV3_SessionLastsWhileConnected(t *testing.T) {
	t.Parallel()
	testSessionKeptWhileConnected(t, v3)
}

// [MQTT-4.1.0-1] v5
func TestV5_SessionKeptWhileConnected(t *testing.T) {
	t.Parallel()
	testSessionKeptWhileConnected(t, v5)
}

// testSessionKeptWhileConnected keeps a connection open longer than its
// Session Expiry Interval of 1 s (5.0) and checks that its subscription
// still works.
func testSessionKeptWhileConnected(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	opts := []connectOption{}
	if version == v5 {
		opts = append(opts, persistent(1))
	}
	c := newClient(t, b, version, "a", opts...)
	c.mustSubscribe(topic, 1)
	time.Sleep(2 * time.Second)
	pub := newClient(t, b, version, "pub")
	pub.publish(topic, "still-here", 1, false)
	c.expectMessage(topic, "still-here")
}

// [MQTT-3.1.2-7] v3
func TestV3_RetainedOutlivesSession(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	c := newClient(t, b, v3, "a")
	c.publish(topic, "kept", 1, true)
	c.disconnect()
	sub := newClient(t, b, v3, "sub")
	sub.mustSubscribe(topic, 1)
	if p := sub.expectMessage(topic, "kept"); !p.Retain {
		t.Errorf("retained message arrived with RETAIN 0")
	}
}

// willClient connects a client with a will on topic and returns it.
func willClient(t testing.TB, b *broker, version byte, topic string, will packet.Will, opts ...connectOption) *client {
	t.Helper()
	will.Topic = topic
	return newClient(t, b, version, "will", append(opts, withWill(&will))...)
}

// [MQTT-3.1.2-8] [MQTT-3.1.2-16] v3
func TestV3_WillOnAbnormalClose(t *testing.T) {
	t.Parallel()
	testWillOnAbnormalClose(t, v3)
}

// [MQTT-3.1.2-8] [MQTT-3.1.2-14] v5
func TestV5_WillOnAbnormalClose(t *testing.T) {
	t.Parallel()
	testWillOnAbnormalClose(t, v5)
}

// testWillOnAbnormalClose drops the socket of a client with a non-retained
// will: a subscriber gets the will once, and a later subscriber gets nothing
// retained.
func testWillOnAbnormalClose(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("will")
	watcher := newClient(t, b, version, "watch")
	watcher.mustSubscribe(topic, 2)
	c := willClient(t, b, version, topic, packet.Will{Payload: []byte("gone"), QoS: 1})
	c.drop()

	if p := watcher.expectMessage(topic, "gone"); p.QoS != 1 || p.Retain {
		t.Errorf("will arrived with QoS %d RETAIN %v, want QoS 1 RETAIN 0", p.QoS, p.Retain)
	}
	watcher.expectNothing(quietPeriod)
	expectNoRetained(t, b, version, topic)
}

// [MQTT-3.1.2-17] v3
func TestV3_WillRetained(t *testing.T) {
	t.Parallel()
	testWillRetained(t, v3)
}

// [MQTT-3.1.2-15] v5
func TestV5_WillRetained(t *testing.T) {
	t.Parallel()
	testWillRetained(t, v5)
}

// testWillRetained drops a client whose will has Will Retain 1: a subscriber
// that comes later gets the will as a retained message.
func testWillRetained(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("will")
	watcher := newClient(t, b, version, "watch")
	watcher.mustSubscribe(topic, 1)
	c := willClient(t, b, version, topic, packet.Will{Payload: []byte("gone"), QoS: 1, Retain: true})
	c.drop()
	watcher.expectMessage(topic, "gone")

	late := newClient(t, b, version, "late")
	late.mustSubscribe(topic, 1)
	if p := late.expectMessage(topic, "gone"); !p.Retain {
		t.Errorf("retained will arrived with RETAIN 0 for a new subscription")
	}
}

// [MQTT-3.14.4-3] [MQTT-3.1.2-10] v3
func TestV3_DisconnectDiscardsWill(t *testing.T) {
	t.Parallel()
	testDisconnectDiscardsWill(t, v3)
}

// [MQTT-3.14.4-3] [MQTT-3.1.2-10] v5
func TestV5_DisconnectDiscardsWill(t *testing.T) {
	t.Parallel()
	testDisconnectDiscardsWill(t, v5)
}

func testDisconnectDiscardsWill(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("will")
	watcher := newClient(t, b, version, "watch")
	watcher.mustSubscribe(topic, 1)
	c := willClient(t, b, version, topic, packet.Will{Payload: []byte("gone"), QoS: 1})
	c.disconnect()
	watcher.expectNothing(2 * quietPeriod)
}

// [MQTT-3.1.2-8] v5
func TestV5_DisconnectWithWillPublishes(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("will")
	watcher := newClient(t, b, v5, "watch")
	watcher.mustSubscribe(topic, 1)
	c := willClient(t, b, v5, topic, packet.Will{Payload: []byte("asked"), QoS: 1})
	c.send(&packet.Disconnect{ReasonCode: packet.ReasonDisconnectWithWill})
	c.expectClosed()
	watcher.expectMessage(topic, "asked")
}

// [MQTT-3.1.2-10] v3
func TestV3_WillPublishedOnce(t *testing.T) {
	t.Parallel()
	testWillPublishedOnce(t, v3)
}

// [MQTT-3.1.2-10] v5
func TestV5_WillPublishedOnce(t *testing.T) {
	t.Parallel()
	testWillPublishedOnce(t, v5)
}

// testWillPublishedOnce drops a client with a will, then connects and drops
// the same identifier without one: the will is published once only.
func testWillPublishedOnce(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("will")
	watcher := newClient(t, b, version, "watch")
	watcher.mustSubscribe(topic, 1)
	c := willClient(t, b, version, topic, packet.Will{Payload: []byte("gone"), QoS: 1}, persistent(60))
	c.drop()
	watcher.expectMessage(topic, "gone")

	again, _ := c.reconnect(persistent(60))
	again.drop()
	watcher.expectNothing(2 * quietPeriod)
}

// [MQTT-3.1.2-12] v3
func TestV3_NoWillFlagNoWill(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	watcher := newClient(t, b, v3, "watch")
	watcher.mustSubscribe("#", 1)
	c := newClient(t, b, v3, "a")
	c.drop()

	// On a shared broker "#" also receives other traffic, so only this
	// test's topics count there.
	deadline := time.Now().Add(2 * quietPeriod)
	for time.Now().Before(deadline) {
		f, ok := watcher.nextFrame(time.Until(deadline))
		if !ok {
			break
		}
		if p, isPub := f.p.(*packet.Publish); isPub && (externalAddr() == "" || len(p.Topic) >= len(b.prefix) && p.Topic[:len(b.prefix)] == b.prefix) {
			t.Fatalf("a client without a will was dropped, and %s arrived", describe(p))
		}
	}
}

// [MQTT-3.1.2-8] [MQTT-3.1.3-9] [MQTT-3.1.2-7] v5
func TestV5_WillDelay(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	cases := []struct {
		name      string
		delay     uint32
		expiry    uint32
		reconnect bool
		earliest  time.Duration // the will must not come before
		latest    time.Duration // the will must have come by (0: never)
	}{
		{name: "after-delay", delay: 2, expiry: 30, earliest: 1500 * time.Millisecond, latest: 2*time.Second + closeTimeout},
		{name: "session-ends-first", delay: 30, expiry: 1, earliest: 500 * time.Millisecond, latest: time.Second + closeTimeout},
		{name: "session-ends-with-connection", delay: 30, expiry: 0, latest: closeTimeout},
		{name: "reconnect-cancels", delay: 2, expiry: 30, reconnect: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := b.topic(tc.name)
			watcher := newClient(t, b, v5, "watch")
			watcher.mustSubscribe(topic, 1)
			c := willClient(t, b, v5, topic, packet.Will{Payload: []byte("late"), QoS: 1, Properties: packet.Properties{WillDelay: tc.delay}},
				persistent(tc.expiry))
			c.drop()
			start := time.Now()

			if tc.reconnect {
				time.Sleep(300 * time.Millisecond)
				c.reconnect(persistent(tc.expiry))
				watcher.expectNothing(time.Duration(tc.delay)*time.Second + time.Second)
				return
			}
			if tc.earliest > 0 {
				watcher.expectNothing(tc.earliest)
			}
			f, ok := watcher.nextFrame(tc.latest - time.Since(start))
			if !ok {
				t.Fatalf("no will within %v (Will Delay %d s, Session Expiry %d s)", tc.latest, tc.delay, tc.expiry)
			}
			if p, isPub := f.p.(*packet.Publish); !isPub || string(p.Payload) != "late" {
				t.Fatalf("expected the will, got %s", describe(f.p))
			}
		})
	}
}

// [MQTT-3.1.3-10] v5
func TestV5_WillUserPropertiesOrder(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("will")
	watcher := newClient(t, b, v5, "watch")
	watcher.mustSubscribe(topic, 1)
	props := []packet.UserProperty{{Key: "k", Value: "1"}, {Key: "a", Value: "2"}, {Key: "k", Value: "3"}, {Key: "z", Value: ""}}
	c := willClient(t, b, v5, topic, packet.Will{Payload: []byte("gone"), QoS: 1, Properties: packet.Properties{UserProperties: props}})
	c.drop()
	p := watcher.expectMessage(topic, "gone")
	if !slices.Equal(p.Properties.UserProperties, props) {
		t.Errorf("will user properties %v, want %v in this order", p.Properties.UserProperties, props)
	}
}

// [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-4.3.2-1] [MQTT-4.3.3-1] v3
func TestV3_UnackedResentOnReconnect(t *testing.T) {
	t.Parallel()
	testUnackedResentOnReconnect(t, v3)
}

// [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-4.3.2-3] [MQTT-4.3.3-3] [MQTT-4.3.3-5] [MQTT-4.3.3-6] v5
func TestV5_UnackedResentOnReconnect(t *testing.T) {
	t.Parallel()
	testUnackedResentOnReconnect(t, v5)
}

// testUnackedResentOnReconnect leaves a QoS 1 and a QoS 2 message
// unacknowledged and a third (QoS 2) at PUBREL, reconnects and checks the
// resends: the two PUBLISH packets with DUP 1 and their original packet
// identifiers in the original order, and the PUBREL, not the third PUBLISH.
// Nothing is resent while the connection lasts, and nothing after the acks.
func testUnackedResentOnReconnect(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, version, "sub", persistent(60))
	sub.mustSubscribe(topic, 2)

	pub := newClient(t, b, version, "pub")
	pub.publish(topic, "a", 1, false)
	pub.publish(topic, "b", 2, false)
	pub.publish(topic, "c", 2, false)

	var first []*packet.Publish
	for i := 0; i < 3; i++ {
		p := sub.expectPublish()
		if p.Dup {
			t.Errorf("first delivery of %q has DUP 1", p.Payload)
		}
		first = append(first, p)
	}
	sub.send(&packet.Pubrec{PacketID: first[2].PacketID})
	rel := expectPacket[*packet.Pubrel](sub)
	if rel.PacketID != first[2].PacketID {
		t.Errorf("PUBREL packet id %d, want %d", rel.PacketID, first[2].PacketID)
	}
	sub.expectNothing(time.Second)
	sub.drop()

	again, ack := sub.reconnect(persistent(60))
	if !ack.SessionPresent {
		t.Fatalf("Session Present 0 for a stored session")
	}
	var resent []*packet.Publish
	gotRel := false
	for i := 0; i < 3; i++ {
		switch p := again.expect().(type) {
		case *packet.Publish:
			resent = append(resent, p)
		case *packet.Pubrel:
			if p.PacketID != first[2].PacketID {
				t.Errorf("resent PUBREL packet id %d, want %d", p.PacketID, first[2].PacketID)
			}
			gotRel = true
		default:
			t.Fatalf("expected resent PUBLISH or PUBREL, got %s", describe(p))
		}
	}
	if !gotRel {
		t.Errorf("PUBREL was not resent")
	}
	if len(resent) != 2 {
		t.Fatalf("resent %d PUBLISH packets, want 2 (the one at PUBREL must not be resent)", len(resent))
	}
	for i, p := range resent {
		want := first[i]
		if string(p.Payload) != string(want.Payload) || p.PacketID != want.PacketID || p.QoS != want.QoS {
			t.Errorf("resend %d: %s, want payload %q id %d QoS %d", i, describe(p), want.Payload, want.PacketID, want.QoS)
		}
		if !p.Dup {
			t.Errorf("resend of %q has DUP 0", p.Payload)
		}
	}
	again.send(&packet.Puback{PacketID: resent[0].PacketID})
	again.send(&packet.Pubrec{PacketID: resent[1].PacketID})
	await(again, func(r *packet.Pubrel) bool { return r.PacketID == resent[1].PacketID })
	again.send(&packet.Pubcomp{PacketID: resent[1].PacketID})
	again.send(&packet.Pubcomp{PacketID: first[2].PacketID})
	again.ping()
	again.drop()

	last, _ := sub.reconnect(persistent(60))
	last.expectNothing(quietPeriod)
}

// [MQTT-4.4.0-2] v5
func TestV5_NegativeAckNotResent(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, v5, "sub", persistent(60))
	sub.mustSubscribe(topic, 2)
	pub := newClient(t, b, v5, "pub")
	pub.publish(topic, "one", 1, false)
	pub.publish(topic, "two", 2, false)

	p1 := sub.expectPublish()
	sub.send(&packet.Puback{PacketID: p1.PacketID, ReasonCode: packet.ReasonUnspecifiedError})
	p2 := sub.expectPublish()
	sub.send(&packet.Pubrec{PacketID: p2.PacketID, ReasonCode: packet.ReasonUnspecifiedError})
	sub.expectNothing(quietPeriod)
	sub.drop()

	again, _ := sub.reconnect(persistent(60))
	again.expectNothing(quietPeriod)
}

// [MQTT-4.3.3-7] v5
func TestV5_QoS2InflightIgnoresExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, v5, "sub", persistent(60))
	sub.mustSubscribe(topic, 2)
	pub := newClient(t, b, v5, "pub")
	pub.publishPacket(&packet.Publish{Topic: topic, QoS: 2, Payload: []byte("short"),
		Properties: packet.Properties{MessageExpiry: 1, HasMessageExpiry: true}})
	p := sub.expectPublish()
	sub.drop()

	time.Sleep(2 * time.Second)
	again, _ := sub.reconnect(persistent(60))
	re := again.expectPublish()
	if re.PacketID != p.PacketID || !re.Dup || string(re.Payload) != "short" {
		t.Errorf("resend %s, want the expired QoS 2 message again with DUP 1 and id %d", describe(re), p.PacketID)
	}
}

// [MQTT-4.3.3-13] v5
func TestV5_QoS2ReceiverCompletesAfterExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := newClient(t, b, v5, "pub")
	c.send(&packet.Publish{Topic: b.topic("t"), QoS: 2, PacketID: 3, Payload: []byte("x"),
		Properties: packet.Properties{MessageExpiry: 1, HasMessageExpiry: true}})
	rec := expectPacket[*packet.Pubrec](c)
	if rec.PacketID != 3 || rec.ReasonCode >= 0x80 {
		t.Fatalf("PUBREC id %d code 0x%02X, want id 3 and success", rec.PacketID, byte(rec.ReasonCode))
	}
	time.Sleep(1500 * time.Millisecond)
	c.send(&packet.Pubrel{PacketID: 3})
	comp := expectPacket[*packet.Pubcomp](c)
	if comp.PacketID != 3 || comp.ReasonCode != packet.ReasonSuccess {
		t.Errorf("PUBCOMP id %d code 0x%02X, want id 3 and 0x00", comp.PacketID, byte(comp.ReasonCode))
	}
}

// [MQTT-3.14.2-2] v5
func TestV5_DisconnectRaisingExpiryRejected(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := newClient(t, b, v5, "a", persistent(0))
	c.mustSubscribe(b.topic("t"), 1)
	c.send(&packet.Disconnect{Properties: packet.Properties{SessionExpiry: 60, HasSessionExpiry: true}})
	// The broker may close with DISCONNECT 0x82; expectClosed also checks
	// that its DISCONNECT carries no Session Expiry Interval.
	c.expectClosedWithCode(packet.ReasonProtocolError)
	_, ack := c.reconnect(persistent(60))
	if ack.SessionPresent {
		t.Errorf("session kept after a DISCONNECT that raised Session Expiry Interval from 0")
	}
}
