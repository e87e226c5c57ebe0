package conformance

import (
	"testing"

	"github.com/starling-mqtt/starling/node/packet"
)

// malformedCase is input after which the broker must close the connection
// of a connected client.
type malformedCase struct {
	name   string
	raw    []byte
	v5only bool
}

// expectRejected sends raw on a connected client and expects the connection
// to close. An MQTT 5.0 broker may first send a DISCONNECT with one of codes.
func expectRejected(t testing.TB, b *broker, version byte, raw []byte, codes ...packet.ReasonCode) {
	t.Helper()
	c := newClient(t, b, version, "a")
	c.write(raw)
	c.expectClosedWithCode(codes...)
}

// reservedFlagCases returns packets whose fixed-header flags differ from the
// values the standards reserve.
func reservedFlagCases() []malformedCase {
	return []malformedCase{
		{name: "pubrel-flags-0000", raw: []byte{0x60, 0x02, 0x00, 0x01}},
		{name: "pubrel-flags-0011", raw: []byte{0x63, 0x02, 0x00, 0x01}},
		{name: "subscribe-flags-0000", raw: rawPacket(0x80, u16(1), mqttString("a"), []byte{0})},
		{name: "subscribe-flags-0011", raw: rawPacket(0x83, u16(1), mqttString("a"), []byte{0})},
		{name: "unsubscribe-flags-0000", raw: rawPacket(0xA0, u16(1), mqttString("a"))},
		{name: "puback-flags-0010", raw: []byte{0x42, 0x02, 0x00, 0x01}},
		{name: "pubrec-flags-0001", raw: []byte{0x51, 0x02, 0x00, 0x01}},
		{name: "pubcomp-flags-1000", raw: []byte{0x78, 0x02, 0x00, 0x01}},
		{name: "pingreq-flags-0001", raw: []byte{0xC1, 0x00}},
		{name: "disconnect-flags-0010", raw: []byte{0xE2, 0x00}},
		{name: "auth-flags-0001", raw: []byte{0xF1, 0x00}, v5only: true},
	}
}

// [MQTT-2.2.2-1] [MQTT-2.2.2-2] [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1] [MQTT-3.14.1-1] v3
func TestV3_ReservedFlagsClose(t *testing.T) {
	t.Parallel()
	testReservedFlagsClose(t, v3)
}

// [MQTT-2.1.3-1] [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1] [MQTT-3.14.1-1] [MQTT-3.15.1-1] v5
func TestV5_ReservedFlagsClose(t *testing.T) {
	t.Parallel()
	testReservedFlagsClose(t, v5)
}

func testReservedFlagsClose(t *testing.T, version byte) {
	b := startBroker(t)
	for _, mc := range reservedFlagCases() {
		if mc.v5only && version != v5 {
			continue
		}
		t.Run(mc.name, func(t *testing.T) {
			raw := mc.raw
			if version == v5 && raw[0]>>4 == 8 {
				// SUBSCRIBE in 5.0 has a property length before the payload.
				raw = rawPacket(raw[0], u16(1), []byte{0}, mqttString("a"), []byte{0})
			}
			expectRejected(t, b, version, raw, packet.ReasonMalformedPacket)
		})
	}
}

// [MQTT-3.3.1-4] v3
func TestV3_PublishQoS3Closes(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	expectRejected(t, b, v3, rawPacket(0x36, mqttString(b.topic("t")), u16(1), []byte("x")))
}

// [MQTT-3.3.1-4] v5
func TestV5_PublishQoS3Closes(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	expectRejected(t, b, v5, rawPacket(0x36, mqttString(b.topic("t")), u16(1), []byte{0}, []byte("x")), packet.ReasonMalformedPacket)
}

// [MQTT-2.3.1-1] v3
func TestV3_PacketIDZeroCloses(t *testing.T) {
	t.Parallel()
	testPacketIDZeroCloses(t, v3)
}

// [MQTT-2.2.1-3] v5
func TestV5_PacketIDZeroCloses(t *testing.T) {
	t.Parallel()
	testPacketIDZeroCloses(t, v5)
}

// testPacketIDZeroCloses sends SUBSCRIBE, UNSUBSCRIBE and QoS 1 and QoS 2
// PUBLISH with packet identifier 0.
func testPacketIDZeroCloses(t *testing.T, version byte) {
	b := startBroker(t)
	props := []byte{}
	if version == v5 {
		props = []byte{0}
	}
	cases := map[string][]byte{
		"subscribe":    rawPacket(0x82, u16(0), props, mqttString(b.topic("t")), []byte{1}),
		"unsubscribe":  rawPacket(0xA2, u16(0), props, mqttString(b.topic("t"))),
		"publish-qos1": rawPacket(0x32, mqttString(b.topic("t")), u16(0), props, []byte("x")),
		"publish-qos2": rawPacket(0x34, mqttString(b.topic("t")), u16(0), props, []byte("x")),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			expectRejected(t, b, version, raw, packet.ReasonProtocolError, packet.ReasonMalformedPacket)
		})
	}
}

