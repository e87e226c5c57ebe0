package breakers

import (
	"testing"
	"time"
)

// TestClusterMoveKillOldNode_KeepsAckedMessages moves a persistent session
// from n1 to n2 while a publisher on n3 publishes QoS 1 messages to it, and
// kills n1 with SIGKILL a few milliseconds after the client sent its CONNECT
// to n2. Every message that got a PUBACK must reach the client, on n2 or
// after n1 returns.
//
// This was broken at commit 4d2750c: n2 finished the move without the
// messages the frozen copy on n1 collected (its FinishExport failed), and n1
// discarded that copy as stale after its restart, together with the
// messages n3 kept in its outbox for n1 while n1 was down. 2 to 148 of about
// 900 acknowledged messages were lost per run, at QoS 1 and at QoS 2. Now n2
// waits for n1's hand-over, n1 first receives what peers queued for it, and
// n2 drops what it already has by each message's origin, which storage
// keeps across the restart.
func TestClusterMoveKillOldNode_KeepsAckedMessages(t *testing.T) {
	nodes := startTestCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	mover, ack := connect(t, n1.addr, connectOpts{clientID: "mover", clean: true, props: sessionExpiry})
	if code := connackCode(ack); code != 0 {
		t.Fatalf("mover CONNACK reason %#x on n1", code)
	}
	mover.send(subscribePacket(5, 1, "mv/#", 1))
	if suback := mover.expect(typeSuback, 10*time.Second); suback.body[len(suback.body)-1] != 1 {
		t.Fatalf("mover SUBACK %x, expected granted QoS 1", suback.body)
	}
	mover.send(pkt(typeDisconnect, 0, nil))
	mover.Close()

	pub := startQoS1Publisher(t, n3.addr, "publisher", "mv/x", 10*time.Millisecond)
	time.Sleep(time.Second) // messages queue in the session on n1

	// Move the session to n2 and kill n1 while the move runs.
	received := newPayloadSet()
	moved := dialRaw(t, n2.addr)
	moved.send(connectPacket(connectOpts{clientID: "mover", props: sessionExpiry}))
	time.Sleep(5 * time.Millisecond)
	n1.kill()
	ack, err := moved.read(30 * time.Second)
	if err != nil || ack.typ != typeConnack {
		t.Fatalf("no CONNACK from n2 for the moving session: %v %v", ack, err)
	}
	t.Logf("CONNACK from n2 during the kill: flags %#x reason %#x", ack.body[0], connackCode(ack))
	if connackCode(ack) == 0 {
		go collectV5(moved, received, time.Minute)
	} else {
		moved.Close()
	}

	time.Sleep(3 * time.Second)
	n1.start()
	n1.waitReady(60 * time.Second)
	time.Sleep(2 * time.Second)
	acked := pub.finish(t)
	moved.Close()

	// Drain what is left wherever the session is now. A client whose
	// session is on a node that is not ready yet gets 0x88 and retries.
	deadline := time.Now().Add(60 * time.Second)
	for _, node := range []*clusterNode{n2, n1, n2} {
		for time.Now().Before(deadline) {
			c, ack := connect(t, node.addr, connectOpts{clientID: "mover", props: sessionExpiry})
			if connackCode(ack) == 0 {
				collectV5(c, received, 3*time.Second)
				c.Close()
				break
			}
			c.Close()
			time.Sleep(time.Second)
		}
	}

	var missing []string
	for _, p := range acked {
		if !received.has(p) {
			missing = append(missing, p)
		}
	}
	t.Logf("acknowledged %d messages, %d never reached the moved session", len(acked), len(missing))
	if len(missing) > 0 {
		t.Errorf("%d of %d acknowledged QoS 1 messages lost when the old node died during a session move (first: %v)",
			len(missing), len(acked), missing[:min(10, len(missing))])
	}
}
