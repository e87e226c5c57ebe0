package e2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// PUBLISH flows: QoS 0/1/2 in both directions, offline queues, redelivery,
// ordering, flow control and 5.0 properties.

func TestPublish_DeliveredAtMinimumQoS(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	for _, version := range []byte{4, 5} {
		// One subscriber per granted QoS, all on the same topic.
		topic := fmt.Sprintf("qos/v%d", version)
		var subs [3]*rawClient
		for q := range subs {
			name := fmt.Sprintf("sub-v%d-q%d", version, q)
			subs[q], _ = connectRaw(t, b, name, connectSpec{Version: version, ClientID: name, Clean: true, Keepalive: 60})
			subs[q].mustSubscribe(topic, byte(q))
		}
		pub, _ := connectRaw(t, b, "pub", connectSpec{Version: version, ClientID: fmt.Sprintf("pub-v%d", version), Clean: true, Keepalive: 60})

		for pubQoS := byte(0); pubQoS <= 2; pubQoS++ {
			// The publisher's side of the flow (PUBACK, or PUBREC/PUBREL/
			// PUBCOMP) is checked inside publish.
			payload := fmt.Sprintf("published at %d", pubQoS)
			pub.publish(topic, pubQoS, false, payload)

			// [MQTT-3.8.4-6] (5.0: [MQTT-3.8.4-8]) Delivery QoS is the minimum
			// of the published and the granted QoS; the subscriber's side of
			// the flow is completed by receive.
			for subQoS, sub := range subs {
				m := sub.receive(ioTimeout)
				expected := min(pubQoS, byte(subQoS))
				if m.Payload != payload || m.QoS != expected {
					t.Fatalf("v%d pub QoS %d sub QoS %d: got %q at QoS %d, expected QoS %d",
						version, pubQoS, subQoS, m.Payload, m.QoS, expected)
				}
				// [MQTT-2.3.1-5] A QoS 0 PUBLISH carries no packet id, so
				// the decoder would have read the payload wrongly.
			}
		}
		for _, sub := range subs {
			sub.expectNoPublish(quietPeriod)
		}
	}
}

func TestPublish_QoS1ToPersistentOffline(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	for _, spec := range []connectSpec{v3("offline-3", false), v5("offline-5", false, propU32(propSessionExpiry, 300))} {
		topic := "offline/" + spec.ClientID
		sub, _ := connectRaw(t, b, spec.ClientID, spec)
		sub.mustSubscribe(topic, 1)
		sub.disconnect()

		// [MQTT-3.1.2-5] QoS 1 and 2 messages for an offline persistent
		// session are stored and delivered when it reconnects.
		pub, _ := newPaho(t, b, "pub-"+spec.ClientID)
		const n = 20
		for i := 0; i < n; i++ {
			pahoPublish(t, pub, topic, 1, false, strconv.Itoa(i))
		}

		sub, ca := connectRaw(t, b, spec.ClientID, spec)
		if !ca.SessionPresent {
			t.Fatalf("%s: Session Present 0 on resume", spec.ClientID)
		}
		// [MQTT-4.6.0-6] in the order they were published.
		for i, m := range sub.receiveN(n, ioTimeout) {
			if m.Payload != strconv.Itoa(i) || m.QoS != 1 {
				t.Fatalf("%s: message %d is %q at QoS %d", spec.ClientID, i, m.Payload, m.QoS)
			}
		}
		sub.expectNoPublish(quietPeriod)
	}
}