// invalidStrings are encodings that section 1.5.3 (3.1.1) and 1.5.4 (5.0)
// forbid inside an MQTT string.
var invalidStrings = map[string]string{
	"overlong-encoding": "a\xC0\xAFb",
	"surrogate":         "a\xED\xA0\x80b",
	"truncated":         "a\xE6\x97",
	"null-character":    "a\x00b",
}

// [MQTT-1.5.3-1] [MQTT-1.5.3-2] [MQTT-4.7.3-2] [MQTT-3.1.3-4] [MQTT-3.1.3-10] [MQTT-3.1.3-11] v3
// [MQTT-3.8.3-1] [MQTT-3.10.3-1] v3
func TestV3_InvalidUTF8Closes(t *testing.T) {
	t.Parallel()
	testInvalidUTF8Closes(t, v3)
}

// [MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-4.7.3-2] [MQTT-3.1.3-4] [MQTT-3.1.3-11] [MQTT-3.1.3-12] v5
// [MQTT-3.8.3-1] [MQTT-3.10.3-1] v5
func TestV5_InvalidUTF8Closes(t *testing.T) {
	t.Parallel()
	testInvalidUTF8Closes(t, v5)
}

// testInvalidUTF8Closes puts each invalid string in a PUBLISH topic, a
// SUBSCRIBE filter and an UNSUBSCRIBE filter of a connected client. It also
// puts it in the client identifier, will topic and user name of a CONNECT.
// Each time the broker must close the connection and deliver nothing.
func testInvalidUTF8Closes(t *testing.T, version byte) {
	b := startBroker(t)
	watcher := newClient(t, b, version, "watch")
	watcher.mustSubscribe(b.topic("#"), 1)
	for name, bad := range invalidStrings {
		t.Run(name, func(t *testing.T) {
			after := []packet.Packet{
				&packet.Publish{Topic: b.topic(bad), QoS: 1, PacketID: 1, Payload: []byte("x")},
				&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: b.topic(bad), QoS: 1}}},
				&packet.Unsubscribe{PacketID: 1, Filters: []string{b.topic(bad)}},
			}
			for _, p := range after {
				expectRejected(t, b, version, encodeAs(t, version, p), packet.ReasonMalformedPacket, packet.ReasonTopicNameInvalid, packet.ReasonProtocolError)
			}

			for _, cp := range []*packet.Connect{
				{ProtocolName: "MQTT", ProtocolVersion: version, CleanStart: true, ClientID: "id" + bad},
				{ProtocolName: "MQTT", ProtocolVersion: version, CleanStart: true, ClientID: b.clientID("w"),
					Will: &packet.Will{Topic: b.topic(bad), Payload: []byte("x")}},
				{ProtocolName: "MQTT", ProtocolVersion: version, CleanStart: true, ClientID: b.clientID("u"),
					UsernameFlag: true, Username: "user" + bad},
			} {
				c := dial(t, b, version)
				c.write(encodeAs(t, version, cp))
				c.expectConnectRejected(version == v5)
			}
		})
	}
	watcher.expectNothing(quietPeriod)
}

// [MQTT-1.5.7-1] [MQTT-3.3.2-13] [MQTT-3.3.2-19] v5
func TestV5_InvalidUTF8InPropertiesCloses(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	bad := invalidStrings["surrogate"]
	cases := map[string]packet.Properties{
		"user-property-key":   {UserProperties: []packet.UserProperty{{Key: bad, Value: "v"}}},
		"user-property-value": {UserProperties: []packet.UserProperty{{Key: "k", Value: bad}}},
		"response-topic":      {ResponseTopic: b.topic(bad)},
		"content-type":        {ContentType: bad},
		"null-in-user-key":    {UserProperties: []packet.UserProperty{{Key: "a\x00b", Value: "v"}}},
	}
	for name, props := range cases {
		t.Run(name, func(t *testing.T) {
			raw := encodeAs(t, v5, &packet.Publish{Topic: topic, QoS: 1, PacketID: 1, Payload: []byte("x"), Properties: props})
			expectRejected(t, b, v5, raw, packet.ReasonMalformedPacket, packet.ReasonProtocolError)
		})
	}
}

// [MQTT-3.3.2-14] v5
func TestV5_ResponseTopicWildcardCloses(t *testing.T) {
	t.Parallel()
	var tb testing.TB = t
	b := startBroker(t)
	watcher := newClient(tb, b, v5, "watch")
	watcher.mustSubscribe(b.topic("t"), 1)
	for _, rt := range []string{b.topic("r/#"), b.topic("r/+")} {
		raw := encodeAs(t, v5, &packet.Publish{Topic: b.topic("t"), QoS: 1, PacketID: 1, Payload: []byte("x"),
			Properties: packet.Properties{ResponseTopic: rt}})
		expectRejected(tb, b, v5, raw, packet.ReasonProtocolError, packet.ReasonTopicNameInvalid, packet.ReasonMalformedPacket)
	}
	watcher.expectNothing(quietPeriod)
}

