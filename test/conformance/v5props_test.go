package conformance

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node"
	"github.com/starling-mqtt/starling/node/packet"
)

// [MQTT-3.3.2-7] [MQTT-3.3.2-8] [MQTT-3.3.2-12] v5
func TestV5_TopicAliasInbound(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, v5, "sub")
	sub.mustSubscribe(topic, 1)

	c := dial(t, b, v5)
	c.id = b.clientID("pub")
	ack := c.connect()
	max := ack.Properties.TopicAliasMaximum
	if max == 0 {
		t.Skip("the broker accepts no topic aliases (Topic Alias Maximum 0)")
	}
	for _, alias := range []uint16{1, max} {
		c.publishPacket(&packet.Publish{Topic: topic, QoS: 1, Payload: []byte("set"), Properties: packet.Properties{TopicAlias: alias, HasTopicAlias: true}})
		c.publishPacket(&packet.Publish{QoS: 1, Payload: []byte("use"), Properties: packet.Properties{TopicAlias: alias, HasTopicAlias: true}})
		sub.expectMessage(topic, "set")
		sub.expectMessage(topic, "use")
	}
	c.disconnect()

	t.Run("not-kept-across-connections", func(t *testing.T) {
		again, _ := c.reconnect()
		again.send(&packet.Publish{QoS: 1, PacketID: 1, Payload: []byte("stale"), Properties: packet.Properties{TopicAlias: 1, HasTopicAlias: true}})
		again.expectClosedWithCode(packet.ReasonProtocolError, packet.ReasonTopicAliasInvalid)
	})
	t.Run("alias-zero", func(t *testing.T) {
		z := newClient(t, b, v5, "zero")
		z.send(&packet.Publish{Topic: topic, QoS: 1, PacketID: 1, Payload: []byte("zero"), Properties: packet.Properties{TopicAlias: 0, HasTopicAlias: true}})
		z.expectClosedWithCode(packet.ReasonTopicAliasInvalid, packet.ReasonProtocolError, packet.ReasonMalformedPacket)
	})
	sub.expectNothing(quietPeriod)
}

// [MQTT-3.3.2-9] [MQTT-3.2.2-17] v5
func TestV5_TopicAliasAboveMaximumCloses(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := dial(t, b, v5)
	c.id = b.clientID("a")
	ack := c.connect()
	alias := ack.Properties.TopicAliasMaximum + 1
	c.send(&packet.Publish{Topic: b.topic("t"), QoS: 1, PacketID: 1, Payload: []byte("x"), Properties: packet.Properties{TopicAlias: alias, HasTopicAlias: true}})
	c.expectClosedWithCode(packet.ReasonTopicAliasInvalid)
}

// [MQTT-3.1.2-26] [MQTT-3.1.2-27] [MQTT-3.3.2-11] v5
func TestV5_TopicAliasOutbound(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	for _, max := range []uint16{0, 2} {
		t.Run(fmt.Sprintf("client-maximum-%d", max), func(t *testing.T) {
			sub := dial(t, b, v5)
			sub.id = b.clientID("sub")
			sub.connect(withProps(func(p *packet.Properties) { p.TopicAliasMaximum = max }))
			sub.mustSubscribe(b.topic(fmt.Sprint(max, "/#")), 0)
			pub := newClient(t, b, v5, "pub")
			var topics []string
			for round := 0; round < 3; round++ {
				for i := 0; i < 4; i++ {
					topic := b.topic(fmt.Sprint(max, "/", i))
					topics = append(topics, topic)
					pub.publish(topic, "x", 0, false)
				}
			}
			aliases := map[uint16]string{}
			for i, want := range topics {
				p := sub.expectPublish()
				if !p.Properties.HasTopicAlias {
					if p.Topic != want {
						t.Fatalf("message %d on %q, want %q", i, p.Topic, want)
					}
					continue
				}
				alias := p.Properties.TopicAlias
				switch {
				case max == 0:
					t.Fatalf("Topic Alias %d sent to a client that allowed none", alias)
				case alias == 0 || alias > max:
					t.Fatalf("Topic Alias %d outside the client's maximum %d", alias, max)
				}
				if p.Topic != "" {
					aliases[alias] = p.Topic
				}
				if got := aliases[alias]; got != want {
					t.Fatalf("message %d resolves to %q through alias %d, want %q", i, got, alias, want)
				}
			}
		})
	}
}