func TestPublish_RedeliveryWithDupAfterReconnect(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	for _, spec := range []connectSpec{v3("dup-3", false), v5("dup-5", false, propU32(propSessionExpiry, 300))} {
		topic := "redeliver/" + spec.ClientID
		sub, _ := connectRaw(t, b, spec.ClientID, spec)
		sub.mustSubscribe(topic, 2)
		pub, _ := connectRaw(t, b, "pub", v3("pub-"+spec.ClientID, true))

		pub.publish(topic, 1, false, "q1")
		first := sub.expectPublish(ioTimeout)
		if first.Dup {
			t.Fatalf("%s: first delivery has DUP=1", spec.ClientID)
		}
		// 5.0 [MQTT-4.4.0-1]: no resend while the connection stays up.
		if spec.Version == 5 {
			sub.expectNoPublish(2 * quietPeriod)
		}
		sub.close()

		// [MQTT-4.4.0-1] On resume the unacknowledged PUBLISH is sent again
		// with its original packet id and [MQTT-3.3.1-1] DUP=1.
		sub, _ = connectRaw(t, b, spec.ClientID, spec)
		again := sub.expectPublish(ioTimeout)
		if again.ID != first.ID || !again.Dup || again.Payload != "q1" {
			t.Fatalf("%s: resent %+v, expected id %d with DUP=1", spec.ClientID, again, first.ID)
		}
		sub.ack(again)
		sub.expectNoPublish(quietPeriod)

		// QoS 2: after PUBREC the broker owes a PUBREL, and on resume it
		// sends the PUBREL again, never the PUBLISH [MQTT-4.3.3-1].
		pub.publish(topic, 2, false, "q2")
		m := sub.expectPublish(ioTimeout)
		sub.send(encodeAck(typePubrec, m.ID))
		sub.await(typePubrel, ioTimeout)
		sub.close()

		sub, _ = connectRaw(t, b, spec.ClientID, spec)
		rel, err := decodeAck(sub.version, sub.await(typePubrel, ioTimeout))
		if err != nil {
			t.Fatal(err)
		}
		if rel.ID != m.ID {
			t.Fatalf("%s: PUBREL for id %d, expected %d", spec.ClientID, rel.ID, m.ID)
		}
		sub.send(encodeAck(typePubcomp, m.ID))
		sub.expectNoPublish(quietPeriod)
		sub.disconnect()
	}
}

func TestPublish_QoS2ExactlyOnceInbound(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub, _ := connectRaw(t, b, "eo-sub", v3("eo-sub", true))
	sub.mustSubscribe("eo/t", 2)
	pub, _ := connectRaw(t, b, "eo-pub", v3("eo-pub", true))

	// [MQTT-4.3.3-2] The receiver of a QoS 2 PUBLISH acknowledges a resent
	// copy with the same packet id again but must not deliver it twice,
	// until PUBREL releases the id.
	const id = 5
	send := func(payload string, dup bool) {
		pub.send(encodePublish(4, publishSpec{Topic: "eo/t", QoS: 2, ID: id, Dup: dup, Payload: []byte(payload)}))
		if code := pub.awaitAck(typePubrec, id); code != 0 {
			t.Fatalf("PUBREC code %#x", code)
		}
	}
	send("once", false)
	send("once", true)
	pub.send(encodeAck(typePubrel, id))
	pub.awaitAck(typePubcomp, id)

	if m := sub.receive(ioTimeout); m.Payload != "once" {
		t.Fatalf("got %+v", m)
	}
	sub.expectNoPublish(quietPeriod)

	// After PUBCOMP the same id starts a new message (5.0: [MQTT-4.3.3-12]).
	send("twice", false)
	pub.send(encodeAck(typePubrel, id))
	pub.awaitAck(typePubcomp, id)
	if m := sub.receive(ioTimeout); m.Payload != "twice" {
		t.Fatalf("got %+v", m)
	}
	sub.expectNoPublish(quietPeriod)
}

func TestPublish_PacketIDReusedAfterPuback(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub, _ := connectRaw(t, b, "reuse-sub", v3("reuse-sub", true))
	sub.mustSubscribe("reuse/t", 1)
	pub, _ := connectRaw(t, b, "reuse-pub", v3("reuse-pub", true))

	// [MQTT-4.3.2-2] Once PUBACK is sent the packet id names a new message.
	for _, payload := range []string{"one", "two"} {
		pub.send(encodePublish(4, publishSpec{Topic: "reuse/t", QoS: 1, ID: 7, Payload: []byte(payload)}))
		pub.awaitAck(typePuback, 7)
		if m := sub.receive(ioTimeout); m.Payload != payload {
			t.Fatalf("got %q, expected %q", m.Payload, payload)
		}
	}
}

func TestPublish_DupFlagNotForwarded(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub, _ := connectRaw(t, b, "dupfwd-sub", v3("dupfwd-sub", true))
	sub.mustSubscribe("dupfwd/t", 1)
	pub, _ := connectRaw(t, b, "dupfwd-pub", v3("dupfwd-pub", true))

	// [MQTT-3.3.1-3] DUP on an outgoing PUBLISH tells only whether that
	// packet is a retransmission: the publisher's DUP is not copied.
	pub.send(encodePublish(4, publishSpec{Topic: "dupfwd/t", QoS: 1, ID: 9, Dup: true, Payload: []byte("d")}))
	pub.awaitAck(typePuback, 9)
	if m := sub.receive(ioTimeout); m.Dup {
		t.Fatal("first delivery to the subscriber has DUP=1")
	}
}

