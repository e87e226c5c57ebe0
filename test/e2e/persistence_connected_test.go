package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Crash safety of deliveries to persistent subscribers that are connected
// when the message arrives. The node sends such a message right after the
// publisher's batch commits. So these tests kill it while messages are on
// the wire rather than in an offline queue.

func TestCrash_QoS1ConnectedSubscriberSameID(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	subSpec := v3("conn-q1-sub", false)
	sub, _ := connectRaw(t, b, "conn-q1-sub", subSpec)
	sub.mustSubscribe("conn-q1/t", 1)

	pub, _ := connectRaw(t, b, "conn-q1-pub", v3("conn-q1-pub", true))
	if code := pub.publish("conn-q1/t", 1, false, "kept"); code != 0 {
		t.Fatalf("PUBACK reason 0x%02X, expected 0", code)
	}
	first := sub.expectPublish(ioTimeout) // not acknowledged
	if first.Dup {
		t.Fatal("first delivery has DUP set")
	}

	crash(t, b)
	b.Start()

	// [MQTT-4.4.0-1] The unacknowledged PUBLISH comes again, with DUP and
	// its original packet id.
	sub, ca := connectRaw(t, b, "conn-q1-sub", subSpec)
	if !ca.SessionPresent {
		t.Fatal("subscriber: Session Present 0 after the restart")
	}
	again := sub.expectPublish(ioTimeout)
	if again.Payload != "kept" {
		t.Fatalf("resent payload %q, expected %q", again.Payload, "kept")
	}
	if again.ID != first.ID {
		t.Errorf("resent with packet id %d, expected the original %d", again.ID, first.ID)
	}
	if !again.Dup {
		t.Error("resent PUBLISH without DUP")
	}
	sub.ack(again)
	sub.expectNoPublish(quietPeriod)
}

func TestCrash_QoS2ConnectedSubscriberOnce(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	subSpec := v3("conn-q2-sub", false)
	sub, _ := connectRaw(t, b, "conn-q2-sub", subSpec)
	sub.mustSubscribe("conn-q2/t", 2)

	pub, _ := connectRaw(t, b, "conn-q2-pub", v3("conn-q2-pub", true))
	if code := pub.publish("conn-q2/t", 2, false, "once"); code != 0 {
		t.Fatalf("PUBREC reason 0x%02X, expected 0", code)
	}
	first := sub.expectPublish(ioTimeout) // no PUBREC yet

	// First kill: the PUBLISH is unacknowledged, so it comes again with
	// the same id, which lets the client recognise it.
	crash(t, b)
	b.Start()
	sub, _ = connectRaw(t, b, "conn-q2-sub", subSpec)
	again := sub.expectPublish(ioTimeout)
	if again.ID != first.ID || !again.Dup || again.Payload != "once" {
		t.Fatalf("resent %+v, expected id %d with DUP and payload %q", again, first.ID, "once")
	}
	sub.send(encodeAck(typePubrec, again.ID))
	sub.awaitAck(typePubrel, again.ID)

	// Second kill, between PUBREL and PUBCOMP: the node must resend the
	// PUBREL and never the PUBLISH, which the client would take for a new
	// message [MQTT-4.3.3-1].
	crash(t, b)
	b.Start()
	sub, _ = connectRaw(t, b, "conn-q2-sub", subSpec)
	p := sub.await(typePubrel, ioTimeout)
	rel, err := decodeAck(sub.version, p)
	if err != nil {
		t.Fatal(err)
	}
	if rel.ID != first.ID {
		t.Fatalf("PUBREL for id %d, expected %d", rel.ID, first.ID)
	}
	sub.send(encodeAck(typePubcomp, rel.ID))
	sub.expectNoPublish(quietPeriod)
}

// TestCrash_QoS1ConnectedStreamLosesNothing kills the broker
// while a connected persistent subscriber receives and acknowledges a QoS 1
// stream. Every message that got a PUBACK must reach the subscriber, before
// the kill or after the restart.
func TestCrash_QoS1ConnectedStreamLosesNothing(t *testing.T) {
	// Not parallel, like TestCrash_QoS1AckedMessagesSurviveKill: the
	// stream should have the machine to itself.
	total := scaled(3000, 20000)
	killAfter := total / 2
	b := startBroker(t, brokerOptions{
		Limits: limits{MaxQueuedMessages: total + 1000, MaxQueuedBytes: 64 << 20},
	})
	subSpec := v3("stream-sub", false)
	sub, _ := connectRaw(t, b, "stream-sub", subSpec)
	sub.mustSubscribe("stream/t", 1)

	var mu sync.Mutex
	received := map[int]int{}
	record := func(m publishMsg) {
		idx, err := strconv.Atoi(strings.TrimPrefix(m.Payload, "id-"))
		if err != nil {
			t.Errorf("unexpected payload %q", m.Payload)
			return
		}
		mu.Lock()
		received[idx]++
		mu.Unlock()
	}
	readerDone := make(chan struct{})
	go func() {
		// Reads and acknowledges until the kill closes the socket. It uses
		// no t.Fatal, which may not run outside the test goroutine.
		defer close(readerDone)
		for {
			p, err := sub.next(ioTimeout)
			if err != nil {
				return
			}
			if p.Type != typePublish {
				continue
			}
			m, err := decodePublish(4, p)
			if err != nil {
				t.Errorf("subscriber: %v", err)
				return
			}
			if sub.write(encodeAck(typePuback, m.ID)) != nil {
				return
			}
			record(m)
		}
	}()

	ackSignal := make(chan struct{})
	results := make(chan pipelineResult, 1)
	go func() {
		results <- publishPipelined(pipelineConfig{
			Addr:     b.Addr(),
			ClientID: "stream-pub",
			Count:    total,
			Build: func(i int) publishSpec {
				return publishSpec{Topic: "stream/t", Payload: []byte(fmt.Sprintf("id-%06d", i))}
			},
			Window:      32,
			Timeout:     2 * time.Minute,
			AckSignal:   ackSignal,
			AckSignalAt: killAfter,
		})
	}()
	var res pipelineResult
	select {
	case <-ackSignal:
		crash(t, b)
		res = <-results
	case res = <-results:
		t.Fatalf("publisher ended before %d PUBACKs: %d acked, %d sent, %v", killAfter, len(res.Acked), res.Sent, res.Err)
	}
	<-readerDone
	mu.Lock()
	beforeKill := len(received)
	mu.Unlock()
	t.Logf("sent %d, acked %d of %d; the subscriber had %d before the kill", res.Sent, len(res.Acked), total, beforeKill)

	b.Start()
	sub, ca := connectRaw(t, b, "stream-sub", subSpec)
	if !ca.SessionPresent {
		t.Fatal("subscriber: Session Present 0 after the restart")
	}
	missing := func() []int {
		mu.Lock()
		defer mu.Unlock()
		var out []int
		for _, idx := range res.Acked {
			if received[idx] == 0 {
				out = append(out, idx)
			}
		}
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		m := sub.receive(ioTimeout)
		record(m)
	}
	if lost := missing(); len(lost) > 0 {
		sort.Ints(lost)
		t.Errorf("%d acknowledged messages lost after the kill, first ids %v", len(lost), lost[:min(len(lost), 20)])
	}
}
