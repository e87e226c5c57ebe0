package breakers

import (
	"fmt"
	"testing"
	"time"
)

// TestClusterScaleUp_ReconnectsNeedNoLookup creates persistent sessions on
// three nodes, adds a fourth and waits until the owners have registered the
// sessions whose home moved to it (starling_cluster_home_registrations_total
// rises). Reconnecting each client to another node must then find its record
// at the home: starling_cluster_home_lookups_total, summed over the nodes,
// stays where it was (docs/cluster.md, "Sessions that move between nodes").
//
// Found by hand against commit 4d2750c with nodes on 127.77.0.1-4 (README
// three-node section, then n4 with the same --join). 30 sessions
// `scale0`..`scale29` were created and reconnected once, then n4 joined.
// n1, n2 and n3 logged "sessions registered with their homes after a change
// of membership" (3, 4 and 3 records). The next round of 30 reconnects
// raised n4's starling_cluster_home_lookups_total from 0 to 7. A second
// round left it at 7. This test sees as many lookups on the new node as
// there were registrations (11 and 11 in one run).
//
// The likely cause is in Cluster.claim (cluster/sessions.go): when h.locks
// is nil, which is the case until a node handles its first claim, it sets
// h.records to a new empty map as well, and so drops every record that
// applyRegistration (or a backup copy from another home) stored before.
// NOTE: the backup copies that a home sends to the next node in rendezvous
// order would be dropped the same way. Whether that loses a will when the
// home then dies is not checked here.
func TestClusterScaleUp_ReconnectsNeedNoLookup(t *testing.T) {
	nodes := startTestCluster(t, 3)
	const clients = 40

	reconnect := func(round int, clean bool) {
		t.Helper()
		for i := 0; i < clients; i++ {
			node := nodes[(i+round)%len(nodes)]
			id := fmt.Sprintf("scale%d", i)
			c, ack := connect(t, node.addr, connectOpts{clientID: id, clean: clean, props: sessionExpiry})
			if code := connackCode(ack); code != 0 {
				t.Fatalf("round %d: %s CONNACK reason %#x on %s", round, id, code, node.name)
			}
			if clean {
				c.send(subscribePacket(5, 1, "scale/"+id, 1))
				c.expect(typeSuback, 10*time.Second)
			} else if ack.body[0]&1 != 1 {
				t.Errorf("round %d: %s lost its session on %s: Session Present 0", round, id, node.name)
			}
			c.send(pkt(typeDisconnect, 0, nil))
			c.Close()
		}
	}
	sum := func(name string) float64 {
		total := 0.0
		for _, n := range nodes {
			total += n.metric(name)
		}
		return total
	}

	reconnect(0, true)
	reconnect(1, false)
	registrations := sum("starling_cluster_home_registrations_total")

	nodes = append(nodes, addClusterNode(t, nodes))
	deadline := time.Now().Add(30 * time.Second)
	for sum("starling_cluster_home_registrations_total") <= registrations {
		if time.Now().After(deadline) {
			t.Fatalf("no node registered a session with the new node within 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // let every owner finish its registrations
	lookups := sum("starling_cluster_home_lookups_total")

	reconnect(2, false)
	after := sum("starling_cluster_home_lookups_total")
	t.Logf("registrations %v -> %v, lookups %v -> %v", registrations,
		sum("starling_cluster_home_registrations_total"), lookups, after)
	for _, n := range nodes {
		t.Logf("%s: home records %v, lookups %v", n.name,
			n.metric("starling_cluster_home_records"), n.metric("starling_cluster_home_lookups_total"))
	}
	if after != lookups {
		knownBug(t, "%v of %d reconnects after a scale-up asked every node for the session although the owners had registered",
			after-lookups, clients)
	}
}
