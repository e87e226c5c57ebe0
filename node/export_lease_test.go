package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// TestExportLease_UnfreezesWithEverything checks the lease of a session
// export: when the node the session was exported to never calls
// FinishExport, the session is unfrozen here with what was in flight, what
// was queued and what arrived while it was frozen, in that order.
func TestExportLease_UnfreezesWithEverything(t *testing.T) {
	srv := testServer(t, "", func(c *Config) { c.ExportLease = 300 * time.Millisecond })

	sub := dialRaw(t, srv, packet.Version311)
	sub.connect(&packet.Connect{ClientID: "leased", KeepAlive: 60})
	sub.subscribe(1, packet.Subscription{Filter: "lease/#", QoS: 1})
	pub := dialRaw(t, srv, packet.Version311)
	pub.connect(&packet.Connect{ClientID: "lease-pub", KeepAlive: 60})

	// Two messages reach the client, which does not acknowledge them.
	pub.publish(1, 1, "lease/a", "0", false)
	pub.publish(2, 1, "lease/a", "1", false)
	sub.expectPublish()
	sub.expectPublish()
	sub.nc.Close()
	waitFor(t, 5*time.Second, "the client to go offline", func() bool {
		ss := srv.reg.get("leased")
		return ss != nil && !ss.online()
	})
	pub.publish(3, 1, "lease/a", "2", false) // queued while offline

	if st := srv.ExportSession("leased", false); st == nil || len(st.Inflight) != 2 || len(st.Queued) != 1 {
		t.Fatalf("export returned %+v, want 2 in flight and 1 queued", st)
	}
	pub.publish(4, 1, "lease/a", "3", false) // collected while frozen

	time.Sleep(600 * time.Millisecond) // the lease runs out
	back := dialRaw(t, srv, packet.Version311)
	if ack := back.connect(&packet.Connect{ClientID: "leased", KeepAlive: 60}); !ack.SessionPresent {
		t.Fatal("the unfrozen session is gone")
	}
	for i := range 4 {
		p := back.expectPublish()
		if got, want := string(p.Payload), fmt.Sprint(i); got != want {
			t.Fatalf("message %d: payload %q, want %q", i, got, want)
		}
		if dup := i < 2; p.Dup != dup {
			t.Errorf("message %d: DUP %v, want %v", i, p.Dup, dup)
		}
		back.ack(p)
	}
	back.expectNothing(200 * time.Millisecond)

	// FinishExport after the lease finds nothing to hand over.
	if msgs := srv.FinishExport("leased"); msgs != nil {
		t.Errorf("FinishExport after the lease returned %d messages", len(msgs))
	}
}
