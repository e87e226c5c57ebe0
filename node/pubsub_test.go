package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

func TestPublish_QoSDowngradeAndFlows(t *testing.T) {
	srv := testServer(t, "", nil)
	for _, version := range []byte{packet.Version311, packet.Version5} {
		for pubQoS := byte(0); pubQoS <= 2; pubQoS++ {
			for subQoS := byte(0); subQoS <= 2; subQoS++ {
				name := fmt.Sprintf("v%d/pub%d-sub%d", version, pubQoS, subQoS)
				t.Run(name, func(t *testing.T) {
					topic := "flow/" + name
					sub := dialRaw(t, srv, version)
					sub.connect(&packet.Connect{ClientID: "sub-" + name, CleanStart: true})
					codes := sub.subscribe(1, packet.Subscription{Filter: topic, QoS: subQoS})
					if codes[0] != packet.ReasonCode(subQoS) {
						t.Fatalf("granted %d, want %d", codes[0], subQoS)
					}
					pub := dialRaw(t, srv, version)
					pub.connect(&packet.Connect{ClientID: "pub-" + name, CleanStart: true})
					pub.publish(7, pubQoS, topic, "m", false)

					got := sub.expectPublish()
					// [MQTT-3.8.4-6] Delivered at the lower of the two QoS levels.
					if want := min(pubQoS, subQoS); got.QoS != want {
						t.Errorf("delivered QoS %d, want %d", got.QoS, want)
					}
					if string(got.Payload) != "m" || got.Retain {
						t.Errorf("got payload %q retain %v", got.Payload, got.Retain)
					}
					sub.ack(got)
					sub.expectNothing(100 * time.Millisecond)
				})
			}
		}
	}
}

func TestSubscribe_WildcardsAndDollarTopics(t *testing.T) {
	srv := testServer(t, "", nil)
	sub := dialRaw(t, srv, packet.Version311)
	sub.connect(&packet.Connect{ClientID: "wild", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "sport/#"}, packet.Subscription{Filter: "+/x"}, packet.Subscription{Filter: "#"})

	pub := dialRaw(t, srv, packet.Version311)
	pub.connect(&packet.Connect{ClientID: "wild-pub", CleanStart: true})
	pub.publish(0, 0, "$SYS/x", "hidden", false)
	pub.publish(0, 0, "sport", "parent", false)

	// [MQTT-4.7.2-1] Neither "#" nor "+/x" matches "$SYS/x"; "sport/#" matches "sport".
	got := sub.expectPublish()
	if got.Topic != "sport" {
		t.Fatalf("first delivery on %q, want sport", got.Topic)
	}
	// Overlapping subscriptions deliver one copy.
	sub.expectNothing(200 * time.Millisecond)
}

