package e2e

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCluster_SharedMessagesOfKilledNodeGoToAnotherMember checks the
// cluster-wide form of MQTT 5.0 section 4.8.2: QoS 1 messages that the
// publishing node forwarded to a node whose member never acknowledged them
// reach another member of the group after that node is killed. The member on
// n2 is a raw client that reads its messages and sends no PUBACK; the member
// on n3 acknowledges everything.
func TestCluster_SharedMessagesOfKilledNodeGoToAnotherMember(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")

	silent, _ := connectRaw(t, n2.broker, "silent", v3("custody-silent", true))
	silent.mustSubscribe("$share/g/custody/#", 1)
	ackCl, acking := newPaho(t, n3.broker, "custody-acking")
	if tok := ackCl.Subscribe("$share/g/custody/#", 1, nil); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe the acknowledging member: %v", tok.Error())
	}

	pub, _ := newPaho(t, n1.broker, "custody-pub")
	const total = 200
	for i := range total {
		pahoPublish(t, pub, "custody/x", 1, false, fmt.Sprint(i))
	}

	// The silent member holds its share unacknowledged: some in flight,
	// the rest queued behind its window on n2.
	silentGot := 0
	drain := func() {
		for {
			if _, err := silent.next(50 * time.Millisecond); err != nil {
				return
			}
			silentGot++
		}
	}
	waitFor(t, 3*ioTimeout, func() error {
		drain()
		if silentGot == 0 || acking.count() == 0 {
			return fmt.Errorf("members got %d (silent) and %d", silentGot, acking.count())
		}
		return nil
	})
	time.Sleep(quietPeriod)
	drain()
	if silentGot == 0 {
		t.Fatal("the silent member on n2 got no message, so the test shows nothing")
	}
	t.Logf("before the kill: %d messages to the silent member on n2, %d to the member on n3", silentGot, acking.count())

	n2.Kill()
	start := time.Now()
	waitFor(t, 60*time.Second, func() error {
		seen := map[string]bool{}
		for _, m := range acking.all() {
			seen[m.Payload] = true
		}
		if len(seen) < total {
			return fmt.Errorf("the member on n3 has %d of %d distinct messages", len(seen), total)
		}
		return nil
	})
	t.Logf("the member on n3 had every message %v after the kill", time.Since(start).Round(time.Millisecond))

	// n3 settled what its member acknowledged, so n1 keeps none of it in
	// custody.
	waitFor(t, ioTimeout, func() error {
		sent, err := clusterCounter(n3, "starling_cluster_shared_settles_sent_total")
		if err != nil {
			return err
		}
		if sent < total {
			return fmt.Errorf("n3 sent %v settle notices, want at least %d", sent, total)
		}
		return nil
	})
}

// clusterCounter reads one unlabelled series from the node's /metrics.
func clusterCounter(n *clusterNode, name string) (float64, error) {
	resp, err := httpClient.Get("http://" + n.http + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		value, ok := strings.CutPrefix(sc.Text(), name+" ")
		if ok {
			return strconv.ParseFloat(value, 64)
		}
	}
	return 0, fmt.Errorf("no %s series in the /metrics of %s", name, n.name)
}

// TestCluster_StrictModeRefusesWithoutLeader checks strict mode: a node that
// knows no leader (both other nodes killed) reports unready, refuses new
// subscriptions and new clients, and keeps serving the routes it had; once
// the others return, it accepts again.
func TestCluster_StrictModeRefusesWithoutLeader(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3, Extra: []string{"strict: true"}})
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")

	sub, _ := connectRaw(t, n1.broker, "sub", v3("strict-sub", true))
	sub.mustSubscribe("strict/old", 1)
	pub, _ := connectRaw(t, n1.broker, "pub", v3("strict-pub", true))

	n2.Kill()
	n3.Kill()
	waitFor(t, 30*time.Second, func() error {
		if n1.ready() == nil {
			return fmt.Errorf("n1 still reports ready")
		}
		return nil
	})

	if code := sub.subscribe("strict/new", 1); code != 0x80 {
		t.Errorf("SUBACK for a new filter without a leader: %#x, want 0x80", code)
	}
	cl := dialRaw(t, n1.broker, "newcomer", 4)
	if ca := cl.connect(v3("strict-newcomer", true)); ca.Code != 0x03 {
		t.Errorf("CONNACK without a leader: %#x, want 0x03 Server unavailable", ca.Code)
	}
	pub.publish("strict/old", 1, false, "still served")
	if m := sub.receive(ioTimeout); m.Payload != "still served" {
		t.Errorf("existing route delivered %q", m.Payload)
	}

	n2.Start()
	n3.Start()
	c.waitReady(60 * time.Second)
	waitFor(t, 30*time.Second, func() error {
		if code := sub.subscribe("strict/after", 1); code != 0x01 {
			return fmt.Errorf("SUBACK after the others returned: %#x, want 0x01", code)
		}
		return nil
	})
}

// TestCluster_SharedGroupPrefersConnectedMember checks that a share group
// with offline persistent members on the publisher's node and on a second
// node, and a connected member on a third, gets every message at the
// connected member: none waits in an offline member's queue.
func TestCluster_SharedGroupPrefersConnectedMember(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")

	const filter = "$share/g/offline/#"
	for _, n := range []*clusterNode{n1, n2} {
		away, _ := connectRaw(t, n.broker, "away", v3("offline-member-"+n.name, false))
		away.mustSubscribe(filter, 1)
		away.disconnect()
	}
	onCl, online := newPaho(t, n3.broker, "online-member")
	if tok := onCl.Subscribe(filter, 1, nil); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe the connected member: %v", tok.Error())
	}

	pub, _ := newPaho(t, n1.broker, "offline-pub")
	const total = 100
	for i := range total {
		pahoPublish(t, pub, "offline/x", 1, false, fmt.Sprint(i))
	}
	online.waitCount(t, total, 3*ioTimeout)

	// The offline members find nothing queued when they return.
	for _, n := range []*clusterNode{n1, n2} {
		back, ca := connectRaw(t, n.broker, "back", v3("offline-member-"+n.name, false))
		if !ca.SessionPresent {
			t.Fatalf("offline member on %s lost its session", n.name)
		}
		back.expectNoPublish(quietPeriod)
	}
}
