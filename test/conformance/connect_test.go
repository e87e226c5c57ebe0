package conformance

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node"
	"github.com/starling-mqtt/starling/node/packet"
)

// [MQTT-3.1.0-1] v3
func TestV3_FirstPacketNotConnectCloses(t *testing.T) {
	t.Parallel()
	testFirstPacketNotConnectCloses(t, v3)
}

// [MQTT-3.1.0-1] v5
func TestV5_FirstPacketNotConnectCloses(t *testing.T) {
	t.Parallel()
	testFirstPacketNotConnectCloses(t, v5)
}

// testFirstPacketNotConnectCloses sends PINGREQ, then SUBSCRIBE, as the first
// packet. The broker must close the connection without a reply, not even a
// DISCONNECT, because that may only follow a CONNACK [MQTT-3.14.0-1].
func testFirstPacketNotConnectCloses(t *testing.T, version byte) {
	b := startBroker(t)
	cases := map[string][]byte{
		"pingreq":   {0xC0, 0x00},
		"subscribe": encodeAs(t, version, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a"}}}),
	}
	for name, first := range cases {
		t.Run(name, func(t *testing.T) {
			c := dial(t, b, version)
			c.write(first)
			c.expectClosedRaw()
		})
	}
}

// [MQTT-3.1.0-2] v3
func TestV3_SecondConnectCloses(t *testing.T) {
	t.Parallel()
	testSecondConnectCloses(t, v3)
}

// [MQTT-3.1.0-2] [MQTT-3.2.0-2] v5
func TestV5_SecondConnectCloses(t *testing.T) {
	t.Parallel()
	testSecondConnectCloses(t, v5)
}

// testSecondConnectCloses sends a second CONNECT on a connected socket: the
// broker closes the connection and sends no second CONNACK.
func testSecondConnectCloses(t *testing.T, version byte) {
	b := startBroker(t)
	c := newClient(t, b, version, "a")
	c.send(c.connectPacket())
	c.expectClosedWithCode(packet.ReasonProtocolError)
}

// [MQTT-3.1.2-1] v3
func TestV3_WrongProtocolNameRejected(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := dial(t, b, v3)
	c.write(rawConnect("MQTX", 4, 0x02, mqttString(b.clientID("a"))))
	// The broker may also switch to another protocol, but a 3.1.1 CONNACK
	// that accepts the connection is never right.
	c.expectConnectRejected(true)
}

// [MQTT-3.1.2-1] v5
func TestV5_WrongProtocolNameRejected(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := dial(t, b, v5)
	c.write(rawConnect("MQTX", 5, 0x02, mqttString(b.clientID("a"))))
	c.expectConnectRejected(true, 0x84, 0x81, 0x82)
}

// [MQTT-3.1.2-2] v3
func TestV3_UnsupportedProtocolLevelRefused(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := dial(t, b, v3)
	c.write(rawConnect("MQTT", 6, 0x02, mqttString(b.clientID("a"))))
	if code := c.expectConnectRejected(true, 0x01); code != 0x01 {
		t.Errorf("no CONNACK with return code 0x01 before the close (got %d)", code)
	}
}

// [MQTT-3.1.2-2] v5
func TestV5_UnsupportedProtocolLevelRefused(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := dial(t, b, v5)
	c.write(rawConnect("MQTT", 6, 0x02, []byte{0}, mqttString(b.clientID("a"))))
	// A broker that does not support level 6 cannot tell which CONNACK
	// format the client reads, so it may send 0x84 in the 5.0 form or 0x01
	// in the 3.1.1 form.
	c.expectConnectRejected(true, 0x84, 0x01)
}

// [MQTT-3.1.2-3] v3
func TestV3_ConnectReservedFlagCloses(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := dial(t, b, v3)
	c.write(rawConnect("MQTT", 4, 0x03, mqttString(b.clientID("a"))))
	c.expectConnectRejected(false)
}

// [MQTT-3.1.2-3] v5
func TestV5_ConnectReservedFlagCloses(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := dial(t, b, v5)
	c.write(rawConnect("MQTT", 5, 0x03, mqttString(b.clientID("a"))))
	c.expectConnectRejected(true, 0x81, 0x82)
}

// malformedConnect is a CONNECT that breaks a format rule of section 3.1.
type malformedConnect struct {
	name    string
	flags   byte
	payload [][]byte
	v3only  bool
}

// malformedConnects returns CONNECT flag and payload combinations that
// section 3.1 forbids; id is a valid client identifier.
func malformedConnects(id string) []malformedConnect {
	will := [][]byte{mqttString(id), mqttString("w"), mqttString("m")}
	return []malformedConnect{
		{name: "will-qos-without-will-flag", flags: 0x02 | 0x08, payload: [][]byte{mqttString(id)}},
		{name: "will-retain-without-will-flag", flags: 0x02 | 0x20, payload: [][]byte{mqttString(id)}},
		{name: "will-qos-3", flags: 0x02 | 0x04 | 0x18, payload: will},
		{name: "will-flag-without-will-fields", flags: 0x02 | 0x04, payload: [][]byte{mqttString(id)}},
		{name: "user-name-flag-without-user-name", flags: 0x02 | 0x80, payload: [][]byte{mqttString(id)}},
		{name: "password-flag-without-password", flags: 0x02 | 0x80 | 0x40, payload: [][]byte{mqttString(id), mqttString("u")}},
		{name: "password-without-user-name", flags: 0x02 | 0x40, payload: [][]byte{mqttString(id), mqttString("p")}, v3only: true},
		{name: "missing-client-id", flags: 0x02},
		{name: "client-id-longer-than-packet", flags: 0x02, payload: [][]byte{u16(40), []byte(id)}},
		{name: "bytes-after-payload", flags: 0x02, payload: [][]byte{mqttString(id), mqttString("extra")}},
	}
}

// [MQTT-3.1.4-1] [MQTT-3.2.2-6] [MQTT-3.1.2-9] [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-14] [MQTT-3.1.2-15] v3
// [MQTT-3.1.2-18] [MQTT-3.1.2-19] [MQTT-3.1.2-20] [MQTT-3.1.2-21] [MQTT-3.1.2-22] [MQTT-3.1.3-1] [MQTT-3.1.3-3] v3
func TestV3_MalformedConnectClosedWithoutConnack(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	for _, mc := range malformedConnects(b.clientID("a")) {
		t.Run(mc.name, func(t *testing.T) {
			c := dial(t, b, v3)
			c.write(rawConnect("MQTT", 4, mc.flags, mc.payload...))
			c.expectConnectRejected(false)
		})
	}
}

// [MQTT-3.1.4-1] [MQTT-3.1.2-9] [MQTT-3.1.2-11] [MQTT-3.1.2-12] [MQTT-3.1.2-13] v5
// [MQTT-3.1.2-16] [MQTT-3.1.2-17] [MQTT-3.1.2-18] [MQTT-3.1.2-19] [MQTT-3.1.3-1] [MQTT-3.1.3-3] v5
func TestV5_MalformedConnectCloses(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	for _, mc := range malformedConnects(b.clientID("a")) {
		if mc.v3only {
			continue
		}
		t.Run(mc.name, func(t *testing.T) {
			c := dial(t, b, v5)
			payload := mc.payload
			if mc.flags&0x04 != 0 && len(payload) > 1 {
				// Will Properties come before the will topic in 5.0.
				payload = append([][]byte{payload[0], {0}}, payload[1:]...)
			}
			c.write(rawConnect("MQTT", 5, mc.flags, payload...))
			c.expectConnectRejected(true)
		})
	}
}

// [MQTT-3.1.2-24] [MQTT-3.1.2-8] v3
func TestV3_KeepAliveTimeoutCloses(t *testing.T) {
	t.Parallel()
	testKeepAliveTimeoutCloses(t, v3)
}

// [MQTT-3.1.2-22] [MQTT-3.2.2-22] v5
func TestV5_KeepAliveTimeoutCloses(t *testing.T) {
	t.Parallel()
	testKeepAliveTimeoutCloses(t, v5)
}

// testKeepAliveTimeoutCloses connects with a keep alive of 1 s and a will,
// then stays silent: the broker must close between 1 s and 1.5 s plus a
// margin, and publish the will as for a network failure. A client that pings
// every half second stays connected.
func testKeepAliveTimeoutCloses(t *testing.T, version byte) {
	b := startBroker(t)
	willTopic := b.topic("will")
	watcher := newClient(t, b, version, "watch")
	watcher.mustSubscribe(willTopic, 1)

	pinger := newClient(t, b, version, "ping", withKeepAlive(1))
	silent := dial(t, b, version)
	silent.id = b.clientID("silent")
	ack := silent.connect(withKeepAlive(1), withWill(&packet.Will{Topic: willTopic, Payload: []byte("gone"), QoS: 1}))
	start := time.Now()
	if ack.Properties.HasServerKeepAlive && ack.Properties.ServerKeepAlive != 1 {
		t.Fatalf("CONNACK Server Keep Alive %d; this test needs the requested 1 s", ack.Properties.ServerKeepAlive)
	}

	// The pinger's packets count as activity, so it must survive the
	// silent client's timeout.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 6; i++ {
			time.Sleep(500 * time.Millisecond)
			pinger.conn.Write([]byte{0xC0, 0x00})
		}
	}()

	d := silent.expectClosed()
	elapsed := time.Since(start)
	if elapsed < 900*time.Millisecond {
		t.Errorf("closed after %v, before the 1 s keep alive had passed", elapsed.Round(time.Millisecond))
	}
	if elapsed > 1500*time.Millisecond+closeTimeout {
		t.Errorf("closed after %v, later than 1.5 times the keep alive", elapsed.Round(time.Millisecond))
	}
	if d != nil && d.ReasonCode != packet.ReasonKeepAliveTimeout {
		t.Errorf("DISCONNECT reason 0x%02X, want 0x8D (Keep Alive timeout)", byte(d.ReasonCode))
	}
	watcher.expectMessage(willTopic, "gone")

	<-done
	for i := 0; i < 6; i++ {
		await[*packet.Pingresp](pinger, nil)
	}
	pinger.expectNothing(100 * time.Millisecond)
}

