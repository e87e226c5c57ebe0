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
// Found by hand against commit 4d2750c with nodes on 127.77.0.1-4 (README
// three-node section) after several restarts: most moves took 2.04 s to
// 2.05 s (CONNACK time, and "took=2.04s" in "session moved here from
// another node"), and the old owner logged
//
//	WARN "messages a peer staged for this node had not all arrived when a moved session ended" peer=n1 high_water=196767 assigned=393215
//
// The old owner's forward barrier (cluster/barrier.go, awaitInbound) waits
// until its high-water mark of each peer reaches the sequence number that
// the peer reports as assigned toward it. After the peer restarts, the
// assigned number is far above anything the peer sent, so the wait always
// runs its full 2 s. Every move is then 2 s slower, and the barrier no
// longer protects the messages it was added for: the old copy ends on the
// timeout, not on their arrival.
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
		knownBug(t, "after n1 restarted, a move between n2 and n3 took %v (before: %v); forward barrier timed out on n2: %v",
			after, before, barrierTimedOut)
	}
}
