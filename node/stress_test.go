package node

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// TestStress_PublishersWithTakeovers runs publishers, persistent subscribers and
// repeated takeovers of one subscriber at once, under the race detector, and
// checks that every acknowledged message reaches the steady subscriber.
func TestStress_PublishersWithTakeovers(t *testing.T) {
	srv := testServer(t, "", nil)
	const publishers, perPublisher = 4, 200

	steady := dialRaw(t, srv, packet.Version311)
	steady.connect(&packet.Connect{ClientID: "steady", KeepAlive: 60})
	steady.subscribe(1, packet.Subscription{Filter: "st/#", QoS: 1})

	received := make(map[string]int)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for len(received) < publishers*perPublisher {
			p, err := steady.readTimeout(20 * time.Second)
			if err != nil {
				return
			}
			if pub, ok := p.(*packet.Publish); ok {
				received[string(pub.Payload)]++
				steady.nc.Write(mustEncode(t, &packet.Puback{PacketID: pub.PacketID}, packet.Version311))
			}
		}
	}()

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c := dialRaw(t, srv, packet.Version5)
			c.send(&packet.Connect{ProtocolName: "MQTT", ProtocolVersion: packet.Version5, ClientID: "flapper", KeepAlive: 60,
				Properties: packet.Properties{SessionExpiry: 60, HasSessionExpiry: true}})
			c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "st/+/x", QoS: 1}}})
			time.Sleep(time.Duration(i%5) * time.Millisecond)
		}
	}()

	for p := 0; p < publishers; p++ {
		p := p
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialRaw(t, srv, packet.Version311)
			c.connect(&packet.Connect{ClientID: fmt.Sprintf("stress-pub-%d", p), CleanStart: true})
			for i := 0; i < perPublisher; i++ {
				c.publish(uint16(i+1), 1, fmt.Sprintf("st/%d/x", p), fmt.Sprintf("%d-%d", p, i), false)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	waitFor(t, 60*time.Second, "all publishers", func() bool {
		return srv.Stats().MessagesIn[1] >= publishers*perPublisher
	})
	close(stop)
	wg.Wait()
	<-recvDone

	if len(received) != publishers*perPublisher {
		t.Fatalf("steady subscriber got %d distinct messages, want %d", len(received), publishers*perPublisher)
	}
}

func mustEncode(t *testing.T, p packet.Packet, version byte) []byte {
	b, err := p.Encode(nil, version)
	if err != nil {
		t.Errorf("encode %T: %v", p, err)
	}
	return b
}

// TestWriter_ClientThatNeverReadsIsClosed floods PINGREQ without reading the
// replies; the node must close the connection instead of queueing replies
// without bound.
func TestWriter_ClientThatNeverReadsIsClosed(t *testing.T) {
	srv := testServer(t, "", nil)
	c := dialRaw(t, srv, packet.Version311)
	c.connect(&packet.Connect{ClientID: "no-reader", CleanStart: true})
	if tc, ok := c.nc.(interface{ SetReadBuffer(int) error }); ok {
		tc.SetReadBuffer(4096)
	}
	ping := mustEncode(t, &packet.Pingreq{}, packet.Version311)
	flood := make([]byte, 0, len(ping)*1024)
	for range 1024 {
		flood = append(flood, ping...)
	}
	// Keep writing until the node closes the connection: a write that times
	// out only means the node reads more slowly than this loop writes.
	deadline := time.Now().Add(60 * time.Second)
	for srv.Stats().SlowClients == 0 && time.Now().Before(deadline) {
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.nc.Write(flood); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			break
		}
	}
	waitFor(t, 10*time.Second, "slow client closed", func() bool { return srv.Stats().SlowClients >= 1 })
}
