package e2e

import (
	"slices"
	"sort"
	"testing"
)

// Retained messages: storing, replacing, deleting and delivering them.

func TestRetained_DeliveredOnSubscribe(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub, _ := connectRaw(t, b, "ret-pub", v3("ret-pub", true))
	pub.publish("ret/on-sub", 2, true, "stored")

	cases := []struct {
		name   string
		filter string
		subQoS byte
	}{
		{"exact-qos2", "ret/on-sub", 2},
		{"plus-qos1", "ret/+", 1},
		{"hash-qos0", "#", 0},
	}
	for _, tc := range cases {
		sub, _ := connectRaw(t, b, "ret-"+tc.name, v3("ret-"+tc.name, true))
		sub.mustSubscribe(tc.filter, tc.subQoS)

		// [MQTT-3.3.1-6] A new subscription gets the matching retained
		// message, [MQTT-3.3.1-8] with RETAIN=1, at min(published QoS,
		// granted QoS) [MQTT-3.8.4-6].
		m := sub.receive(ioTimeout)
		if m.Topic != "ret/on-sub" || m.Payload != "stored" {
			t.Fatalf("%s: got %+v", tc.name, m)
		}
		if !m.Retain {
			t.Fatalf("%s: retained message delivered with RETAIN=0", tc.name)
		}
		if m.QoS != tc.subQoS {
			t.Fatalf("%s: delivered at QoS %d, expected %d", tc.name, m.QoS, tc.subQoS)
		}
		sub.expectNoPublish(quietPeriod)
	}
}

func TestRetained_ReplacedByNewerMessage(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub, _ := connectRaw(t, b, "ret-pub", v3("ret-pub", true))

	// [MQTT-3.3.1-5] A retained PUBLISH replaces the message stored for the topic.
	pub.publish("ret/replace", 1, true, "first")
	pub.publish("ret/replace", 1, true, "second")

	sub, _ := connectRaw(t, b, "ret-sub", v3("ret-sub", true))
	sub.mustSubscribe("ret/replace", 1)
	if m := sub.receive(ioTimeout); m.Payload != "second" {
		t.Fatalf("got %q, expected only the newer retained message", m.Payload)
	}
	sub.expectNoPublish(quietPeriod)
}

func TestRetained_DeletedByEmptyPayload(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub, _ := connectRaw(t, b, "ret-pub", v3("ret-pub", true))
	live, _ := connectRaw(t, b, "ret-live", v3("ret-live", true))
	live.mustSubscribe("ret/delete", 1)

	pub.publish("ret/delete", 1, true, "x")
	live.receive(ioTimeout)

	// [MQTT-3.3.1-10] An empty retained payload deletes the stored message and
	// is itself not stored [MQTT-3.3.1-11], but subscribers connected now
	// still receive it.
	pub.publish("ret/delete", 1, true, "")
	if m := live.receive(ioTimeout); m.Payload != "" {
		t.Fatalf("live subscriber got %q, expected the empty message", m.Payload)
	}

	late, _ := connectRaw(t, b, "ret-late", v3("ret-late", true))
	late.mustSubscribe("ret/delete", 1)
	late.expectNoPublish(quietPeriod)
}

func TestRetained_LiveDeliveryClearsRetainFlag(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub, _ := connectRaw(t, b, "ret-pub", v3("ret-pub", true))

	// [MQTT-3.3.1-9] A 3.1.1 subscriber that is already subscribed gets
	// RETAIN=0. 5.0 clears it too, unless Retain As Published is set
	// [MQTT-3.3.1-12] [MQTT-3.3.1-13].
	live3, _ := connectRaw(t, b, "live-3", v3("live-3", true))
	live3.mustSubscribe("ret/live", 1)
	live5, _ := connectRaw(t, b, "live-5", v5("live-5", true))
	live5.mustSubscribe("ret/live", 1)
	live5rap, _ := connectRaw(t, b, "live-5-rap", v5("live-5-rap", true))
	if code := live5rap.subscribe("ret/live", 1|0x08); code != 1 {
		t.Fatalf("SUBSCRIBE with Retain As Published: SUBACK %#x", code)
	}

	pub.publish("ret/live", 1, true, "now")
	if m := live3.receive(ioTimeout); m.Retain {
		t.Fatal("3.1.1 live subscriber got RETAIN=1")
	}
	if m := live5.receive(ioTimeout); m.Retain {
		t.Fatal("5.0 live subscriber without Retain As Published got RETAIN=1")
	}
	if m := live5rap.receive(ioTimeout); !m.Retain {
		t.Fatal("5.0 live subscriber with Retain As Published got RETAIN=0")
	}
}

func TestRetained_NonRetainedPublishKeepsStored(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub, _ := connectRaw(t, b, "ret-pub", v3("ret-pub", true))

	// [MQTT-3.3.1-12] A PUBLISH with RETAIN=0 leaves the stored message alone.
	pub.publish("ret/keep", 1, true, "x")
	pub.publish("ret/keep", 1, false, "y")

	sub, _ := connectRaw(t, b, "ret-sub", v3("ret-sub", true))
	sub.mustSubscribe("ret/keep", 1)
	if m := sub.receive(ioTimeout); m.Payload != "x" || !m.Retain {
		t.Fatalf("got %+v, expected the retained x", m)
	}
}

func TestRetained_WildcardGetsAllMatching(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub, _ := connectRaw(t, b, "ret-pub", v3("ret-pub", true))

	topics := []string{"rw/a", "rw/b/c", "rw", "rwx/a", "rw/a/b/c"}
	for _, topic := range topics {
		pub.publish(topic, 1, true, topic)
	}

	cases := []struct {
		filter   string
		expected []string
	}{
		{"rw/#", []string{"rw", "rw/a", "rw/a/b/c", "rw/b/c"}},
		{"rw/+", []string{"rw/a"}},
		{"+/+/c", []string{"rw/b/c"}},
		{"rw/+/#", []string{"rw/a", "rw/a/b/c", "rw/b/c"}},
	}
	for _, tc := range cases {
		sub, _ := connectRaw(t, b, "ret-wild", v3("ret-wild", true))
		sub.mustSubscribe(tc.filter, 1)

		// [MQTT-3.3.1-6] Every retained message that matches is sent.
		var got []string
		for _, m := range sub.receiveN(len(tc.expected), ioTimeout) {
			if !m.Retain {
				t.Fatalf("%s: %q delivered with RETAIN=0", tc.filter, m.Topic)
			}
			got = append(got, m.Topic)
		}
		sort.Strings(got)
		if !slices.Equal(got, tc.expected) {
			t.Fatalf("%s: got retained %v, expected %v", tc.filter, got, tc.expected)
		}
		sub.expectNoPublish(quietPeriod)
		sub.disconnect()
	}
}