// [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] v5
func TestV5_PublishPropertiesForwarded(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, v5, "sub")
	sub.mustSubscribe(topic, 1)
	props := packet.Properties{
		PayloadFormat:   1,
		ContentType:     "text/plain; charset=utf-8",
		ResponseTopic:   b.topic("reply/\uFEFFx"),
		CorrelationData: []byte{0, 1, 2, 0xFF},
		UserProperties: []packet.UserProperty{
			{Key: "k", Value: "1"}, {Key: "a", Value: "\uFEFF"}, {Key: "k", Value: "2"}, {Key: "k", Value: "1"},
		},
	}
	pub := newClient(t, b, v5, "pub")
	pub.publishPacket(&packet.Publish{Topic: topic, QoS: 1, Payload: []byte("hello"), Properties: props})
	got := sub.expectMessage(topic, "hello").Properties
	if got.PayloadFormat != props.PayloadFormat {
		t.Errorf("Payload Format Indicator %d, want %d", got.PayloadFormat, props.PayloadFormat)
	}
	if got.ContentType != props.ContentType {
		t.Errorf("Content Type %q, want %q", got.ContentType, props.ContentType)
	}
	if got.ResponseTopic != props.ResponseTopic {
		t.Errorf("Response Topic %q, want %q", got.ResponseTopic, props.ResponseTopic)
	}
	if !bytes.Equal(got.CorrelationData, props.CorrelationData) {
		t.Errorf("Correlation Data % x, want % x", got.CorrelationData, props.CorrelationData)
	}
	if !slices.Equal(got.UserProperties, props.UserProperties) {
		t.Errorf("User Properties %v, want %v in this order", got.UserProperties, props.UserProperties)
	}
}

// [MQTT-3.3.2-5] [MQTT-3.3.2-6] v5
func TestV5_MessageExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, v5, "sub", persistent(60))
	sub.mustSubscribe(topic, 1)
	sub.disconnect()

	pub := newClient(t, b, v5, "pub")
	for _, m := range []struct {
		payload string
		expiry  uint32
	}{{"short", 1}, {"long", 30}} {
		pub.publishPacket(&packet.Publish{Topic: topic, QoS: 1, Payload: []byte(m.payload),
			Properties: packet.Properties{MessageExpiry: m.expiry, HasMessageExpiry: true}})
	}
	time.Sleep(2500 * time.Millisecond)

	again, _ := sub.reconnect(persistent(60))
	p := again.expectMessage(topic, "long")
	switch {
	case !p.Properties.HasMessageExpiry:
		t.Errorf("forwarded message has no Message Expiry Interval")
	case p.Properties.MessageExpiry >= 30 || p.Properties.MessageExpiry < 25:
		t.Errorf("forwarded Message Expiry Interval %d after 2.5 s of waiting, want 27 or 28", p.Properties.MessageExpiry)
	}
	again.expectNothing(quietPeriod)
}

// [MQTT-3.3.4-3] [MQTT-3.3.4-4] [MQTT-3.3.4-5] v5
func TestV5_SubscriptionIdentifiers(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	sub := newClient(t, b, v5, "sub")
	sub.subscribeWith(packet.Properties{SubscriptionIDs: []uint32{2}}, packet.Subscription{Filter: b.topic("si/a"), QoS: 1})
	sub.subscribeWith(packet.Properties{SubscriptionIDs: []uint32{300}}, packet.Subscription{Filter: b.topic("si/#"), QoS: 1})
	sub.subscribeWith(packet.Properties{}, packet.Subscription{Filter: b.topic("si/+"), QoS: 1})
	pub := newClient(t, b, v5, "pub")
	pub.publish(b.topic("si/a"), "x", 1, false)

	var copies [][]uint32
	copies = append(copies, sub.receive().Properties.SubscriptionIDs)
	for {
		f, ok := sub.nextFrame(quietPeriod)
		if !ok {
			break
		}
		p, isPub := f.p.(*packet.Publish)
		if !isPub {
			t.Fatalf("expected PUBLISH, got %s", describe(f.p))
		}
		sub.ack(p)
		copies = append(copies, p.Properties.SubscriptionIDs)
	}
	var all []uint32
	for _, ids := range copies {
		all = append(all, ids...)
	}
	slices.Sort(all)
	if !slices.Equal(all, []uint32{2, 300}) {
		t.Errorf("copies carry Subscription Identifiers %v, want 2 and 300 once each", copies)
	}
	if len(copies) > 1 {
		for _, ids := range copies {
			if len(ids) > 1 {
				t.Errorf("with one copy per subscription, a copy carries %v", ids)
			}
		}
	}
	t.Logf("%d copies with identifiers %v", len(copies), copies)
}