// [MQTT-3.8.3-3] [MQTT-3.10.3-2] v3
func TestV3_EmptySubscribePayloadCloses(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	t.Run("subscribe", func(t *testing.T) { expectRejected(t, b, v3, rawPacket(0x82, u16(1))) })
	t.Run("unsubscribe", func(t *testing.T) { expectRejected(t, b, v3, rawPacket(0xA2, u16(1))) })
}

// [MQTT-3.8.3-2] [MQTT-3.10.3-2] v5
func TestV5_EmptySubscribePayloadCloses(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	t.Run("subscribe", func(t *testing.T) {
		expectRejected(t, b, v5, rawPacket(0x82, u16(1), []byte{0}), packet.ReasonProtocolError, packet.ReasonMalformedPacket)
	})
	t.Run("unsubscribe", func(t *testing.T) {
		expectRejected(t, b, v5, rawPacket(0xA2, u16(1), []byte{0}), packet.ReasonProtocolError, packet.ReasonMalformedPacket)
	})
}

// [MQTT-3.8.3-4] v3
func TestV3_SubscribeReservedBitsClose(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	for name, opts := range map[string]byte{"qos-3": 0x03, "bit-2": 0x04, "bits-6-7": 0xC0} {
		t.Run(name, func(t *testing.T) {
			expectRejected(t, b, v3, rawPacket(0x82, u16(1), mqttString(b.topic("t")), []byte{opts}))
		})
	}
}

// [MQTT-3.8.3-5] v5
func TestV5_SubscribeReservedBitsClose(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	cases := map[string]byte{"qos-3": 0x03, "bit-6": 0x40, "bit-7": 0x80, "retain-handling-3": 0x30}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			expectRejected(t, b, v5, rawPacket(0x82, u16(1), []byte{0}, mqttString(b.topic("t")), []byte{opts}),
				packet.ReasonMalformedPacket, packet.ReasonProtocolError)
		})
	}
}

// protocolErrorCases returns input that breaks the framing or the direction
// of packets.
func protocolErrorCases(version byte) map[string][]byte {
	cases := map[string][]byte{
		"remaining-length-5-bytes": {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F},
		"packet-type-0":            {0x00, 0x00},
		"connack-from-client":      {0x20, 0x02, 0x00, 0x00},
		"suback-from-client":       {0x90, 0x03, 0x00, 0x01, 0x00},
		"pingresp-from-client":     {0xD0, 0x00},
		"publish-empty-topic":      rawPacket(0x30, mqttString(""), []byte("x")),
	}
	if version == v5 {
		cases["suback-from-client"] = []byte{0x90, 0x04, 0x00, 0x01, 0x00, 0x00}
		cases["publish-empty-topic"] = rawPacket(0x30, mqttString(""), []byte{0}, []byte("x"))
		cases["auth-without-method"] = []byte{0xF0, 0x00}
	}
	return cases
}

// [MQTT-4.8.0-1] [MQTT-4.7.3-1] v3
func TestV3_ProtocolErrorsClose(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	for name, raw := range protocolErrorCases(v3) {
		t.Run(name, func(t *testing.T) { expectRejected(t, b, v3, raw) })
	}
}

// [MQTT-4.13.1-1] [MQTT-4.13.2-1] [MQTT-4.7.3-1] [MQTT-4.12.0-7] v5
func TestV5_ProtocolErrorsClose(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	for name, raw := range protocolErrorCases(v5) {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, b, v5, "a")
			c.write(raw)
			if d := c.expectClosed(); d != nil && d.ReasonCode < 0x80 {
				t.Errorf("DISCONNECT reason 0x%02X for a protocol error, want 0x80 or above", byte(d.ReasonCode))
			}
		})
	}
}

// [MQTT-3.3.4-6] v5
func TestV5_PublishWithSubscriptionIDCloses(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	raw := encodeAs(t, v5, &packet.Publish{Topic: b.topic("t"), QoS: 1, PacketID: 1, Payload: []byte("x"),
		Properties: packet.Properties{SubscriptionIDs: []uint32{5}}})
	expectRejected(t, b, v5, raw, packet.ReasonProtocolError, packet.ReasonMalformedPacket)
}

// [MQTT-3.14.0-1] [MQTT-3.14.2-1] [MQTT-3.14.4-1] [MQTT-3.14.4-2] v5
func TestV5_ServerDisconnectRules(t *testing.T) {
	t.Parallel()
	b := startBroker(t)

	t.Run("no-disconnect-before-connack", func(t *testing.T) {
		c := dial(t, b, v5)
		c.write(rawConnect("MQTT", 5, 0x03, mqttString(b.clientID("a"))))
		c.expectConnectRejected(true)
	})
	t.Run("protocol-error", func(t *testing.T) {
		c := newClient(t, b, v5, "a")
		c.write([]byte{0x20, 0x03, 0x00, 0x00, 0x00})
		d := c.expectClosed()
		if d == nil {
			t.Logf("the broker closed without DISCONNECT")
		}
	})
	t.Run("session-taken-over", func(t *testing.T) {
		c := newClient(t, b, v5, "a")
		again := dial(t, b, v5)
		again.id = c.id
		again.connect()
		c.expectClosedWithCode(packet.ReasonSessionTakenOver)
	})
}