// [MQTT-3.2.2-21] v5
func TestV5_ServerKeepAliveEnforced(t *testing.T) {
	t.Parallel()
	requireNodeField(t, "Features.MaxKeepAlive", uint16(1), "Server Keep Alive")
	b := startBroker(t, withField("Features.MaxKeepAlive", uint16(1)))
	c := dial(t, b, v5)
	c.id = b.clientID("a")
	ack := c.connect(withKeepAlive(60))
	start := time.Now()
	if !ack.Properties.HasServerKeepAlive || ack.Properties.ServerKeepAlive != 1 {
		t.Fatalf("CONNACK Server Keep Alive = %d (present %v), want 1 for a node capped at 1 s",
			ack.Properties.ServerKeepAlive, ack.Properties.HasServerKeepAlive)
	}
	c.expectClosedWithCode(packet.ReasonKeepAliveTimeout)
	if elapsed := time.Since(start); elapsed > 1500*time.Millisecond+closeTimeout {
		t.Errorf("closed after %v; the broker must enforce the Server Keep Alive of 1 s it sent", elapsed)
	}
}

// [MQTT-3.1.3-5] v3
func TestV3_ClientIDCharactersAccepted(t *testing.T) {
	t.Parallel()
	testClientIDCharactersAccepted(t, v3)
}

