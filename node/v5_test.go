package node

import (
	"strings"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

func TestPublish_TooLargeForSubscriberDropped(t *testing.T) {
	srv := testServer(t, "", nil)
	sub := dialRaw(t, srv, packet.Version5)
	sub.connect(&packet.Connect{ClientID: "small", CleanStart: true,
		Properties: packet.Properties{MaximumPacketSize: 64, HasMaximumPacketSize: true}})
	sub.subscribe(1, packet.Subscription{Filter: "mps/#", QoS: 1})

	pub := dialRaw(t, srv, packet.Version5)
	pub.connect(&packet.Connect{ClientID: "mps-pub", CleanStart: true})
	pub.publish(1, 1, "mps/big", strings.Repeat("x", 100), false)
	pub.publish(0, 0, "mps/big0", strings.Repeat("x", 100), false)
	pub.publish(2, 1, "mps/small", "ok", false)

	// [MQTT-3.1.2-25] Only the message that fits arrives.
	got := sub.expectPublish()
	if got.Topic != "mps/small" {
		t.Fatalf("got %q, want mps/small", got.Topic)
	}
	if n := srv.Stats().TooLarge; n != 2 {
		t.Errorf("too-large drops = %d, want 2", n)
	}
}

func TestSession_ExpiresAfterInterval(t *testing.T) {
	srv := testServer(t, "", nil)
	c := dialRaw(t, srv, packet.Version5)
	c.connect(&packet.Connect{ClientID: "short", Properties: packet.Properties{SessionExpiry: 1, HasSessionExpiry: true}})
	c.subscribe(1, packet.Subscription{Filter: "x"})
	c.send(&packet.Disconnect{})
	c.expectClosed()

	waitFor(t, 5*time.Second, "session expiry", func() bool { return srv.Stats().ExpiredSessions == 1 })
	again := dialRaw(t, srv, packet.Version5)
	if ack := again.connect(&packet.Connect{ClientID: "short", Properties: packet.Properties{SessionExpiry: 1, HasSessionExpiry: true}}); ack.SessionPresent {
		t.Fatalf("session present after expiry")
	}
}

func TestWill_DelayCancelledByReconnect(t *testing.T) {
	srv := testServer(t, "", nil)
	watch := dialRaw(t, srv, packet.Version5)
	watch.connect(&packet.Connect{ClientID: "wd-watch", CleanStart: true})
	watch.subscribe(1, packet.Subscription{Filter: "wd/#"})

	connect := func() *rawClient {
		c := dialRaw(t, srv, packet.Version5)
		c.connect(&packet.Connect{ClientID: "wd", Properties: packet.Properties{SessionExpiry: 60, HasSessionExpiry: true},
			Will: &packet.Will{Topic: "wd/c", Payload: []byte("late"), Properties: packet.Properties{WillDelay: 1}}})
		return c
	}
	first := connect()
	first.nc.Close()
	time.Sleep(300 * time.Millisecond)
	// [MQTT-3.1.3-9] Reconnecting within the delay cancels the will.
	second := connect()
	watch.expectNothing(1500 * time.Millisecond)

	second.nc.Close()
	start := time.Now()
	got := watch.expectPublish()
	if got.Topic != "wd/c" {
		t.Fatalf("will on %q", got.Topic)
	}
	if waited := time.Since(start); waited < 800*time.Millisecond {
		t.Errorf("will published after %v, before its 1 s delay", waited)
	}
}

func TestPublish_TopicAliasResolvedAndNotForwarded(t *testing.T) {
	srv := testServer(t, "", nil)
	sub := dialRaw(t, srv, packet.Version5)
	sub.connect(&packet.Connect{ClientID: "alias-sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "al/#"})

	pub := dialRaw(t, srv, packet.Version5)
	pub.connect(&packet.Connect{ClientID: "alias-pub", CleanStart: true})
	pub.send(&packet.Publish{Topic: "al/t", Payload: []byte("1"), Properties: packet.Properties{TopicAlias: 3, HasTopicAlias: true}})
	pub.send(&packet.Publish{Topic: "", Payload: []byte("2"), Properties: packet.Properties{TopicAlias: 3, HasTopicAlias: true}})
	for _, want := range []string{"1", "2"} {
		got := sub.expectPublish()
		if got.Topic != "al/t" || string(got.Payload) != want || got.Properties.HasTopicAlias {
			t.Fatalf("got %q=%q alias=%v, want al/t=%s without alias", got.Topic, got.Payload, got.Properties.HasTopicAlias, want)
		}
	}

	// [MQTT-3.3.2-9] An alias above the maximum is a protocol error, 0x94.
	pub.send(&packet.Publish{Topic: "al/t", Payload: []byte("3"), Properties: packet.Properties{TopicAlias: 1000, HasTopicAlias: true}})
	got := pub.expectClosed()
	if len(got) != 1 {
		t.Fatalf("got %d packets, want DISCONNECT", len(got))
	}
	if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.ReasonTopicAliasInvalid {
		t.Fatalf("got %+v, want DISCONNECT 0x94", got[0])
	}
}

func TestConnect_ClientIDRules(t *testing.T) {
	srv := testServer(t, "", nil)
	cases := []struct {
		name     string
		version  byte
		id       string
		clean    bool
		wantCode packet.ReasonCode
		assigned bool
	}{
		{"v311-empty-clean", packet.Version311, "", true, packet.ReasonSuccess, false},
		{"v311-empty-persistent", packet.Version311, "", false, packet.ReasonClientIDNotValid, false},
		{"v5-empty-assigned", packet.Version5, "", false, packet.ReasonSuccess, true},
		{"v31-empty", packet.Version31, "", true, packet.ReasonClientIDNotValid, false},
		{"v31-too-long", packet.Version31, strings.Repeat("a", 24), true, packet.ReasonClientIDNotValid, false},
		{"v31-ok", packet.Version31, "mqisdp-client", true, packet.ReasonSuccess, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, srv, tc.version)
			ack := c.connect(&packet.Connect{ClientID: tc.id, CleanStart: tc.clean})
			// The codec maps a 3.1.1 return code back to its MQTT 5.0 reason code.
			want := tc.wantCode
			if ack.ReasonCode != want {
				t.Fatalf("CONNACK code 0x%02X, want 0x%02X", byte(ack.ReasonCode), byte(want))
			}
			if got := ack.Properties.AssignedClientID != ""; got != tc.assigned {
				t.Errorf("assigned client id present = %v, want %v", got, tc.assigned)
			}
		})
	}
}

func TestConnect_IdleSocketClosedAfterTimeout(t *testing.T) {
	srv := testServer(t, "", func(c *Config) { c.ConnectTimeout = 500 * time.Millisecond })
	c := dialRaw(t, srv, packet.Version311)
	start := time.Now()
	c.expectClosed()
	if waited := time.Since(start); waited < 400*time.Millisecond || waited > 4*time.Second {
		t.Errorf("closed after %v, want about 500 ms", waited)
	}
}