func TestRetained_SetReplaceDelete(t *testing.T) {
	srv := testServer(t, "", nil)
	pub := dialRaw(t, srv, packet.Version311)
	pub.connect(&packet.Connect{ClientID: "ret-pub", CleanStart: true})
	pub.publish(1, 1, "ret/a", "one", true)
	pub.publish(2, 1, "ret/a", "two", true)
	pub.publish(3, 1, "ret/b", "bee", true)
	pub.publish(4, 1, "ret/b", "", true)

	sub := dialRaw(t, srv, packet.Version311)
	sub.connect(&packet.Connect{ClientID: "ret-sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "ret/#", QoS: 1})
	got := sub.expectPublish()
	// [MQTT-3.3.1-8] Retained messages on subscribe carry RETAIN.
	if got.Topic != "ret/a" || string(got.Payload) != "two" || !got.Retain {
		t.Fatalf("got %q=%q retain=%v, want ret/a=two retained", got.Topic, got.Payload, got.Retain)
	}
	sub.ack(got)
	sub.expectNothing(200 * time.Millisecond)

	// A live message to an existing subscriber has RETAIN cleared [MQTT-3.3.1-9].
	pub.publish(5, 1, "ret/a", "three", true)
	live := sub.expectPublish()
	if live.Retain {
		t.Errorf("live delivery has RETAIN set")
	}
}

func TestSession_PersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	srv := testServer(t, dir, nil)

	sub := dialRaw(t, srv, packet.Version311)
	sub.connect(&packet.Connect{ClientID: "durable", KeepAlive: 60})
	sub.subscribe(1, packet.Subscription{Filter: "pr/t", QoS: 2})
	sub.send(&packet.Disconnect{})
	sub.expectClosed()

	pub := dialRaw(t, srv, packet.Version311)
	pub.connect(&packet.Connect{ClientID: "durable-pub", CleanStart: true})
	for i := 1; i <= 3; i++ {
		pub.publish(uint16(i), 1, "pr/t", fmt.Sprintf("m%d", i), false)
	}
	pub.publish(9, 1, "pr/keep", "kept", true)
	stopServer(t, srv)

	srv2 := testServer(t, dir, nil)
	sub2 := dialRaw(t, srv2, packet.Version311)
	ack := sub2.connect(&packet.Connect{ClientID: "durable", KeepAlive: 60})
	if !ack.SessionPresent {
		t.Fatalf("session present = false after restart")
	}
	for i := 1; i <= 3; i++ {
		got := sub2.expectPublish()
		if want := fmt.Sprintf("m%d", i); string(got.Payload) != want {
			t.Fatalf("delivery %d = %q, want %q", i, got.Payload, want)
		}
		sub2.ack(got)
	}
	sub2.subscribe(2, packet.Subscription{Filter: "pr/keep"})
	if got := sub2.expectPublish(); string(got.Payload) != "kept" {
		t.Fatalf("retained after restart = %q", got.Payload)
	}
}

func TestSession_InflightResentWithDupAfterReconnect(t *testing.T) {
	srv := testServer(t, "", nil)
	sub := dialRaw(t, srv, packet.Version311)
	sub.connect(&packet.Connect{ClientID: "dup", KeepAlive: 60})
	sub.subscribe(1, packet.Subscription{Filter: "dup/t", QoS: 1})

	pub := dialRaw(t, srv, packet.Version311)
	pub.connect(&packet.Connect{ClientID: "dup-pub", CleanStart: true})
	pub.publish(1, 1, "dup/t", "m5", false)
	first := sub.expectPublish()
	sub.nc.Close() // no PUBACK

	sub2 := dialRaw(t, srv, packet.Version311)
	if ack := sub2.connect(&packet.Connect{ClientID: "dup", KeepAlive: 60}); !ack.SessionPresent {
		t.Fatalf("session present = false")
	}
	again := sub2.expectPublish()
	// [MQTT-4.4.0-1] Resent with DUP and the same packet id.
	if !again.Dup || again.PacketID != first.PacketID || string(again.Payload) != "m5" {
		t.Fatalf("resend dup=%v id=%d (first %d) payload=%q", again.Dup, again.PacketID, first.PacketID, again.Payload)
	}
	sub2.ack(again)
	sub2.expectNothing(200 * time.Millisecond)
}

func TestPublish_InboundQoS2ExactlyOnce(t *testing.T) {
	srv := testServer(t, "", nil)
	sub := dialRaw(t, srv, packet.Version5)
	sub.connect(&packet.Connect{ClientID: "q2-sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "q2", QoS: 2})

	pub := dialRaw(t, srv, packet.Version5)
	pub.connect(&packet.Connect{ClientID: "q2-pub", CleanStart: true})
	for i := 0; i < 2; i++ {
		// The second copy is a resend before PUBREL: acknowledged, not delivered.
		pub.send(&packet.Publish{QoS: 2, PacketID: 5, Topic: "q2", Payload: []byte("once"), Dup: i == 1})
		if rec, ok := pub.read().(*packet.Pubrec); !ok || rec.PacketID != 5 {
			t.Fatalf("expected PUBREC 5, got %+v", rec)
		}
	}
	pub.send(&packet.Pubrel{PacketID: 5})
	if comp, ok := pub.read().(*packet.Pubcomp); !ok || comp.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("expected PUBCOMP success, got %+v", comp)
	}
	got := sub.expectPublish()
	sub.ack(got)
	sub.expectNothing(300 * time.Millisecond)
}

func TestConnect_TakeoverClosesOldConnection(t *testing.T) {
	srv := testServer(t, "", nil)
	first := dialRaw(t, srv, packet.Version5)
	first.connect(&packet.Connect{ClientID: "tk", KeepAlive: 60, Properties: packet.Properties{SessionExpiry: 300, HasSessionExpiry: true}})
	first.subscribe(1, packet.Subscription{Filter: "tk/#", QoS: 1})

	second := dialRaw(t, srv, packet.Version5)
	ack := second.connect(&packet.Connect{ClientID: "tk", KeepAlive: 60, Properties: packet.Properties{SessionExpiry: 300, HasSessionExpiry: true}})
	if !ack.SessionPresent {
		t.Errorf("takeover: session present = false")
	}
	got := first.expectClosed()
	if len(got) != 1 {
		t.Fatalf("old connection got %d packets, want one DISCONNECT", len(got))
	}
	// [MQTT-3.1.4-3] The old connection gets DISCONNECT 0x8E.
	if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.ReasonSessionTakenOver {
		t.Fatalf("old connection got %+v, want DISCONNECT 0x8E", got[0])
	}

	pub := dialRaw(t, srv, packet.Version5)
	pub.connect(&packet.Connect{ClientID: "tk-pub", CleanStart: true})
	pub.publish(1, 1, "tk/x", "after", false)
	if p := second.expectPublish(); string(p.Payload) != "after" {
		t.Fatalf("new connection got %q", p.Payload)
	}
}

func TestWill_PublishedOnAbnormalCloseOnly(t *testing.T) {
	srv := testServer(t, "", nil)
	watch := dialRaw(t, srv, packet.Version311)
	watch.connect(&packet.Connect{ClientID: "watch", CleanStart: true})
	watch.subscribe(1, packet.Subscription{Filter: "will/#", QoS: 1})

	normal := dialRaw(t, srv, packet.Version311)
	normal.connect(&packet.Connect{ClientID: "w-normal", CleanStart: true, Will: &packet.Will{Topic: "will/normal", Payload: []byte("x"), QoS: 1}})
	normal.send(&packet.Disconnect{})
	normal.expectClosed()

	abrupt := dialRaw(t, srv, packet.Version311)
	abrupt.connect(&packet.Connect{ClientID: "w-abrupt", CleanStart: true, Will: &packet.Will{Topic: "will/abrupt", Payload: []byte("gone"), QoS: 1}})
	abrupt.nc.Close()

	got := watch.expectPublish()
	// [MQTT-3.1.2-8] Only the abnormal close publishes its will.
	if got.Topic != "will/abrupt" || string(got.Payload) != "gone" {
		t.Fatalf("will delivery %q=%q, want will/abrupt=gone", got.Topic, got.Payload)
	}
	watch.ack(got)
	watch.expectNothing(200 * time.Millisecond)
}

func TestMalformed_ClosesOnlyThatConnection(t *testing.T) {
	srv := testServer(t, "", nil)
	probe := dialRaw(t, srv, packet.Version311)
	probe.connect(&packet.Connect{ClientID: "probe", CleanStart: true})

	cases := []struct {
		name    string
		version byte
		bytes   []byte
		reason  packet.ReasonCode // expected DISCONNECT reason for MQTT 5.0; 0 for a bare close
	}{
		{"connack-from-client-v3", packet.Version311, []byte{0x20, 0x02, 0x00, 0x00}, 0},
		{"connack-from-client-v5", packet.Version5, []byte{0x20, 0x03, 0x00, 0x00, 0x00}, packet.ReasonProtocolError},
		{"publish-qos3", packet.Version311, []byte{0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01}, 0},
		{"subscribe-wrong-flags", packet.Version311, []byte{0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}, 0},
		{"invalid-utf8-topic-v5", packet.Version5, []byte{0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 0x00}, packet.ReasonMalformedPacket},
		{"wildcard-topic-v5", packet.Version5, []byte{0x30, 0x04, 0x00, 0x01, '#', 0x00}, packet.ReasonTopicNameInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, srv, tc.version)
			c.connect(&packet.Connect{ClientID: "bad-" + tc.name, CleanStart: true})
			c.sendBytes(tc.bytes)
			got := c.expectClosed()
			if tc.reason == 0 {
				if len(got) != 0 {
					t.Fatalf("3.1.1 connection got %d packets before close, want none", len(got))
				}
			} else {
				if len(got) != 1 {
					t.Fatalf("got %d packets before close, want one DISCONNECT", len(got))
				}
				if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != tc.reason {
					t.Fatalf("got %+v, want DISCONNECT 0x%02X", got[0], byte(tc.reason))
				}
			}
			probe.send(&packet.Pingreq{})
			if _, ok := probe.read().(*packet.Pingresp); !ok {
				t.Fatalf("probe did not get PINGRESP")
			}
		})
	}
}