// [MQTT-3.3.4-9] [MQTT-3.3.4-10] [MQTT-4.9.0-1] [MQTT-4.9.0-2] [MQTT-4.9.0-3] v5
func TestV5_ReceiveMaximumRespected(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	sub := dial(t, b, v5)
	sub.id = b.clientID("sub")
	sub.connect(withProps(func(p *packet.Properties) { p.ReceiveMaximum, p.HasReceiveMaximum = 2, true }))
	sub.mustSubscribe(topic, 2)
	pub := newClient(t, b, v5, "pub")
	for i := 0; i < 5; i++ {
		pub.publish(topic, fmt.Sprint(i), byte(1+i%2), false)
	}

	first := []*packet.Publish{sub.expectPublish(), sub.expectPublish()}
	sub.expectNothing(quietPeriod)
	// Other packets still flow while the quota is used up.
	sub.ping()
	sub.mustSubscribe(b.topic("other"), 1)
	sub.expectNothing(quietPeriod)

	sub.ack(first[0])
	third := sub.expectPublish()
	sub.expectNothing(quietPeriod)
	sub.ack(first[1])
	sub.ack(third)
	for i := 3; i < 5; i++ {
		if p := sub.receive(); string(p.Payload) != fmt.Sprint(i) {
			t.Errorf("message %d is %q", i, p.Payload)
		}
	}
}

// [MQTT-3.3.4-7] v5
func TestV5_ReceiveMaximumExceededCloses(t *testing.T) {
	t.Parallel()
	b := startBroker(t, withLimits(func(l *node.Limits) { l.ReceiveMaximum = 2 }))
	c := dial(t, b, v5)
	c.id = b.clientID("a")
	ack := c.connect()
	if !ack.Properties.HasReceiveMaximum || ack.Properties.ReceiveMaximum != 2 {
		t.Fatalf("CONNACK Receive Maximum %d (present %v), want 2", ack.Properties.ReceiveMaximum, ack.Properties.HasReceiveMaximum)
	}
	for id := uint16(1); id <= 3; id++ {
		c.send(&packet.Publish{Topic: b.topic("t"), QoS: 2, PacketID: id, Payload: []byte("x")})
	}
	for {
		f, ok := c.nextFrame(closeTimeout)
		if !ok {
			t.Fatalf("the broker did not close the connection after 3 unreleased QoS 2 messages")
		}
		if _, isRec := f.p.(*packet.Pubrec); isRec {
			if rec := f.p.(*packet.Pubrec); rec.PacketID == 3 {
				t.Fatalf("PUBREC 0x%02X for the third message, want DISCONNECT 0x93", byte(rec.ReasonCode))
			}
			continue
		}
		d, isDisc := f.p.(*packet.Disconnect)
		if !isDisc {
			t.Fatalf("expected DISCONNECT 0x93, got %s", describe(f.p))
		}
		if d.ReasonCode != packet.ReasonReceiveMaximumExceeded {
			t.Errorf("DISCONNECT 0x%02X, want 0x93 (Receive Maximum exceeded)", byte(d.ReasonCode))
		}
		c.expectClosedRaw()
		return
	}
}