// [MQTT-3.1.3-5] v5
func TestV5_ClientIDCharactersAccepted(t *testing.T) {
	t.Parallel()
	testClientIDCharactersAccepted(t, v5)
}

// testClientIDCharactersAccepted connects with identifiers of 1 and 23
// characters from 0-9, a-z and A-Z.
func testClientIDCharactersAccepted(t *testing.T, version byte) {
	b := startBroker(t)
	ids := []string{(b.clientID("x") + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")[:23]}
	if externalAddr() == "" {
		// A one-character identifier could collide on a shared broker.
		ids = append(ids, "Z")
	}
	for _, id := range ids {
		c := dial(t, b, version)
		c.id = id
		if ack := c.connect(); ack.SessionPresent {
			t.Errorf("client id %q: Session Present 1 for a clean connection", id)
		}
		c.disconnect()
	}
}

// [MQTT-3.1.3-6] v3
func TestV3_EmptyClientIDAssigned(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	var clients []*client
	for i := 0; i < 2; i++ {
		c := dial(t, b, v3)
		c.id = ""
		if ack := c.connect(); ack.SessionPresent {
			t.Errorf("empty client id: Session Present 1, want 0")
		}
		c.mustSubscribe(topic, 0)
		clients = append(clients, c)
	}

	// Two clients with empty identifiers hold two sessions: both stay
	// connected and both receive.
	pub := newClient(t, b, v3, "pub")
	pub.publish(topic, "hello", 0, false)
	for _, c := range clients {
		c.expectMessage(topic, "hello")
	}
}

// [MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16] v5
func TestV5_EmptyClientIDAssigned(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	seen := map[string]bool{}
	var first *client
	for i := 0; i < 2; i++ {
		c := dial(t, b, v5)
		c.id = ""
		ack := c.connect(persistent(30))
		id := ack.Properties.AssignedClientID
		switch {
		case id == "":
			t.Fatalf("CONNACK for an empty client id has no Assigned Client Identifier")
		case seen[id]:
			t.Fatalf("Assigned Client Identifier %q given twice", id)
		}
		seen[id] = true
		c.id = id
		if first == nil {
			first = c
		}
	}

	// The broker handles the connection as if it carried the assigned id:
	// the session can be resumed under it.
	first.mustSubscribe(topic, 1)
	first.disconnect()
	again, ack := first.reconnect(persistent(30))
	if !ack.SessionPresent {
		t.Errorf("reconnect with the assigned id %q: Session Present 0, want 1", first.id)
	}
	pub := newClient(t, b, v5, "pub")
	pub.publish(topic, "hello", 1, false)
	again.expectMessage(topic, "hello")
}

// [MQTT-3.1.3-7] [MQTT-3.1.3-8] [MQTT-3.1.3-9] [MQTT-3.2.2-4] [MQTT-3.2.2-5] v3
func TestV3_EmptyClientIDPersistentRefused(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := dial(t, b, v3)
	c.write(rawConnect("MQTT", 4, 0x00, mqttString("")))
	if code := c.expectConnectRejected(true, 0x02); code != 0x02 {
		t.Errorf("no CONNACK 0x02 (Identifier rejected) before the close (got %d)", code)
	}
}

// [MQTT-3.1.3-9] v3
func TestV3_ClientIDRefusedByLimit(t *testing.T) {
	t.Parallel()
	b := startBroker(t, withLimits(func(l *node.Limits) { l.MaxClientIDLength = 23 }))
	c := dial(t, b, v3)
	c.write(rawConnect("MQTT", 4, 0x02, mqttString(strings.Repeat("a", 24))))
	if code := c.expectConnectRejected(true, 0x02); code != 0x02 {
		t.Errorf("no CONNACK 0x02 (Identifier rejected) before the close (got %d)", code)
	}
}

// [MQTT-3.1.3-8] [MQTT-3.2.2-7] v5
func TestV5_ClientIDRefusedByLimit(t *testing.T) {
	t.Parallel()
	b := startBroker(t, withLimits(func(l *node.Limits) { l.MaxClientIDLength = 23 }))
	c := dial(t, b, v5)
	c.write(rawConnect("MQTT", 5, 0x02, mqttString(strings.Repeat("a", 24))))
	c.expectConnectRejected(true, 0x85)
}

// [MQTT-3.2.2-4] v3
func TestV3_RefusedConnackSessionPresentZero(t *testing.T) {
	t.Parallel()
	testRefusedConnackSessionPresentZero(t, v3)
}

// [MQTT-3.2.2-6] [MQTT-3.1.4-2] v5
func TestV5_RefusedConnackSessionPresentZero(t *testing.T) {
	t.Parallel()
	testRefusedConnackSessionPresentZero(t, v5)
}

// testRefusedConnackSessionPresentZero stores a session through a listener
// that admits anonymous clients, then connects with the same identifier
// through one that does not: the refusal must carry Session Present 0 even
// though a session exists.
func testRefusedConnackSessionPresentZero(t *testing.T, version byte) {
	b := startBroker(t, withSecondListener(false))
	c := newClient(t, b, version, "a", persistent(60))
	c.mustSubscribe(b.topic("t"), 1)
	c.disconnect()

	refused := dialAddr(t, b, b.addrOf(1), version)
	refused.id = c.id
	refused.send(refused.connectPacket(persistent(60)))
	refused.expectConnectRejected(true)
}

// [MQTT-3.1.4-4] [MQTT-3.2.2-1] v3
func TestV3_ConnectAccepted(t *testing.T) {
	t.Parallel()
	testConnectAccepted(t, v3)
}

// [MQTT-3.1.4-5] [MQTT-3.2.2-1] [MQTT-3.2.2-2] v5
func TestV5_ConnectAccepted(t *testing.T) {
	t.Parallel()
	testConnectAccepted(t, v5)
}

// testConnectAccepted checks the CONNACK of a valid clean CONNECT byte by
// byte: return or reason code 0, and an acknowledge-flags byte of 0 (Session
// Present 0, bits 7-1 reserved).
func testConnectAccepted(t *testing.T, version byte) {
	b := startBroker(t)
	c := dial(t, b, version)
	c.id = b.clientID("a")
	c.send(c.connectPacket())
	f, ok := c.nextFrame(ioTimeout)
	if !ok {
		t.Fatalf("no CONNACK: %s", c.closeReason())
	}
	if f.raw[0] != 0x20 || len(f.raw) < 4 {
		t.Fatalf("first packet % x, want a CONNACK", truncate(f.raw))
	}
	if f.raw[2] != 0 {
		t.Errorf("CONNACK acknowledge flags 0x%02X, want 0 (Session Present 0, reserved bits 0)", f.raw[2])
	}
	if f.raw[3] != 0 {
		t.Errorf("CONNACK code 0x%02X, want 0", f.raw[3])
	}
	c.ping()
}

// [MQTT-3.2.0-1] v3
func TestV3_ConnackIsFirstPacket(t *testing.T) {
	t.Parallel()
	testConnackIsFirstPacket(t, v3)
}

// [MQTT-3.2.0-1] v5
func TestV5_ConnackIsFirstPacket(t *testing.T) {
	t.Parallel()
	testConnackIsFirstPacket(t, v5)
}

// testConnackIsFirstPacket checks that CONNACK comes first when the client
// sends more packets right behind its CONNECT, and when the session has
// queued messages waiting.
func testConnackIsFirstPacket(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")

	sub := newClient(t, b, version, "sub", persistent(60))
	sub.mustSubscribe(topic, 1)
	sub.disconnect()
	pub := newClient(t, b, version, "pub")
	for i := 0; i < 3; i++ {
		pub.publish(topic, "queued", 1, false)
	}

	c := dial(t, b, version)
	c.id = sub.id
	var burst []byte
	burst = append(burst, encodeAs(t, c.version, c.connectPacket(persistent(60)))...)
	burst = append(burst, encodeAs(t, c.version, &packet.Subscribe{PacketID: 9, Subscriptions: []packet.Subscription{{Filter: b.topic("u"), QoS: 1}}})...)
	burst = append(burst, 0xC0, 0x00)
	c.write(burst)
	ack := expectPacket[*packet.Connack](c)
	if !ack.SessionPresent {
		t.Errorf("Session Present 0 for a stored session")
	}
	for i := 0; i < 3; i++ {
		await(c, func(p *packet.Publish) bool { return p.Topic == topic })
	}
	await[*packet.Suback](c, nil)
	await[*packet.Pingresp](c, nil)
}

// [MQTT-3.1.4-2] v3
func TestV3_TakeoverClosesOldConnection(t *testing.T) {
	t.Parallel()
	testTakeoverClosesOldConnection(t, v3)
}

// [MQTT-3.1.4-3] v5
func TestV5_TakeoverClosesOldConnection(t *testing.T) {
	t.Parallel()
	testTakeoverClosesOldConnection(t, v5)
}

// testTakeoverClosesOldConnection connects twice with one identifier: the
// first connection is closed (in 5.0 after DISCONNECT 0x8E if any), and the
// second keeps working. In 5.0 the first connection's will is published, as
// for any close without DISCONNECT.
func testTakeoverClosesOldConnection(t *testing.T, version byte) {
	b := startBroker(t)
	willTopic := b.topic("will")
	watcher := newClient(t, b, version, "watch")
	watcher.mustSubscribe(willTopic, 1)

	old := newClient(t, b, version, "x", withWill(&packet.Will{Topic: willTopic, Payload: []byte("old"), QoS: 1}))
	fresh := dial(t, b, version)
	fresh.id = old.id
	fresh.connect()

	d := old.expectClosed()
	if version == v5 && d == nil {
		t.Logf("the old connection closed without DISCONNECT 0x8E")
	}
	if d != nil && d.ReasonCode != packet.ReasonSessionTakenOver {
		t.Errorf("old connection got DISCONNECT 0x%02X, want 0x8E (Session taken over)", byte(d.ReasonCode))
	}
	fresh.ping()
	watcher.expectMessage(willTopic, "old")
	watcher.expectNothing(quietPeriod)
}

// [MQTT-3.1.4-5] v3
func TestV3_RefusedConnectIgnoresLaterPackets(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	c := dial(t, b, v3)
	pub := encodeAs(t, c.version, &packet.Publish{Topic: topic, Payload: []byte("sneaked"), Retain: true})
	c.write(append(rawConnect("MQTT", 4, 0x00, mqttString("")), pub...))
	c.expectConnectRejected(true, 0x02)
	expectNoRetained(t, b, v3, topic)
}

// [MQTT-3.1.4-6] v5
func TestV5_RefusedConnectIgnoresLaterPackets(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	c := dial(t, b, v5)
	c.id = b.clientID("a")
	connect := encodeAs(t, c.version, c.connectPacket(withProps(func(p *packet.Properties) { p.AuthMethod = "x-conformance-unknown" })))
	pub := encodeAs(t, c.version, &packet.Publish{Topic: topic, Payload: []byte("sneaked"), Retain: true})
	c.write(append(connect, pub...))
	c.expectConnectRejected(true)
	expectNoRetained(t, b, v5, topic)
}

// expectNoRetained subscribes to topic with a new client and checks that no
// retained message arrives.
func expectNoRetained(t testing.TB, b *broker, version byte, topic string) {
	t.Helper()
	c := newClient(t, b, version, "check")
	c.mustSubscribe(topic, 1)
	c.expectNothing(quietPeriod)
}

// [MQTT-4.12.0-1] [MQTT-3.2.2-7] v5
func TestV5_UnsupportedAuthMethodRefused(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := dial(t, b, v5)
	c.id = b.clientID("a")
	c.send(c.connectPacket(withProps(func(p *packet.Properties) {
		p.AuthMethod = "x-conformance-unknown"
		p.AuthData = []byte{1, 2, 3}
	})))
	c.expectConnectRejected(true, 0x8C, 0x87)
}

// [MQTT-4.12.0-6] v5
func TestV5_NoAuthMethodNoAuthPackets(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := dial(t, b, v5)
	c.id = b.clientID("a")
	ack := c.connect()
	if ack.Properties.AuthMethod != "" || len(ack.Properties.AuthData) > 0 {
		t.Errorf("CONNACK carries Authentication Method %q / Data % x for a CONNECT without one", ack.Properties.AuthMethod, ack.Properties.AuthData)
	}
	c.ping()
	c.expectNothing(quietPeriod)
}

// [MQTT-3.2.2-8] [MQTT-4.13.2-1] v5
func TestV5_ConnackReasonCodesFromTable(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	id := b.clientID("a")
	badAuth := &packet.Connect{ProtocolName: "MQTT", ProtocolVersion: v5, CleanStart: true, ClientID: id,
		Properties: packet.Properties{AuthMethod: "x-conformance-unknown"}}
	cases := map[string][]byte{
		"accepted":           rawConnect("MQTT", 5, 0x02, mqttString(id)),
		"bad-auth-method":    encodeAs(t, v5, badAuth),
		"wrong-name":         rawConnect("MQTX", 5, 0x02, mqttString(id)),
		"reserved-flag":      rawConnect("MQTT", 5, 0x03, mqttString(id)),
		"will-topic-invalid": rawPacket(0x10, mqttString("MQTT"), []byte{5, 0x06}, u16(0), []byte{0}, mqttString(id), []byte{0}, mqttString("a/#"), mqttString("m")),
	}
	for name, connect := range cases {
		t.Run(name, func(t *testing.T) {
			c := dial(t, b, v5)
			c.write(connect)
			f, ok := c.nextFrame(closeTimeout)
			if !ok {
				return // closed without CONNACK
			}
			if f.raw[0] != 0x20 || len(f.raw) < 4 {
				t.Fatalf("expected CONNACK or a close, got % x", truncate(f.raw))
			}
			code := packet.ReasonCode(f.raw[3])
			if !connackCodes[code] {
				t.Errorf("CONNACK reason code 0x%02X is not in the CONNACK reason code table", byte(code))
			}
			if code >= 0x80 {
				c.expectClosedRaw()
			}
		})
	}
}

// [MQTT-3.1.2-28] v5
func TestV5_NoResponseInformationUnlessRequested(t *testing.T) {
	t.Parallel()
	var opts []brokerOption
	if externalAddr() == "" && hasField("Features.ResponseInformation", "") {
		opts = append(opts, withField("Features.ResponseInformation", "conformance/responses"))
	}
	b := startBroker(t, opts...)
	for name, props := range map[string]func(*packet.Properties){
		"absent": func(*packet.Properties) {},
		"zero":   func(p *packet.Properties) { p.RequestResponseInfo = 0 },
	} {
		c := dial(t, b, v5)
		c.id = b.clientID(name)
		if ack := c.connect(withProps(props)); ack.Properties.ResponseInfo != "" {
			t.Errorf("%s: CONNACK carries Response Information %q without a request", name, ack.Properties.ResponseInfo)
		}
	}
}

// [MQTT-3.2.2-9] [MQTT-3.2.2-10] [MQTT-3.2.2-12] [MQTT-3.2.2-11] v5
func TestV5_MaximumQoSEnforced(t *testing.T) {
	t.Parallel()
	requireNodeField(t, "Features.MaxQoS", byte(1), "Maximum QoS")
	b := startBroker(t, withField("Features.MaxQoS", byte(1)))

	c := dial(t, b, v5)
	c.id = b.clientID("a")
	ack := c.connect()
	if !ack.Properties.HasMaximumQoS || ack.Properties.MaximumQoS != 1 {
		t.Errorf("CONNACK Maximum QoS = %d (present %v), want 1", ack.Properties.MaximumQoS, ack.Properties.HasMaximumQoS)
	}
	// A SUBSCRIBE asking for QoS 2 is still accepted.
	if code := c.subscribe(b.topic("t"), 2); code >= 0x80 {
		t.Errorf("SUBSCRIBE QoS 2 refused with 0x%02X; a broker with Maximum QoS 1 must accept it", byte(code))
	}

	will := dial(t, b, v5)
	will.id = b.clientID("will")
	will.send(will.connectPacket(withWill(&packet.Will{Topic: b.topic("w"), Payload: []byte("x"), QoS: 2})))
	will.expectConnectRejected(true, 0x9B, 0x80, 0x83)

	c.send(&packet.Publish{Topic: b.topic("t"), QoS: 2, PacketID: 1, Payload: []byte("x")})
	c.expectClosedWithCode(packet.ReasonQoSNotSupported)
}

// [MQTT-3.2.2-13] [MQTT-3.2.2-14] v5
func TestV5_RetainNotAvailableEnforced(t *testing.T) {
	t.Parallel()
	requireNodeField(t, "Features.DisableRetain", true, "Retain Available")
	b := startBroker(t, withField("Features.DisableRetain", true))

	c := dial(t, b, v5)
	c.id = b.clientID("a")
	ack := c.connect()
	if !ack.Properties.HasRetainAvailable || ack.Properties.RetainAvailable != 0 {
		t.Errorf("CONNACK Retain Available = %d (present %v), want 0", ack.Properties.RetainAvailable, ack.Properties.HasRetainAvailable)
	}

	will := dial(t, b, v5)
	will.id = b.clientID("will")
	will.send(will.connectPacket(withWill(&packet.Will{Topic: b.topic("w"), Payload: []byte("x"), Retain: true})))
	will.expectConnectRejected(true, 0x9A, 0x80, 0x83)

	c.send(&packet.Publish{Topic: b.topic("t"), Retain: true, Payload: []byte("x")})
	c.expectClosedWithCode(packet.ReasonRetainNotSupported)
}

// [MQTT-3.2.2-15] v5
func TestV5_PacketAboveServerMaximumCloses(t *testing.T) {
	t.Parallel()
	b := startBroker(t, withLimits(func(l *node.Limits) { l.MaxPacketSize = 128 }))
	c := dial(t, b, v5)
	c.id = b.clientID("a")
	ack := c.connect()
	if !ack.Properties.HasMaximumPacketSize || ack.Properties.MaximumPacketSize != 128 {
		t.Fatalf("CONNACK Maximum Packet Size = %d (present %v), want 128", ack.Properties.MaximumPacketSize, ack.Properties.HasMaximumPacketSize)
	}
	c.send(&packet.Publish{Topic: b.topic("t"), Payload: bytes.Repeat([]byte("x"), 200)})
	c.expectClosedWithCode(packet.ReasonPacketTooLarge)
}

// [MQTT-3.12.4-1] v3
func TestV3_PingreqAnswered(t *testing.T) {
	t.Parallel()
	testPingreqAnswered(t, v3)
}

// [MQTT-3.12.4-1] v5
func TestV5_PingreqAnswered(t *testing.T) {
	t.Parallel()
	testPingreqAnswered(t, v5)
}

func testPingreqAnswered(t *testing.T, version byte) {
	b := startBroker(t)
	c := newClient(t, b, version, "a")
	c.write([]byte{0xC0, 0x00, 0xC0, 0x00, 0xC0, 0x00})
	for i := 0; i < 3; i++ {
		expectPacket[*packet.Pingresp](c)
	}
	c.expectNothing(100 * time.Millisecond)
}

// [MQTT-7.1.1-1] v3
func TestV3_ByteStreamFraming(t *testing.T) {
	t.Parallel()
	testByteStreamFraming(t, v3)
}

// [MQTT-4.2.0-1] v5
func TestV5_ByteStreamFraming(t *testing.T) {
	t.Parallel()
	testByteStreamFraming(t, v5)
}

// testByteStreamFraming checks that the broker reads MQTT as a byte stream:
// a CONNECT written one byte at a time, then several packets in one write.
func testByteStreamFraming(t *testing.T, version byte) {
	b := startBroker(t)
	topic := b.topic("t")
	c := dial(t, b, version)
	c.id = b.clientID("a")
	for _, by := range encodeAs(t, c.version, c.connectPacket()) {
		c.write([]byte{by})
		time.Sleep(2 * time.Millisecond)
	}
	expectPacket[*packet.Connack](c)

	var burst []byte
	burst = append(burst, encodeAs(t, c.version, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: topic, QoS: 1}}})...)
	burst = append(burst, encodeAs(t, c.version, &packet.Publish{Topic: topic, QoS: 1, PacketID: 2, Payload: []byte("one")})...)
	burst = append(burst, 0xC0, 0x00)
	c.write(burst)
	await[*packet.Suback](c, nil)
	await(c, func(p *packet.Puback) bool { return p.PacketID == 2 })
	await[*packet.Pingresp](c, nil)
	c.expectMessage(topic, "one")
}