func TestPublish_OrderAndPubackOrder(t *testing.T) {
	t.Parallel()
	n := scaled(200, 2000)
	// The subscriber reads only after the last PUBACK, so its queue must
	// hold every message or the overflow policy would drop some.
	b := startBroker(t, brokerOptions{Limits: limits{MaxQueuedMessages: n + 100}})
	sub, _ := connectRaw(t, b, "order-sub", v3("order-sub", true))
	sub.mustSubscribe("order/t", 1)
	pub, _ := connectRaw(t, b, "order-pub", v3("order-pub", true))

	// Send all messages before reading any PUBACK.
	for i := 1; i <= n; i++ {
		pub.send(encodePublish(4, publishSpec{Topic: "order/t", QoS: 1, ID: uint16(i), Payload: []byte(strconv.Itoa(i))}))
	}
	// PUBACKs come back in the order the PUBLISHes arrived (section 4.6).
	for i := 1; i <= n; i++ {
		pub.awaitAck(typePuback, uint16(i))
	}
	// [MQTT-4.6.0-6] The subscriber receives them in publishing order.
	for i, m := range sub.receiveN(n, ioTimeout) {
		if m.Payload != strconv.Itoa(i+1) {
			t.Fatalf("message %d is %q", i+1, m.Payload)
		}
	}
}

func TestPublish_PacketIDsUniqueWhileInflight(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub, _ := connectRaw(t, b, "ids-sub", v3("ids-sub", true))
	sub.mustSubscribe("ids/t", 1)
	pub, _ := connectRaw(t, b, "ids-pub", v3("ids-pub", true))

	// [MQTT-2.3.1-4] (5.0: [MQTT-2.2.1-4]) The broker's packet ids are
	// non-zero and not reused while unacknowledged. 15 stays below the default inflight windows of
	// mosquitto (20) and Starling.
	const n = 15
	for i := 0; i < n; i++ {
		pub.publish("ids/t", 1, false, strconv.Itoa(i))
	}
	seen := map[uint16]bool{}
	for i := 0; i < n; i++ {
		m := sub.expectPublish(ioTimeout)
		if m.ID == 0 || seen[m.ID] {
			t.Fatalf("message %d has packet id %d, already in use or zero (ids %v)", i, m.ID, seen)
		}
		seen[m.ID] = true
	}
}

func TestPublish_ReceiveMaximumQoS2(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	// 5.0 [MQTT-3.3.4-9]: with Receive Maximum 1 the server has at most one
	// unacknowledged QoS 1/2 PUBLISH to this client. For QoS 2 the slot is
	// freed by PUBCOMP, not by PUBREC (section 4.9).
	sub, _ := connectRaw(t, b, "rm2-sub", v5("rm2-sub", true, propU16(propReceiveMaximum, 1)))
	sub.mustSubscribe("rm2/t", 2)
	pub, _ := connectRaw(t, b, "rm2-pub", v3("rm2-pub", true))
	for i := 0; i < 3; i++ {
		pub.publish("rm2/t", 2, false, strconv.Itoa(i))
	}

	for i := 0; i < 3; i++ {
		m := sub.expectPublish(ioTimeout)
		if m.Payload != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m.Payload)
		}
		sub.expectNoPublish(quietPeriod)

		sub.send(encodeAck(typePubrec, m.ID))
		sub.await(typePubrel, ioTimeout)
		// [MQTT-4.9.0-3] Other packets still flow while the window is full.
		sub.ping()
		sub.expectNoPublish(quietPeriod)
		sub.send(encodeAck(typePubcomp, m.ID))
	}
	sub.expectNoPublish(quietPeriod)
}