// [MQTT-3.1.2-24] [MQTT-3.1.2-25] v5
func TestV5_MaximumPacketSizeOutbound(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	const limit = 96
	sub := dial(t, b, v5)
	sub.id = b.clientID("sub")
	sub.connect(persistent(60), withProps(func(p *packet.Properties) { p.MaximumPacketSize, p.HasMaximumPacketSize = limit, true }))
	sub.mustSubscribe(topic, 1)
	pub := newClient(t, b, v5, "pub")
	pub.publish(topic, "small", 1, false)
	pub.publish(topic, strings.Repeat("x", limit), 1, false)
	pub.publish(topic, strings.Repeat("y", limit), 0, false)
	pub.publish(topic, "after", 1, false)

	for _, want := range []string{"small", "after"} {
		f, ok := sub.nextFrame(ioTimeout)
		if !ok || f.err != nil {
			t.Fatalf("expected %q: %s %v", want, sub.closeReason(), f.err)
		}
		if len(f.raw) > limit {
			t.Errorf("the broker sent a %d-byte packet to a client with Maximum Packet Size %d", len(f.raw), limit)
		}
		p, isPub := f.p.(*packet.Publish)
		if !isPub || string(p.Payload) != want {
			t.Fatalf("expected %q, got %s", want, describe(f.p))
		}
		sub.ack(p)
	}
	sub.expectNothing(quietPeriod)

	// The dropped QoS 1 message counts as delivered: no resend.
	sub.drop()
	again, _ := sub.reconnect(persistent(60), withProps(func(p *packet.Properties) { p.MaximumPacketSize, p.HasMaximumPacketSize = limit, true }))
	again.expectNothing(quietPeriod)
}

// [MQTT-3.1.2-25] v5
func TestV5_MaximumPacketSizeExactFit(t *testing.T) {
	t.Parallel()
	var tb testing.TB = t
	b := startBroker(tb)

	// Only a packet larger than the client's maximum may be discarded. The
	// sizes are of the whole packet, whose remaining length takes 1 byte.
	const limit = 99
	topic := b.topic("fit")
	sub := dial(tb, b, v5)
	sub.id = b.clientID("sub")
	sub.connect(withMaximumPacketSize(limit))
	sub.mustSubscribe(topic, 2)
	pub := newClient(tb, b, v5, "pub")
	for _, size := range []int{limit - 3, limit - 2, limit} {
		payload := strings.Repeat("f", size-publishSize(topic, 2, 0))
		pub.publish(topic, payload, 2, false)
		f, ok := sub.nextFrame(ioTimeout)
		if !ok {
			tb.Fatalf("no %d-byte PUBLISH within %v for a client with Maximum Packet Size %d (connection closed: %v)", size, ioTimeout, limit, sub.closed)
		}
		if len(f.raw) != size || f.err != nil {
			tb.Fatalf("expected a %d-byte PUBLISH, got % x", size, truncate(f.raw))
		}
		sub.ack(f.p.(*packet.Publish))
	}
}

// problemCase provokes the broker into sending one packet that may carry a
// Reason String or User Properties.
type problemCase struct {
	name    string
	needs   []brokerOption // node settings the case needs
	provoke func(t *testing.T, b *broker, c *client)
}

// problemCases returns a way to provoke each packet that can carry a Reason
// String: SUBACK and UNSUBACK failures, PUBREL and PUBCOMP for unknown packet
// identifiers, and PUBACK and PUBREC refusals of a full retained store. The
// last case provokes a DISCONNECT after a protocol error.
func problemCases() []problemCase {
	fullRetained := withLimits(func(l *node.Limits) { l.MaxRetainedMessages = 1 })
	return []problemCase{
		{name: "suback", provoke: func(t *testing.T, b *broker, c *client) {
			c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: b.topic("a/#/b")}}})
		}},
		{name: "unsuback", provoke: func(t *testing.T, b *broker, c *client) {
			c.send(&packet.Unsubscribe{PacketID: 1, Filters: []string{b.topic("never")}})
		}},
		{name: "pubcomp", provoke: func(t *testing.T, b *broker, c *client) {
			c.send(&packet.Pubrel{PacketID: 77})
		}},
		{name: "pubrel", provoke: func(t *testing.T, b *broker, c *client) {
			c.send(&packet.Pubrec{PacketID: 77})
		}},
		{name: "puback", needs: []brokerOption{fullRetained}, provoke: func(t *testing.T, b *broker, c *client) {
			c.send(&packet.Publish{Topic: b.topic("r1"), QoS: 1, PacketID: 1, Retain: true, Payload: []byte("x")})
			c.send(&packet.Publish{Topic: b.topic("r2"), QoS: 1, PacketID: 2, Retain: true, Payload: []byte("x")})
		}},
		{name: "pubrec", needs: []brokerOption{fullRetained}, provoke: func(t *testing.T, b *broker, c *client) {
			c.send(&packet.Publish{Topic: b.topic("r1"), QoS: 2, PacketID: 1, Retain: true, Payload: []byte("x")})
			c.send(&packet.Publish{Topic: b.topic("r2"), QoS: 2, PacketID: 2, Retain: true, Payload: []byte("x")})
		}},
		{name: "disconnect", provoke: func(t *testing.T, b *broker, c *client) {
			c.send(&packet.Publish{Topic: b.topic("a/#"), QoS: 1, PacketID: 1, Payload: []byte("x")})
		}},
	}
}

