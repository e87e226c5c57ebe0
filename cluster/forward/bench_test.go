package forward

import (
	"sync"
	"testing"

	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage"
)

// memoryDeliverer discards messages and keeps the high-water mark in
// memory, so that benchmarks measure the sender.
type memoryDeliverer struct {
	mu sync.Mutex
	hw map[string]uint64
}

func (d *memoryDeliverer) DeliverForwarded(site string, _ []*clusterpb.ForwardMessage, highWater uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hw[site] = highWater
	return nil
}

func (d *memoryDeliverer) ForwardHighWater(site string) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hw[site], nil
}

// BenchmarkForwarder_StageRelease measures Stage and Release of one
// message toward a connected peer, from parallel publishers. For QoS 1 it
// includes a batch per message committed without fsync, as under the
// relaxed durability policy.
func BenchmarkForwarder_StageRelease(b *testing.B) {
	for _, qos := range []uint32{0, 1} {
		name := map[uint32]string{0: "qos0", 1: "qos1-nosync"}[qos]
		b.Run(name, func(b *testing.B) {
			sendStore := openStore(b, b.TempDir(), storage.DurabilityRelaxed)
			_, addr := startReceiver(b, "127.0.0.1:0", receiverSite, &memoryDeliverer{hw: map[string]uint64{}}, discard)
			f := newForwarder(b, testConfig(sendStore, newDialer(b)))
			f.SetPeers([]Peer{{Name: "node-b", SiteID: receiverSite, Addr: addr}})
			payload := make([]byte, 64)

			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m := &clusterpb.ForwardMessage{OriginSiteId: senderSite, Topic: "bench/topic", Payload: payload, Qos: qos}
					var batch *storage.Batch
					if qos > 0 {
						batch = sendStore.NewBatch()
					}
					tk, err := f.Stage(receiverSite, m, batch)
					if err != nil {
						b.Error(err)
						return
					}
					if batch != nil {
						if err := batch.CommitNoSync(); err != nil {
							b.Error(err)
							return
						}
						batch.Close()
					}
					f.Release(tk)
				}
			})
			b.StopTimer()

			// At this rate the sender may not keep up, and QoS 0 messages
			// over the queue bound are dropped rather than sent.
			st := peerStats(b, f)
			b.ReportMetric(float64(st.DroppedQoS0)/float64(b.N), "dropped/op")
		})
	}
}