func TestPublish_V5PropertiesForwarded(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub, _ := connectRaw(t, b, "props-sub", v5("props-sub", true))
	sub.mustSubscribe("props/t", 1)
	pub, _ := connectRaw(t, b, "props-pub", v5("props-pub", true))

	// [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17]
	// [MQTT-3.3.2-18] [MQTT-3.3.2-20] The payload format indicator, response topic,
	// correlation data, user properties (in order, duplicates kept) and
	// content type reach the subscriber unchanged.
	pub.publish("props/t", 1, false, "{}",
		propByte(propPayloadFormat, 1),
		propString(propResponseTopic, "reply/here"),
		propString(propCorrelationData, "\x00\x01corr"),
		propPair(propUserProperty, "k", "1"),
		propPair(propUserProperty, "a", "x"),
		propPair(propUserProperty, "k", "2"),
		propString(propContentType, "application/json"),
	)
	m := sub.receive(ioTimeout)
	checks := []struct {
		id       byte
		expected []any
	}{
		{propPayloadFormat, []any{uint32(1)}},
		{propResponseTopic, []any{"reply/here"}},
		{propCorrelationData, []any{"\x00\x01corr"}},
		{propUserProperty, []any{"k=1", "a=x", "k=2"}},
		{propContentType, []any{"application/json"}},
	}
	for _, c := range checks {
		if fmt.Sprint(m.Props[c.id]) != fmt.Sprint(c.expected) {
			t.Errorf("property %#x: got %v, expected %v", c.id, m.Props[c.id], c.expected)
		}
	}
	// [MQTT-3.3.2-11] The subscriber sent no Topic Alias Maximum, so no alias.
	if _, ok := m.Props[propTopicAlias]; ok {
		t.Error("PUBLISH to a client without Topic Alias Maximum carries a Topic Alias")
	}
}

func TestPublish_V5MessageExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	spec := v5("expiry-sub", false, propU32(propSessionExpiry, 300))
	sub, _ := connectRaw(t, b, "expiry-sub", spec)
	sub.mustSubscribe("expiry/t", 1)
	sub.disconnect()

	pub, _ := connectRaw(t, b, "expiry-pub", v5("expiry-pub", true))
	pub.publish("expiry/t", 1, false, "short", propU32(propMessageExpiry, 1))
	pub.publish("expiry/t", 1, false, "long", propU32(propMessageExpiry, 60))
	time.Sleep(2500 * time.Millisecond)

	// [MQTT-3.3.2-5] An expired message is not delivered; [MQTT-3.3.2-6]
	// the forwarded one carries its remaining lifetime.
	sub, _ = connectRaw(t, b, "expiry-sub", spec)
	m := sub.receive(ioTimeout)
	if m.Payload != "long" {
		t.Fatalf("got %q, expected only the unexpired message", m.Payload)
	}
	left, ok := m.Props.u32(propMessageExpiry)
	if !ok || left > 58 || left == 0 {
		t.Fatalf("Message Expiry Interval %d (present %v), expected 1..58 after 2.5 s offline", left, ok)
	}
	sub.expectNoPublish(quietPeriod)
}

func TestPublish_V5TopicAliasInbound(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub, _ := connectRaw(t, b, "alias-sub", v5("alias-sub", true))
	sub.mustSubscribe("alias/#", 0)

	pub, ca := connectRaw(t, b, "alias-pub", v5("alias-pub", true))
	maxAlias, _ := ca.Props.u32(propTopicAliasMaximum)
	if maxAlias == 0 {
		t.Skip("broker allows no topic aliases (Topic Alias Maximum 0)")
	}

	// A topic alias set by a publisher is resolved by the server and never
	// forwarded [MQTT-3.3.2-7]: the subscriber receives the topic name twice.
	pub.publish("alias/t", 0, false, "first", propU16(propTopicAlias, 1))
	pub.publish("", 0, false, "second", propU16(propTopicAlias, 1))
	for _, payload := range []string{"first", "second"} {
		m := sub.receive(ioTimeout)
		if m.Topic != "alias/t" || m.Payload != payload {
			t.Fatalf("got %+v, expected %q on alias/t", m, payload)
		}
		if _, ok := m.Props[propTopicAlias]; ok {
			t.Fatal("forwarded PUBLISH carries the publisher's Topic Alias")
		}
	}

	// [MQTT-3.3.2-8] Alias 0 is invalid: DISCONNECT 0x94 (0x81 and 0x82 fit too).
	pub.send(encodePublish(5, publishSpec{Topic: "alias/t", Payload: []byte("x"), Props: [][]byte{propU16(propTopicAlias, 0)}}))
	pub.expectProtocolClose(0x94, rcProtocolError, rcMalformedPacket)
}
