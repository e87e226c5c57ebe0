package breakers

import (
	"strings"
	"testing"
	"time"
)

// TestClusterMoveAfterRestart_BarrierCompletes moves a persistent session
// from n2 to n3 before and after n1 restarts. n1 holds no copy of the session,
// so the CONNACK on n3 should come as fast after the restart as before it.
//
// This was broken at commit 4d2750c: after a restart, the sequence number a
// peer reported for the forward barrier (cluster/barrier.go) was the start
// of its newly reserved block, far above anything it sent, so every later
// move waited the barrier's full 2 s and the old copy ended on the timeout
// rather than on the arrival of the messages the barrier protects. The peer
// now reports the last number it queued for sending.
func TestClusterMoveAfterRestart_BarrierCompletes(t *testing.T) {
	nodes := startTestCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	move := func(clientID string) time.Duration {
		t.Helper()
		c, ack := connect(t, n2.addr, connectOpts{clientID: clientID, clean: true, props: sessionExpiry})
		if code := connackCode(ack); code != 0 {
			t.Fatalf("%s CONNACK reason %#x on n2", clientID, code)
		}
		c.send(subscribePacket(5, 1, "barrier/"+clientID, 1))
		c.expect(typeSuback, 10*time.Second)
		c.send(pkt(typeDisconnect, 0, nil))
		c.Close()

		start := time.Now()
		c, ack = connect(t, n3.addr, connectOpts{clientID: clientID, props: sessionExpiry})
		took := time.Since(start)
		if code := connackCode(ack); code != 0 {
			t.Fatalf("%s CONNACK reason %#x on n3", clientID, code)
		}
		if ack.body[0]&1 != 1 {
			t.Fatalf("%s lost its session moving to n3: Session Present 0", clientID)
		}
		c.Close()
		return took
	}

	before := move("before")
	n1.restart()
	n1.waitReady(60 * time.Second)
	time.Sleep(time.Second)
	after := move("after")
	t.Logf("move from n2 to n3 took %v before and %v after n1 restarted", before, after)

	if before > 1500*time.Millisecond {
		t.Fatalf("a move took %v before any restart", before)
	}
	barrierTimedOut := strings.Contains(n2.log.String(), "had not all arrived when a moved session ended")
	if after > 1500*time.Millisecond || barrierTimedOut {
		t.Errorf("after n1 restarted, a move between n2 and n3 took %v (before: %v); forward barrier timed out on n2: %v",
			after, before, barrierTimedOut)
	}
}
