package e2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestCluster_PersistentSessionMovesToAnotherNode(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")

	for _, version := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			id := fmt.Sprintf("mover-v%d", version)
			spec := connectSpec{Version: version, ClientID: id, Clean: false, Keepalive: 60}
			if version == 5 {
				spec.Props = [][]byte{propU32(propSessionExpiry, 3600)}
			}
			sub, _ := connectRaw(t, n1.broker, "sub", spec)
			prefix := fmt.Sprintf("move%d", version)
			sub.mustSubscribe(prefix+"/q1/#", 1)
			sub.mustSubscribe(prefix+"/q2/#", 2)
			sub.disconnect()

			const n = 50
			pub, _ := connectRaw(t, n3.broker, "pub", v3(id+"-pub", true))
			for i := range n {
				pub.publish(prefix+"/q1/x", 1, false, fmt.Sprintf("a%d", i))
				pub.publish(prefix+"/q2/x", 2, false, fmt.Sprintf("b%d", i))
			}
			// Queued on n1; the client comes back through n2.
			start := time.Now()
			sub = dialRaw(t, n2.broker, "sub", version)
			ca := sub.connect(spec)
			took := time.Since(start)
			if ca.Code != 0 || !ca.SessionPresent {
				t.Fatalf("CONNACK on n2: code %#x, session present %v; want 0 and true", ca.Code, ca.SessionPresent)
			}
			got := sub.receiveN(2*n, 3*ioTimeout)
			var q1, q2 []string
			for _, m := range got {
				if m.QoS == 1 {
					q1 = append(q1, m.Payload)
				} else {
					q2 = append(q2, m.Payload)
				}
			}
			for i := range n {
				if i >= len(q1) || q1[i] != fmt.Sprintf("a%d", i) || i >= len(q2) || q2[i] != fmt.Sprintf("b%d", i) {
					t.Fatalf("messages out of order or missing:\nQoS 1: %v\nQoS 2: %v", q1, q2)
				}
			}
			sub.expectNoPublish(quietPeriod)

			// The subscriptions moved too: a message published on n1, where
			// the session was, reaches the client on n2 once.
			pub1, _ := connectRaw(t, n1.broker, "pub1", v3(id+"-pub1", true))
			pub1.publish(prefix+"/q1/y", 1, false, "live")
			if m := sub.receive(ioTimeout); m.Payload != "live" {
				t.Fatalf("live message after the move: %q", m.Payload)
			}
			sub.expectNoPublish(quietPeriod)
			t.Logf("session with %d queued messages moved from n1 to n2; CONNACK after %v", 2*n, took.Round(time.Millisecond))
		})
	}
}

func TestCluster_ClientIDRacingOnTwoNodesEndsWithOneConnection(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	nodes := []*clusterNode{c.node("n1"), c.node("n2")}
	rounds := scaled(100, 1000)
	for r := range rounds {
		id := fmt.Sprintf("racer-%d", r)
		clients := make([]*rawClient, 2)
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := dialRaw(t, n.broker, fmt.Sprintf("racer-%d-%s", r, n.name), 4)
				cl.send(connectSpec{Version: 4, ClientID: id, Clean: false, Keepalive: 60}.encode())
				clients[i] = cl
			}()
		}
		wg.Wait()
		// Each gets a CONNACK; afterwards exactly one connection stays.
		deadline := time.Now().Add(5 * time.Second)
		open := 2
		for time.Now().Before(deadline) {
			open = 0
			for _, cl := range clients {
				if closed, _ := cl.closedWithin(50 * time.Millisecond); !closed {
					open++
				}
			}
			if open == 1 {
				break
			}
		}
		if open != 1 {
			t.Fatalf("round %d: %d connections open for one client id, want 1", r, open)
		}
		for _, cl := range clients {
			cl.close()
		}
	}
}

func TestCluster_SessionOnDeadNodeRefusedThenFresh(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3, Extra: []string{"session_wait: 4s"}})
	n1, n2 := c.node("n1"), c.node("n2")

	sub, _ := connectRaw(t, n1.broker, "sub", v5("stranded", false, propU32(propSessionExpiry, 3600)))
	sub.mustSubscribe("stranded/#", 1)
	sub.close()
	n1.Kill()
	killed := time.Now()

	// While n1 is down and the wait runs, the client is told to retry.
	cl := dialRaw(t, n2.broker, "retry", 5)
	if ca := cl.connect(v5("stranded", false, propU32(propSessionExpiry, 3600))); ca.Code != 0x88 {
		t.Fatalf("CONNACK on n2 right after n1 died: code %#x, want 0x88 Server unavailable", ca.Code)
	}
	// After the wait it gets a fresh session.
	var ca connack
	waitFor(t, 30*time.Second, func() error {
		cl := dialRaw(t, n2.broker, "retry", 5)
		ca = cl.connect(v5("stranded", false, propU32(propSessionExpiry, 3600)))
		if ca.Code != 0 {
			cl.close()
			return fmt.Errorf("CONNACK code %#x", ca.Code)
		}
		return nil
	})
	if ca.SessionPresent {
		t.Fatalf("fresh session after the wait has Session Present set")
	}
	t.Logf("refused with 0x88, then a fresh session %v after kill -9", time.Since(killed).Round(100*time.Millisecond))

	// n1 returns with the old copy on disk; n2 owns the client id now, so
	// n1 discards its copy instead of keeping it, and its route, until
	// it expires.
	n1.Start()
	c.waitReady(60 * time.Second)
	waitFor(t, 30*time.Second, func() error {
		n, err := clusterCounter(n1, "starling_sessions")
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("n1 still holds %v sessions", n)
		}
		return nil
	})
}