func TestShutdown_SendsServerShuttingDown(t *testing.T) {
	srv := testServer(t, "", nil)
	c := dialRaw(t, srv, packet.Version5)
	c.connect(&packet.Connect{ClientID: "shut", CleanStart: true})
	go stopServer(t, srv)
	got := c.expectClosed()
	if len(got) != 1 {
		t.Fatalf("got %d packets, want one DISCONNECT", len(got))
	}
	if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.ReasonServerShuttingDown {
		t.Fatalf("got %+v, want DISCONNECT 0x8B", got[0])
	}
	waitFor(t, 10*time.Second, "shutdown", func() bool { return srv.closing.Load() })
}

func TestPublish_ReceiveMaximumExceeded(t *testing.T) {
	srv := testServer(t, "", func(c *Config) { c.Limits.ReceiveMaximum = 3 })
	c := dialRaw(t, srv, packet.Version5)
	ack := c.connect(&packet.Connect{ClientID: "rm", CleanStart: true})
	if ack.Properties.ReceiveMaximum != 3 {
		t.Fatalf("CONNACK Receive Maximum = %d, want 3", ack.Properties.ReceiveMaximum)
	}
	for pid := uint16(1); pid <= 4; pid++ {
		c.send(&packet.Publish{QoS: 2, PacketID: pid, Topic: "rm", Payload: []byte("x")})
	}
	got := c.expectClosed()
	last := got[len(got)-1]
	// [MQTT-3.3.4-7] The fourth unacknowledged QoS 2 publish exceeds the maximum.
	if d, ok := last.(*packet.Disconnect); !ok || d.ReasonCode != packet.ReasonReceiveMaximumExceeded {
		t.Fatalf("last packet %+v, want DISCONNECT 0x93", last)
	}
}

