package node

import (
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// TestWriter_InlineWriteAfterWriteTimeout checks that a connection keeps
// working after the write deadline of its last blocking write (the CONNACK
// and SUBACK writer) has passed: writes that never wait must ignore it.
func TestWriter_InlineWriteAfterWriteTimeout(t *testing.T) {
	srv := testServer(t, "", func(cfg *Config) { cfg.WriteTimeout = 100 * time.Millisecond })
	sub := dialRaw(t, srv, packet.Version311)
	sub.connect(&packet.Connect{ClientID: "late-sub", CleanStart: true, KeepAlive: 60})
	sub.subscribe(1, packet.Subscription{Filter: "late/x", QoS: 1})
	pub := dialRaw(t, srv, packet.Version311)
	pub.connect(&packet.Connect{ClientID: "late-pub", CleanStart: true, KeepAlive: 60})

	time.Sleep(300 * time.Millisecond)
	for i := range 3 {
		pub.publish(uint16(i+1), 1, "late/x", "after the deadline", false)
		got := sub.expectPublish()
		if string(got.Payload) != "after the deadline" {
			t.Fatalf("payload %q, want %q", got.Payload, "after the deadline")
		}
		sub.ack(got)
	}
}
