package breakers

import (
	"strings"
	"testing"
	"time"
)

// TestClusterMoveKillNewNode_SessionBackOnOldNode kills the node a session
// is moving to, a few milliseconds after the client sent it CONNECT. The
// old node keeps the exported copy frozen under a 30 s lease and unfreezes
// it when the lease runs out. docs/cluster.md ("Sessions that move between
// nodes") states that the client then finds the session there when it
// reconnects.
//
// Found by hand at commit 86a4ced with four nodes on 127.77.0.1-4 (README
// three-node section plus n4): the client's CONNECT to n2 was followed 5 ms
// later by `kill -9` of n2. n1 logged "session move not finished in time;
// the session is unfrozen here" 30 s later, but every CONNECT to n1 got
// 0x88 ("connection refused: its session is on a node that is down") from
// the kill until n2 returned 45 s later. The home still names n2 as the
// owner, so the client waits for session_wait (60 s) or for n2, although
// its session is ready on n1.
func TestClusterMoveKillNewNode_SessionBackOnOldNode(t *testing.T) {
	nodes := startTestCluster(t, 3)
	n1, n2 := nodes[0], nodes[1]

	c, ack := connect(t, n1.addr, connectOpts{clientID: "mover", clean: true, props: sessionExpiry})
	if code := connackCode(ack); code != 0 {
		t.Fatalf("mover CONNACK reason %#x on n1", code)
	}
	c.send(subscribePacket(5, 1, "mv/#", 1))
	c.expect(typeSuback, 10*time.Second)
	c.send(pkt(typeDisconnect, 0, nil))
	c.Close()

	moving := dialRaw(t, n2.addr)
	moving.send(connectPacket(connectOpts{clientID: "mover", props: sessionExpiry}))
	time.Sleep(5 * time.Millisecond)
	n2.kill()
	moving.Close()

	// Wait for the lease of the frozen copy on n1 to run out.
	deadline := time.Now().Add(45 * time.Second)
	for !strings.Contains(n1.log.String(), "session move not finished in time") {
		if time.Now().After(deadline) {
			t.Skip("n1 never unfroze the session: the kill came before the export, so this run checks nothing")
		}
		time.Sleep(200 * time.Millisecond)
	}

	c, ack = connect(t, n1.addr, connectOpts{clientID: "mover", props: sessionExpiry})
	defer c.Close()
	code := connackCode(ack)
	if code == 0 && ack.body[0]&1 != 1 {
		t.Fatalf("the unfrozen session on n1 was lost: Session Present 0")
	}
	if code != 0 {
		knownBug(t, "CONNECT to n1 got reason %#x after n1 unfroze the session, because the home still names the dead n2", code)
	}
}