// TestPublish_ReceiveMaximumBurstWithinLimit sends exactly Receive Maximum
// QoS 1 and 2 publishes in one write. A QoS 2 publish whose PUBREC is still
// pending counts once, not twice, so every publish is acknowledged.
func TestPublish_ReceiveMaximumBurstWithinLimit(t *testing.T) {
	srv := testServer(t, "", func(c *Config) { c.Limits.ReceiveMaximum = 4 })
	c := dialRaw(t, srv, packet.Version5)
	c.connect(&packet.Connect{ClientID: "rm-burst", CleanStart: true})

	var burst []byte
	for pid := uint16(1); pid <= 4; pid++ {
		qos := byte(2)
		if pid == 2 {
			qos = 1
		}
		b, err := (&packet.Publish{QoS: qos, PacketID: pid, Topic: "rm", Payload: []byte("x")}).Encode(nil, packet.Version5)
		if err != nil {
			t.Fatal(err)
		}
		burst = append(burst, b...)
	}
	c.sendBytes(burst)

	for range 4 {
		p := c.read()
		switch p.(type) {
		case *packet.Puback, *packet.Pubrec:
		default:
			t.Fatalf("got %T %+v, want PUBACK or PUBREC", p, p)
		}
	}
}

func TestConnect_KeepAliveEnforcedAtOneAndAHalf(t *testing.T) {
	srv := testServer(t, "", nil)
	c := dialRaw(t, srv, packet.Version5)
	c.connect(&packet.Connect{ClientID: "ka", CleanStart: true, KeepAlive: 1})
	start := time.Now()
	got := c.expectClosed()
	elapsed := time.Since(start)
	// [MQTT-3.1.2-22] Closed after 1.5 times the keep alive, not before.
	if elapsed < 1400*time.Millisecond || elapsed > 4*time.Second {
		t.Errorf("closed after %v, want about 1.5 s", elapsed)
	}
	if len(got) != 1 {
		t.Fatalf("got %d packets, want one DISCONNECT", len(got))
	}
	if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.ReasonKeepAliveTimeout {
		t.Fatalf("got %+v, want DISCONNECT 0x8D", got[0])
	}
}

func TestQueue_OverflowDropsOldest(t *testing.T) {
	srv := testServer(t, "", func(c *Config) { c.Limits.MaxQueuedMessages = 3 })
	sub := dialRaw(t, srv, packet.Version311)
	sub.connect(&packet.Connect{ClientID: "ovf", KeepAlive: 60})
	sub.subscribe(1, packet.Subscription{Filter: "ovf", QoS: 1})
	sub.send(&packet.Disconnect{})
	sub.expectClosed()

	pub := dialRaw(t, srv, packet.Version311)
	pub.connect(&packet.Connect{ClientID: "ovf-pub", CleanStart: true})
	for i := 1; i <= 5; i++ {
		pub.publish(uint16(i), 1, "ovf", fmt.Sprint(i), false)
	}
	sub2 := dialRaw(t, srv, packet.Version311)
	sub2.connect(&packet.Connect{ClientID: "ovf", KeepAlive: 60})
	for _, want := range []string{"3", "4", "5"} {
		got := sub2.expectPublish()
		if string(got.Payload) != want {
			t.Fatalf("got %q, want %q", got.Payload, want)
		}
		sub2.ack(got)
	}
	if n := srv.Stats().DroppedQueueFull; n != 2 {
		t.Errorf("dropped = %d, want 2", n)
	}
}

func TestRetained_ReplacementChargedForGrowth(t *testing.T) {
	srv := testServer(t, "", func(c *Config) { c.Limits.MaxRetainedBytes = 10_000 })
	pub := dialRaw(t, srv, packet.Version5)
	pub.connect(&packet.Connect{ClientID: "grow", CleanStart: true})
	pub.publish(1, 1, "grow/t", "small", true)
	// Replacing the small message with a large one would pass the limit.
	pub.send(&packet.Publish{QoS: 1, PacketID: 2, Topic: "grow/t", Retain: true, Payload: make([]byte, 20_000)})
	if ack, ok := pub.read().(*packet.Puback); !ok || ack.ReasonCode != packet.ReasonQuotaExceeded {
		t.Fatalf("oversized replacement: %+v, want PUBACK 0x97", ack)
	}
	if b := srv.Stats().RetainedBytes; b > 10_000 {
		t.Fatalf("retained bytes %d above the 10,000 limit", b)
	}
}