// collectFrames reads frames until the connection closes or nothing comes
// for quietPeriod; it waits up to ioTimeout for the first.
func collectFrames(c *client) []frame {
	var out []frame
	for {
		wait := quietPeriod
		if len(out) == 0 {
			wait = ioTimeout
		}
		f, ok := c.nextFrame(wait)
		if !ok {
			return out
		}
		out = append(out, f)
	}
}

// smallMaximum is a Maximum Packet Size that a successful CONNACK and the
// minimal form of every acknowledgement fit, but that a Reason String of a
// few words exceeds.
const smallMaximum = 32

// withSmallMaximum sets smallMaximum as the client's Maximum Packet Size.
var withSmallMaximum = withProps(func(p *packet.Properties) {
	p.MaximumPacketSize, p.HasMaximumPacketSize = smallMaximum, true
})

// expectFramesFit checks that the broker sent at least one packet and none
// larger than smallMaximum.
func expectFramesFit(t testing.TB, frames []frame) {
	t.Helper()
	if len(frames) == 0 {
		t.Fatalf("the broker sent nothing; the case provoked no packet")
	}
	for _, f := range frames {
		if len(f.raw) > smallMaximum {
			t.Errorf("%d-byte packet % x to a client with Maximum Packet Size %d", len(f.raw), truncate(f.raw), smallMaximum)
		}
	}
}

// [MQTT-3.2.2-19] [MQTT-3.2.2-20] v5
func TestV5_ConnackFitsClientMaximum(t *testing.T) {
	t.Parallel()
	var tb testing.TB = t
	b := startBroker(t)
	c := dial(tb, b, v5)
	c.id = b.clientID("a")
	c.send(c.connectPacket(withSmallMaximum, withProps(func(p *packet.Properties) { p.AuthMethod = "x-conformance-unknown" })))
	expectFramesFit(tb, collectFrames(c))
}

// [MQTT-3.1.2-24] v5
func TestV5_ConnackFitsTinyMaximum(t *testing.T) {
	t.Parallel()
	var tb testing.TB = t
	b := startBroker(t)
	c := dial(tb, b, v5)
	c.id = b.clientID("a")
	// A CONNACK without properties takes 5 bytes; with the properties a
	// broker announces it rarely fits 8. The broker must then close
	// without a CONNACK rather than send one that is too large.
	c.send(c.connectPacket(withProps(func(p *packet.Properties) { p.MaximumPacketSize, p.HasMaximumPacketSize = 8, true })))
	for _, f := range collectFrames(c) {
		if len(f.raw) > 8 {
			tb.Errorf("%d-byte packet % x to a client with Maximum Packet Size 8", len(f.raw), truncate(f.raw))
		}
	}
}

// [MQTT-3.14.2-3] [MQTT-3.14.2-4] v5
func TestV5_DisconnectFitsClientMaximum(t *testing.T) {
	t.Parallel()
	var tb testing.TB = t
	b := startBroker(t)
	c := dial(tb, b, v5)
	c.id = b.clientID("a")
	c.connect(withSmallMaximum)
	c.send(&packet.Publish{Topic: b.topic("a/#"), QoS: 1, PacketID: 1, Payload: []byte("x")})
	expectFramesFit(tb, collectFrames(c))
}

// [MQTT-3.4.2-2] [MQTT-3.4.2-3] [MQTT-3.5.2-2] [MQTT-3.5.2-3] [MQTT-3.6.2-2] [MQTT-3.6.2-3] v5
// [MQTT-3.7.2-2] [MQTT-3.7.2-3] [MQTT-3.9.2-1] [MQTT-3.9.2-2] [MQTT-3.11.2-1] [MQTT-3.11.2-2] v5
func TestV5_AcksFitClientMaximum(t *testing.T) {
	t.Parallel()
	for _, pc := range problemCases() {
		if pc.name == "disconnect" {
			continue
		}
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, pc.needs...)
			c := dial(t, b, v5)
			c.id = b.clientID("a")
			c.connect(withSmallMaximum)
			pc.provoke(t, b, c)
			expectFramesFit(t, collectFrames(c))
		})
	}
}