func TestCluster_WillsOfKilledNodeArePublishedBySurvivors(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n2 := c.node("n1"), c.node("n2")

	watcher, _ := connectRaw(t, n2.broker, "watcher", v3("will-watcher", true))
	watcher.mustSubscribe("wills/#", 1)
	const clients = 6
	for i := range clients {
		delay := uint32(0)
		if i%2 == 1 {
			delay = 2
		}
		spec := v5(fmt.Sprintf("willer-%d", i), true)
		spec.Will = &willSpec{Topic: fmt.Sprintf("wills/%d", i), Payload: "gone", QoS: 1, Props: [][]byte{propU32(propWillDelay, delay)}}
		connectRaw(t, n1.broker, "willer", spec)
	}
	n1.Kill()
	killed := time.Now()
	got := map[string]int{}
	for len(got) < clients {
		m := watcher.receive(30 * time.Second)
		got[m.Topic]++
	}
	took := time.Since(killed)
	// n1 comes back: it must not publish them a second time.
	n1.Start()
	c.waitReady(60 * time.Second)
	watcher.expectNoPublish(2 * time.Second)
	for i := range clients {
		if n := got[fmt.Sprintf("wills/%d", i)]; n != 1 {
			t.Errorf("will %d published %d times, want once", i, n)
		}
	}
	t.Logf("%d wills of a killed node's clients published by the survivors within %v", clients, took.Round(100*time.Millisecond))
}

func TestCluster_SessionsFoundAfterScaleUp(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n2 := c.node("n1"), c.node("n2")
	const sessions = 40
	for i := range sessions {
		sub, _ := connectRaw(t, n1.broker, "sub", v3(fmt.Sprintf("scale-%d", i), false))
		sub.mustSubscribe(fmt.Sprintf("scale/%d", i), 1)
		sub.disconnect()
	}
	// A fourth node joins and becomes the home of some of these ids.
	c.add(4)
	c.waitReady(60 * time.Second)
	pub, _ := connectRaw(t, c.node("n4").broker, "pub", v3("scale-pub", true))
	for i := range sessions {
		pub.publish(fmt.Sprintf("scale/%d", i), 1, false, "queued")
	}

	// n1 registers the sessions whose home moved to n4 with it (about a
	// quarter of them), so no home has to ask every node on a claim.
	waitFor(t, 15*time.Second, func() error {
		n, err := clusterCounter(n1, "starling_cluster_home_registrations_total")
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("n1 registered no session with a new home")
		}
		return nil
	})
	lookups := func() float64 {
		total := 0.0
		for _, name := range []string{"n1", "n2", "n3", "n4"} {
			n, err := clusterCounter(c.node(name), "starling_cluster_home_lookups_total")
			if err != nil {
				t.Fatal(err)
			}
			total += n
		}
		return total
	}
	before := lookups()
	for i := range sessions {
		sub := dialRaw(t, n2.broker, "sub", 4)
		ca := sub.connect(v3(fmt.Sprintf("scale-%d", i), false))
		if ca.Code != 0 || !ca.SessionPresent {
			t.Fatalf("scale-%d on n2 after the scale-up: code %#x, session present %v", i, ca.Code, ca.SessionPresent)
		}
		if m := sub.receive(ioTimeout); m.Payload != "queued" {
			t.Fatalf("scale-%d: got %q", i, m.Payload)
		}
		sub.disconnect()
	}
	if after := lookups(); after != before {
		t.Errorf("homes asked every node %v times for sessions their owner had registered", after-before)
	}
}

func TestCluster_TakeoverTimeWithThousandQueued(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	nodes := []*clusterNode{c.node("n1"), c.node("n2")}
	pubNode := c.node("n3")
	const queued = 1000
	rounds := scaled(5, 20)
	var times []time.Duration
	pub, _ := connectRaw(t, pubNode.broker, "pub", v3("take-pub", true))
	sub, _ := connectRaw(t, nodes[0].broker, "sub", v3("taker", false))
	sub.mustSubscribe("take/#", 1)
	sub.disconnect()
	for r := range rounds {
		for i := range queued {
			pub.publish("take/x", 1, false, fmt.Sprintf("%d-%d", r, i))
		}
		// The session is on nodes[r%2]; the client comes back on the other.
		to := nodes[(r+1)%2]
		start := time.Now()
		sub = dialRaw(t, to.broker, "sub", 4)
		if ca := sub.connect(v3("taker", false)); ca.Code != 0 || !ca.SessionPresent {
			t.Fatalf("round %d: CONNACK code %#x, session present %v", r, ca.Code, ca.SessionPresent)
		}
		msgs := sub.receiveN(queued, 3*ioTimeout)
		times = append(times, time.Since(start))
		for i, m := range msgs {
			if m.Payload != fmt.Sprintf("%d-%d", r, i) {
				t.Fatalf("round %d: message %d is %q", r, i, m.Payload)
			}
		}
		sub.disconnect()
	}
	slices.Sort(times)
	p := func(q float64) time.Duration { return times[min(len(times)-1, int(q*float64(len(times))))] }
	t.Logf("session with %d queued QoS 1 messages moved %d times: CONNACK to last message p50 %v, p99 %v",
		queued, rounds, p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond))
}
