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
// Found by hand against commit 4d2750c with three nodes on 127.77.0.1-3
// (README three-node section, lan profile), a publisher on n3 at about
// 50 messages/s and the client's CONNECT to n2 followed 5 ms later by
// `kill -9` of n1. The CONNACK came 2.06 s later with Session Present 1,
// and 103 of 1,901 acknowledged messages never arrived. The logs show why:
//
//	n2: WARN "fetching the messages of a moved session failed" client_id=mover2 err="... connection refused"
//	n2: INFO "session moved here from another node" client_id=mover2 queued=35 took=2.057s
//	n1, after its restart: INFO "stale session discarded: the client has a newer session on another node" client_id=mover2
//
// The messages that the frozen copy on n1 collected during the move (and
// those n3 kept in its outbox for n1 while n1 was down) are discarded with
// the stale copy. With a 300 ms delay before the kill, 1 message was lost.
// At commit 86a4ced the same steps at QoS 2 (subscription and publisher)
// lost 2 of 761 messages that had completed PUBREC and PUBCOMP.
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
		knownBug(t, "%d of %d acknowledged QoS 1 messages lost when the old node died during a session move (first: %v)",
			len(missing), len(acked), missing[:min(10, len(missing))])
	}
}