// [MQTT-3.1.2-29] v5
func TestV5_RequestProblemInformationZero(t *testing.T) {
	t.Parallel()
	noProblems := withProps(func(p *packet.Properties) { p.RequestProblemInfo, p.HasRequestProblemInfo = 0, true })
	for _, pc := range problemCases() {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, pc.needs...)
			c := dial(t, b, v5)
			c.id = b.clientID("a")
			c.connect(noProblems)
			pc.provoke(t, b, c)
			for _, f := range collectFrames(c) {
				if f.err != nil {
					t.Fatalf("malformed packet % x: %v", truncate(f.raw), f.err)
				}
				switch f.p.(type) {
				case *packet.Publish, *packet.Connack, *packet.Disconnect:
					continue
				}
				if props := packetProperties(f.p); props != nil && (props.ReasonString != "" || len(props.UserProperties) > 0) {
					t.Errorf("%s carries Reason String %q / User Properties %v although the client set Request Problem Information 0",
						f.p.Type(), props.ReasonString, props.UserProperties)
				}
			}
		})
	}
}

// packetProperties returns the properties of p, or nil for a packet type
// without any.
func packetProperties(p packet.Packet) *packet.Properties {
	switch p := p.(type) {
	case *packet.Puback:
		return &p.Properties
	case *packet.Pubrec:
		return &p.Properties
	case *packet.Pubrel:
		return &p.Properties
	case *packet.Pubcomp:
		return &p.Properties
	case *packet.Suback:
		return &p.Properties
	case *packet.Unsuback:
		return &p.Properties
	case *packet.Auth:
		return &p.Properties
	}
	return nil
}

// [MQTT-3.4.2-1] [MQTT-3.5.2-1] [MQTT-3.6.2-1] [MQTT-3.7.2-1] v5
func TestV5_AckReasonCodesFromTables(t *testing.T) {
	t.Parallel()
	tables := map[packet.Type]map[packet.ReasonCode]bool{
		packet.TypePuback: pubackCodes, packet.TypePubrec: pubrecCodes,
		packet.TypePubrel: pubrelCodes, packet.TypePubcomp: pubcompCodes,
	}
	check := func(t *testing.T, frames []frame) {
		t.Helper()
		for _, f := range frames {
			table, ok := tables[packet.Type(f.raw[0]>>4)]
			if !ok || len(f.raw) < 5 {
				continue // not an acknowledgement, or the short form meaning 0x00
			}
			if code := packet.ReasonCode(f.raw[4]); !table[code] {
				t.Errorf("%v reason code 0x%02X is not in its table (% x)", packet.Type(f.raw[0]>>4), byte(code), f.raw)
			}
		}
	}
	for _, pc := range problemCases() {
		if pc.name == "suback" || pc.name == "unsuback" || pc.name == "disconnect" {
			continue
		}
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, pc.needs...)
			c := newClient(t, b, v5, "a")
			pc.provoke(t, b, c)
			check(t, collectFrames(c))
		})
	}
	t.Run("success-flows", func(t *testing.T) {
		b := startBroker(t)
		c := newClient(t, b, v5, "a")
		c.mustSubscribe(b.topic("t"), 2)
		c.send(&packet.Publish{Topic: b.topic("t"), QoS: 1, PacketID: 1, Payload: []byte("x")})
		c.send(&packet.Publish{Topic: b.topic("t"), QoS: 2, PacketID: 2, Payload: []byte("x")})
		c.send(&packet.Pubrel{PacketID: 2})
		c.send(&packet.Publish{Topic: b.topic("nobody"), QoS: 1, PacketID: 3, Payload: []byte("x")})
		frames := collectFrames(c)
		for _, f := range frames {
			if p, isPub := f.p.(*packet.Publish); isPub && p.QoS == 2 {
				c.send(&packet.Pubrec{PacketID: p.PacketID})
			}
		}
		check(t, append(frames, collectFrames(c)...))
	})
}

