package e2e

import (
	"testing"
	"time"
)

// Will messages: when they are published and how.

// watchWill connects a 3.1.1 client subscribed to topic at qos.
func watchWill(t testing.TB, b *broker, topic string, qos byte) *rawClient {
	t.Helper()
	w, _ := connectRaw(t, b, "watch-"+topic, v3("", true))
	w.mustSubscribe(topic, qos)
	return w
}

func withWillSpec(spec connectSpec, w willSpec) connectSpec {
	spec.Will = &w
	return spec
}

func TestWill_PublishedOnAbnormalClose(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	for _, spec := range []connectSpec{v3("will-drop-3", true), v5("will-drop-5", true)} {
		topic := "will/" + spec.ClientID
		watch := watchWill(t, b, topic, 1)
		c, _ := connectRaw(t, b, spec.ClientID, withWillSpec(spec, willSpec{Topic: topic, Payload: "gone", QoS: 1}))

		// [MQTT-3.1.2-8] Dropping the TCP connection without DISCONNECT
		// publishes the will, once.
		c.close()
		m := watch.receive(ioTimeout)
		if m.Topic != topic || m.Payload != "gone" {
			t.Fatalf("v%d: watcher got %+v, expected the will", spec.Version, m)
		}
		watch.expectNoPublish(quietPeriod)
	}
}

func TestWill_PublishedOnKeepaliveTimeout(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	watch := watchWill(t, b, "will/ka", 1)

	// [MQTT-3.1.2-24] A keepalive timeout closes the connection as a network
	// failure would, so the will is published.
	spec := withWillSpec(v3("will-ka", true), willSpec{Topic: "will/ka", Payload: "timed out", QoS: 1})
	spec.Keepalive = 1
	c, _ := connectRaw(t, b, "will-ka", spec)
	start := time.Now()
	m := watch.receive(keepaliveDeadline(t, time.Second) + ioTimeout)
	if m.Payload != "timed out" {
		t.Fatalf("watcher got %+v", m)
	}
	t.Logf("will arrived %v after CONNECT (keepalive 1 s)", time.Since(start).Round(10*time.Millisecond))
	c.expectClosed(ioTimeout)
}

func TestWill_PublishedOnTakeover(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	// 5.0 (the sentence after [MQTT-3.1.4-3]): on takeover the old
	// connection's will is handled as for any close without DISCONNECT, so
	// with will delay 0 it is published at once. In 3.1.1 the server closes
	// the old connection without a DISCONNECT from its client, which also
	// publishes the will [MQTT-3.1.2-8].
	for _, spec := range []connectSpec{v3("will-take-3c", true), v3("will-take-3p", false), v5("will-take-5", true)} {
		if !spec.Clean && spec.Version == 4 && knownMosquittoGap(t, "no will when a clean-session-0 connection is taken over") {
			continue
		}
		topic := "will/" + spec.ClientID
		watch := watchWill(t, b, topic, 1)
		old, _ := connectRaw(t, b, "old", withWillSpec(spec, willSpec{Topic: topic, Payload: "taken over", QoS: 1}))

		newer, _ := connectRaw(t, b, "new", spec)
		m := watch.receive(ioTimeout)
		if m.Payload != "taken over" {
			t.Fatalf("%s: watcher got %+v", spec.ClientID, m)
		}
		old.expectClosed(ioTimeout)
		newer.disconnect()
		// The new connection carries no will, so its DISCONNECT adds nothing.
		watch.expectNoPublish(quietPeriod)
	}
}

func TestWill_NotPublishedAfterDisconnect(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	for _, spec := range []connectSpec{v3("will-clean-3", true), v5("will-clean-5", true)} {
		topic := "will/" + spec.ClientID
		watch := watchWill(t, b, topic, 1)
		c, _ := connectRaw(t, b, spec.ClientID, withWillSpec(spec, willSpec{Topic: topic, Payload: "must not", QoS: 1}))

		// [MQTT-3.1.2-10] [MQTT-3.14.4-3] A normal DISCONNECT (5.0: reason
		// 0x00) deletes the will without publishing it.
		c.disconnect()
		watch.expectNoPublish(2 * quietPeriod)
	}
}

func TestWill_V5DisconnectWithWillMessage(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	watch := watchWill(t, b, "will/dww", 1)

	// 5.0 DISCONNECT reason 0x04 (Disconnect with Will Message) publishes the
	// will although the disconnect is orderly.
	c, _ := connectRaw(t, b, "will-dww", withWillSpec(v5("will-dww", true), willSpec{Topic: "will/dww", Payload: "asked", QoS: 1}))
	c.send(encodeDisconnect(5, 0x04))
	if m := watch.receive(ioTimeout); m.Payload != "asked" {
		t.Fatalf("watcher got %+v", m)
	}
}

func TestWill_RetainFlag(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	watch := watchWill(t, b, "will/ret/+", 1)

	// [MQTT-3.1.2-17] Will Retain 1 stores the will as a retained message.
	c, _ := connectRaw(t, b, "will-ret", withWillSpec(v3("will-ret", true), willSpec{Topic: "will/ret/1", Payload: "kept", QoS: 1, Retain: true}))
	c.close()
	// [MQTT-3.1.2-16] Will Retain 0 publishes it as a normal message.
	d, _ := connectRaw(t, b, "will-noret", withWillSpec(v3("will-noret", true), willSpec{Topic: "will/ret/0", Payload: "not kept", QoS: 1}))
	d.close()
	watch.receiveN(2, ioTimeout)

	late, _ := connectRaw(t, b, "late", v3("late", true))
	late.mustSubscribe("will/ret/+", 1)
	m := late.receive(ioTimeout)
	if m.Topic != "will/ret/1" || m.Payload != "kept" || !m.Retain {
		t.Fatalf("late subscriber got %+v, expected the retained will with RETAIN=1", m)
	}
	late.expectNoPublish(quietPeriod)
}

func TestWill_QoS(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	cases := []struct {
		name             string
		willQoS, subQoS  byte
		expectedDelivery byte
	}{
		{"will-1-sub-2", 1, 2, 1},
		{"will-2-sub-2", 2, 2, 2},
		{"will-2-sub-0", 2, 0, 0},
	}
	for _, tc := range cases {
		topic := "will/qos/" + tc.name
		watch := watchWill(t, b, topic, tc.subQoS)
		c, _ := connectRaw(t, b, tc.name, withWillSpec(v3(tc.name, true), willSpec{Topic: topic, Payload: "q", QoS: tc.willQoS}))
		c.close()

		// The will is published at its Will QoS, then downgraded to the
		// subscription's QoS [MQTT-3.8.4-6].
		m := watch.receive(ioTimeout)
		if m.QoS != tc.expectedDelivery {
			t.Fatalf("%s: will delivered at QoS %d, expected %d", tc.name, m.QoS, tc.expectedDelivery)
		}
	}
}

func TestWill_PublishedOnProtocolError(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	watch := watchWill(t, b, "will/bad", 1)

	// A connection closed by the server because of a protocol error ends
	// without DISCONNECT from the client, so the will is published
	// (section 3.1.2.5 lists this case).
	c, _ := connectRaw(t, b, "will-bad", withWillSpec(v3("will-bad", true), willSpec{Topic: "will/bad", Payload: "broken", QoS: 1}))
	c.send([]byte{typePubrel << 4, 2, 0, 1}) // PUBREL with flags 0000 instead of 0010
	c.expectClosed(ioTimeout)
	if m := watch.receive(ioTimeout); m.Payload != "broken" {
		t.Fatalf("watcher got %+v", m)
	}
}
