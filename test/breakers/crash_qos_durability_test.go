package breakers

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// durSubscriber is a persistent v5 subscriber that keeps its QoS 2 receiver
// state (packet ids with PUBREC sent and no PUBREL yet) across connections,
// as a conforming client with a persistent session must.
type durSubscriber struct {
	mu        sync.Mutex
	delivered map[string]int    // payload -> application deliveries
	awaitRel  map[uint16]string // QoS 2 packet id -> payload, until PUBREL
}

// run reads one connection until it fails, acknowledging every packet.
func (s *durSubscriber) run(c *rawConn) {
	for {
		p, err := c.read(30 * time.Second)
		if err != nil {
			return
		}
		switch p.typ {
		case typePublish:
			_, id, payload := publishFields(p, 5)
			qos := (p.flags >> 1) & 3
			s.mu.Lock()
			switch qos {
			case 1:
				s.delivered[string(payload)]++
				s.mu.Unlock()
				c.Write(ackPacket(typePuback, id))
			case 2:
				if _, seen := s.awaitRel[id]; !seen {
					s.awaitRel[id] = string(payload)
					s.delivered[string(payload)]++
				}
				s.mu.Unlock()
				c.Write(ackPacket(typePubrec, id))
			default:
				s.mu.Unlock()
			}
		case typePubrel:
			id := binary.BigEndian.Uint16(p.body)
			s.mu.Lock()
			delete(s.awaitRel, id)
			s.mu.Unlock()
			c.Write(ackPacket(typePubcomp, id))
		}
	}
}

// durPublisher publishes numbered QoS 1 and QoS 2 messages on a persistent
// session and records which ones the broker acknowledged.
type durPublisher struct {
	mu      sync.Mutex
	next    int
	acked   map[string]bool   // payloads acknowledged by PUBACK or PUBREC
	pending map[uint16]string // packet id -> payload sent, not yet acknowledged
	relSent map[uint16]bool   // QoS 2 packet ids waiting for PUBCOMP
}

// run publishes until the connection fails or stop closes.
func (p *durPublisher) run(c *rawConn, stop <-chan struct{}) {
	// Resend PUBREL for QoS 2 flows that the broker acknowledged with PUBREC,
	// as the spec requires after a reconnect with a persistent session.
	p.mu.Lock()
	for id := range p.relSent {
		c.Write(ackPacket(typePubrel, id))
	}
	p.mu.Unlock()

	window := make(chan struct{}, 16)
	go func() {
		for {
			pk, err := c.read(30 * time.Second)
			if err != nil {
				c.Close()
				return
			}
			id := binary.BigEndian.Uint16(pk.body)
			p.mu.Lock()
			switch pk.typ {
			case typePuback, typePubrec:
				if payload, ok := p.pending[id]; ok {
					if len(pk.body) < 3 || pk.body[2] < 0x80 {
						p.acked[payload] = true
					}
					delete(p.pending, id)
					select {
					case <-window:
					default:
					}
				}
				if pk.typ == typePubrec {
					p.relSent[id] = true
					c.Write(ackPacket(typePubrel, id))
				}
			case typePubcomp:
				delete(p.relSent, id)
			}
			p.mu.Unlock()
		}
	}()
	for {
		select {
		case <-stop:
			return
		case window <- struct{}{}:
		}
		p.mu.Lock()
		p.next++
		n := p.next
		id := uint16(n%60000 + 1)
		qos := byte(1 + n%2)
		payload := fmt.Sprintf("q%d-%d", qos, n)
		p.pending[id] = payload
		p.mu.Unlock()
		if _, err := c.Write(publishPacket(5, "dur/q"+strconv.Itoa(int(qos)), []byte(payload), qos, id, false, nil)); err != nil {
			return
		}
	}
}

// TestCrash_QoSDurabilityAcrossKills kills the broker three times while a
// publisher streams QoS 1 and QoS 2 messages to a persistent subscriber, and
// checks that every acknowledged message arrives and no QoS 2 message arrives
// twice.
func TestCrash_QoSDurabilityAcrossKills(t *testing.T) {
	// Queue limits far above what the test publishes, so that no message
	// is dropped by the overflow policy while the subscriber is offline.
	cfg := writeFile(t, t.TempDir(), "starling.yaml", "limits:\n  max_queued_messages: 1000000\n  max_queued_bytes: 1073741824\n")
	b := startBroker(t, "--config", cfg)
	expiry := []byte{0x11, 0xff, 0xff, 0xff, 0xff} // Session Expiry Interval: never

	sub := &durSubscriber{delivered: map[string]int{}, awaitRel: map[uint16]string{}}
	pub := &durPublisher{acked: map[string]bool{}, pending: map[uint16]string{}, relSent: map[uint16]bool{}}

	c, _ := connect(t, b.addr, connectOpts{clientID: "dur-sub", clean: true, props: expiry})
	c.send(subscribePacket(5, 1, "dur/#", 2))
	c.expect(typeSuback, 10*time.Second)
	c.Close()

	for cycle := 0; cycle < 3; cycle++ {
		if cycle > 0 {
			b.start()
		}
		var wg sync.WaitGroup
		if cycle%2 == 0 { // the subscriber is offline in odd cycles
			sc, ack := connect(t, b.addr, connectOpts{clientID: "dur-sub", props: expiry})
			if ack.body[0]&1 == 0 {
				t.Fatalf("cycle %d: CONNACK without Session Present for dur-sub", cycle)
			}
			wg.Add(1)
			go func() { defer wg.Done(); sub.run(sc) }()
		}
		pc, _ := connect(t, b.addr, connectOpts{clientID: "dur-pub", clean: cycle == 0, props: expiry})
		stop := make(chan struct{})
		wg.Add(1)
		go func() { defer wg.Done(); pub.run(pc, stop) }()

		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		b.kill()
		close(stop)
		wg.Wait()
	}

	// Final run: drain everything.
	b.start()
	sc, _ := connect(t, b.addr, connectOpts{clientID: "dur-sub", props: expiry})
	go sub.run(sc)
	pc, _ := connect(t, b.addr, connectOpts{clientID: "dur-pub", props: expiry})
	stop := make(chan struct{})
	close(stop)
	go pub.run(pc, stop)

	deadline := time.Now().Add(20 * time.Second)
	var missing []string
	for time.Now().Before(deadline) {
		missing = missing[:0]
		pub.mu.Lock()
		sub.mu.Lock()
		for payload := range pub.acked {
			if sub.delivered[payload] == 0 {
				missing = append(missing, payload)
			}
		}
		sub.mu.Unlock()
		pub.mu.Unlock()
		if len(missing) == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)

	pub.mu.Lock()
	sub.mu.Lock()
	defer pub.mu.Unlock()
	defer sub.mu.Unlock()
	var dups []string
	for payload, n := range sub.delivered {
		if strings.HasPrefix(payload, "q2-") && n > 1 {
			dups = append(dups, fmt.Sprintf("%s x%d", payload, n))
		}
	}
	t.Logf("published %d, acknowledged %d, delivered %d distinct", pub.next, len(pub.acked), len(sub.delivered))
	if len(pub.acked) < 100 {
		t.Fatalf("only %d messages acknowledged: the test did not exercise the broker", len(pub.acked))
	}
	if len(missing) > 0 {
		t.Errorf("%d acknowledged messages never delivered, e.g. %v", len(missing), missing[:min(10, len(missing))])
	}
	if len(dups) > 0 {
		t.Errorf("%d QoS 2 messages delivered more than once, e.g. %v", len(dups), dups[:min(10, len(dups))])
	}
}