// [MQTT-4.3.3-9] v5
func TestV5_RefusedQoS2IDIsNew(t *testing.T) {
	t.Parallel()
	b := startBroker(t, withLimits(func(l *node.Limits) { l.MaxRetainedMessages = 1 }))
	topic := b.topic("t")
	sub := newClient(t, b, v5, "sub")
	sub.mustSubscribe(topic, 2)
	c := newClient(t, b, v5, "pub")

	// Retained messages on new topics fill the store until the broker
	// refuses one with a PUBREC of 0x80 or above.
	refusedID := uint16(0)
	for id := uint16(1); id <= 8 && refusedID == 0; id++ {
		c.send(&packet.Publish{Topic: b.topic(fmt.Sprint("r", id)), QoS: 2, PacketID: id, Retain: true, Payload: []byte("fill")})
		rec := expectPacket[*packet.Pubrec](c)
		if rec.ReasonCode >= 0x80 {
			refusedID = id
			break
		}
		c.send(&packet.Pubrel{PacketID: id})
		expectPacket[*packet.Pubcomp](c)
	}
	if refusedID == 0 {
		t.Skip("the broker accepted 8 retained messages with a limit of 1; no refusal to test")
	}
	c.publishPacket(&packet.Publish{Topic: topic, QoS: 2, PacketID: refusedID, Payload: []byte("new")})
	sub.expectMessage(topic, "new")
}

// [MQTT-1.5.5-1] v5
func TestV5_VariableByteIntegersMinimal(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("t")
	sub := newClient(t, b, v5, "sub")
	sub.subscribeWith(packet.Properties{SubscriptionIDs: []uint32{127}}, packet.Subscription{Filter: topic, QoS: 0})
	sub.subscribeWith(packet.Properties{SubscriptionIDs: []uint32{16384}}, packet.Subscription{Filter: b.topic("+"), QoS: 0})
	pub := newClient(t, b, v5, "pub")
	pub.publish(topic, strings.Repeat("x", 200), 0, false)

	for i := 0; ; i++ {
		f, ok := sub.nextFrame(quietPeriod)
		if !ok {
			if i == 0 {
				t.Fatalf("no PUBLISH")
			}
			return
		}
		if f.err != nil {
			t.Fatalf("PUBLISH % x: %v", truncate(f.raw), f.err)
		}
		// The reader checked the remaining length; check the property
		// block's length and each Subscription Identifier here.
		body := f.raw[1:]
		for body[0]&0x80 != 0 {
			body = body[1:]
		}
		body = body[1:]
		n := int(body[0])<<8 | int(body[1])
		props := body[2+n:]
		if err := checkVarInts(props); err != nil {
			t.Errorf("PUBLISH % x: %v", truncate(f.raw), err)
		}
	}
}

// checkVarInts checks that a property block's length and its Subscription
// Identifiers use minimal variable byte integers. b starts at the property
// length of a PUBLISH.
func checkVarInts(b []byte) error {
	readVar := func() (int, int, error) {
		v, mult := 0, 1
		for i := 0; i < 4 && i < len(b); i++ {
			v += int(b[i]&0x7F) * mult
			mult *= 128
			if b[i]&0x80 == 0 {
				return v, i + 1, nil
			}
		}
		return 0, 0, fmt.Errorf("invalid variable byte integer % x", truncate(b))
	}
	minLen := func(v int) int {
		n := 1
		for limit := 128; v >= limit; limit *= 128 {
			n++
		}
		return n
	}
	length, used, err := readVar()
	if err != nil {
		return err
	}
	if used != minLen(length) {
		return fmt.Errorf("property length %d in %d bytes", length, used)
	}
	b = b[used : used+length]
	for len(b) > 0 {
		id := b[0]
		b = b[1:]
		switch id {
		case 0x0B:
			v, used, err := readVar()
			if err != nil {
				return err
			}
			if used != minLen(v) {
				return fmt.Errorf("Subscription Identifier %d in %d bytes", v, used)
			}
			b = b[used:]
		case 0x01:
			b = b[1:]
		case 0x02:
			b = b[4:]
		case 0x23:
			b = b[2:]
		case 0x03, 0x08, 0x09:
			n := int(b[0])<<8 | int(b[1])
			b = b[2+n:]
		case 0x26:
			n := int(b[0])<<8 | int(b[1])
			b = b[2+n:]
			n = int(b[0])<<8 | int(b[1])
			b = b[2+n:]
		default:
			return fmt.Errorf("unexpected PUBLISH property 0x%02X", id)
		}
	}
	return nil
}
