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
// This was broken at commit 4d2750c: the first claim a node handled
// replaced its home records with an empty map, dropping every record that
// owners had registered (and every backup copy from another home) before
// it. After 30 reconnects the new node had asked every node 7 times.
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
		t.Errorf("%v of %d reconnects after a scale-up asked every node for the session although the owners had registered",
			after-lookups, clients)
	}
}
