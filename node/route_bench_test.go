package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/router"
)

// BenchmarkRoute measures matching a message and building its deliveries for
// clean sessions (no storage write), with 1, 10 and 100 matching subscribers
// among 10,000 subscriptions.
func BenchmarkRoute(b *testing.B) {
	for _, matching := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("subscribers-%d", matching), func(b *testing.B) {
			srv := benchServer(b)
			for i := 0; i < 10000; i++ {
				id := fmt.Sprintf("c%d", i)
				srv.reg.put(newSession(srv, id))
				filter := fmt.Sprintf("other/%d/#", i)
				if i < matching {
					filter = "dev/+/temp"
				}
				srv.trie.Add(router.Entry{ClientID: id, Filter: filter, QoS: 1})
			}
			msg := newMessageFromPublish(&packet.Publish{Topic: "dev/42/temp", Payload: make([]byte, 64), QoS: 1}, "pub", time.Now())
			batch := srv.store.NewBatch()
			defer batch.Close()
			var out []target
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out = srv.route(msg, batch, out[:0], nil)
			}
			if len(out) != matching {
				b.Fatalf("routed to %d, want %d", len(out), matching)
			}
		})
	}
}
