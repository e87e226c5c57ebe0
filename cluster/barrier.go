package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// A session exported to another node keeps collecting messages here until
// FinishExport. A message that a peer staged for this node before it applied
// the new owner's route goes to this node only. If it arrived after
// FinishExport, it would find no session, so it would be lost although its
// publisher got a PUBACK. The new owner calls FinishExport only once its routes are in
// force on every node, so every message staged from then on reaches it
// directly: awaitInbound waits until this node has received, from each live
// peer, everything that peer had staged for it when asked.

// inboundWait bounds awaitInbound. The wait runs this long only when the
// stream from a peer is down or far behind.
const inboundWait = 2 * time.Second

// inboundPoll is how often awaitInbound reads the high-water marks.
const inboundPoll = 5 * time.Millisecond

// awaitInbound waits, at most wait, until this node's high-water mark
// of every live peer has reached the last sequence number the peer queued
// toward it.
func (c *Cluster) awaitInbound(ctx context.Context, wait time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range c.livePeers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client, err := c.clients.peerClient(n.Name, n.PeerAddr)
			if err != nil {
				return
			}
			resp, err := client.ForwardBarrier(ctx, &clusterpb.ForwardBarrierRequest{ReceiverSiteId: c.siteID})
			if err != nil {
				c.log.Debug("forward barrier call failed", "peer", n.Name, "err", err)
				return
			}
			tick := time.NewTicker(inboundPoll)
			defer tick.Stop()
			for {
				hw, err := c.node.ForwardHighWater(n.SiteID)
				if err != nil || hw >= resp.AssignedSeq {
					return
				}
				select {
				case <-ctx.Done():
					c.log.Warn("messages a peer staged for this node had not all arrived when a moved session ended",
						"peer", n.Name, "high_water", hw, "assigned", resp.AssignedSeq)
					return
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
}

// ForwardBarrier is the receiving end of the barrier call.
func (s *service) ForwardBarrier(_ context.Context, req *clusterpb.ForwardBarrierRequest) (*clusterpb.ForwardBarrierResponse, error) {
	return &clusterpb.ForwardBarrierResponse{AssignedSeq: s.c.fwd.LastQueued(req.ReceiverSiteId)}, nil
}
