package e2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// retainedValue subscribes c to topic, returns the retained message it
// gets within wait, and unsubscribes. ok is false when none arrives.
func retainedValue(c *rawClient, topic string, wait time.Duration) (payload string, ok bool) {
	c.t.Helper()
	c.pending = slices.DeleteFunc(c.pending, func(p *packet) bool { return p.Type == typePublish })
	c.mustSubscribe(topic, 0)
	defer c.unsubscribe(topic)
	deadline := time.Now().Add(wait)
	for {
		p, err := c.next(time.Until(deadline))
		if isTimeout(err) {
			return "", false
		}
		if err != nil {
			c.t.Fatalf("%s: reading the retained message of %q: %v", c.name, topic, err)
		}
		if p.Type != typePublish {
			c.pending = append(c.pending, p)
			continue
		}
		m, err := decodePublish(c.version, p)
		if err != nil {
			c.t.Fatalf("%s: %v", c.name, err)
		}
		if m.Retain && m.Topic == topic {
			return m.Payload, true
		}
	}
}

// waitRetained polls c until the retained message of topic is want ("" for
// none) and returns how long that took.
func waitRetained(t *testing.T, c *rawClient, topic, want string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var got string
	var ok bool
	for time.Since(start) < timeout {
		wait := 200 * time.Millisecond
		if want == "" {
			wait = quietPeriod
		}
		got, ok = retainedValue(c, topic, wait)
		if (want == "" && !ok) || (ok && got == want) {
			return time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s: retained %q = %q (present %v) after %v, want %q", c.name, topic, got, ok, timeout, want)
	return 0
}

func TestCluster_RetainedSetOnOneNodeSeenEverywhere(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")

	pub, _ := connectRaw(t, n2.broker, "pub", v3("ret-pub", true))
	if code := pub.publish("ret/a", 1, true, "v1"); code != 0 {
		t.Fatalf("PUBACK code %#x", code)
	}
	sub3, _ := connectRaw(t, n3.broker, "sub3", v5("ret-sub3", true))
	waitRetained(t, sub3, "ret/a", "v1", 10*time.Second)

	// A node that joins later copies the retained set before it is ready.
	n4 := c.add(4)
	c.waitReady(60 * time.Second)
	sub4, _ := connectRaw(t, n4.broker, "sub4", v5("ret-sub4", true))
	if got, ok := retainedValue(sub4, "ret/a", 2*time.Second); !ok || got != "v1" {
		t.Fatalf("n4 right after ready: retained ret/a = %q (present %v), want v1", got, ok)
	}
	st := n4.mustStatus(t)
	t.Logf("n4 status ready=%v", st.Ready)

	// A delete on n3 reaches every node.
	del, _ := connectRaw(t, n3.broker, "del", v3("ret-del", true))
	if code := del.publish("ret/a", 1, true, ""); code != 0 {
		t.Fatalf("PUBACK of the delete: code %#x", code)
	}
	for _, n := range []*clusterNode{n1, n2, n3, n4} {
		sub, _ := connectRaw(t, n.broker, "sub-"+n.name, v3("ret-del-check-"+n.name, true))
		waitRetained(t, sub, "ret/a", "", 10*time.Second)
		sub.close()
	}
}

func TestCluster_RetainedConcurrentWritesConverge(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	nodes := []*clusterNode{c.node("n1"), c.node("n2"), c.node("n3")}

	const rounds = 200
	var wg sync.WaitGroup
	for _, n := range nodes[:2] {
		pub, _ := connectRaw(t, n.broker, "pub-"+n.name, v3("race-"+n.name, true))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				pub.publish("race/x", 1, true, fmt.Sprintf("%s-%d", n.name, i))
			}
		}()
	}
	wg.Wait()

	readers := make([]*rawClient, len(nodes))
	for i, n := range nodes {
		readers[i], _ = connectRaw(t, n.broker, "read-"+n.name, v3("race-read-"+n.name, true))
	}
	var values []string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		values = values[:0]
		for _, r := range readers {
			v, _ := retainedValue(r, "race/x", time.Second)
			values = append(values, v)
		}
		if values[0] != "" && values[0] == values[1] && values[1] == values[2] {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if values[0] == "" || values[0] != values[1] || values[1] != values[2] {
		t.Fatalf("retained race/x per node = %q, want one value everywhere", values)
	}
	if want1, want2 := fmt.Sprintf("n1-%d", rounds-1), fmt.Sprintf("n2-%d", rounds-1); values[0] != want1 && values[0] != want2 {
		t.Errorf("converged on %q, want the last write of one publisher (%s or %s)", values[0], want1, want2)
	}
}

func TestCluster_RetainedKilledNodeGetsChangesAfterRestart(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n3 := c.node("n1"), c.node("n3")

	pub, _ := connectRaw(t, n1.broker, "pub", v3("kill-pub", true))
	if code := pub.publish("kill/gone", 1, true, "old"); code != 0 {
		t.Fatalf("PUBACK code %#x", code)
	}
	sub3, _ := connectRaw(t, n3.broker, "sub3", v3("kill-sub3", true))
	waitRetained(t, sub3, "kill/gone", "old", 10*time.Second)
	sub3.close()

	n3.Kill()
	const topics = 20
	for i := range topics {
		if code := pub.publish(fmt.Sprintf("kill/t%d", i), byte(i%3), true, fmt.Sprintf("v%d", i)); code != 0 {
			t.Fatalf("PUBACK %d code %#x", i, code)
		}
	}
	if code := pub.publish("kill/gone", 1, true, ""); code != 0 {
		t.Fatalf("PUBACK of the delete: code %#x", code)
	}
	n3.Start()
	c.waitReady(60 * time.Second)

	// Well within the 30 s digest interval: the outbox resend brings them.
	sub3, _ = connectRaw(t, n3.broker, "sub3", v3("kill-sub3b", true))
	for i := range topics {
		waitRetained(t, sub3, fmt.Sprintf("kill/t%d", i), fmt.Sprintf("v%d", i), 10*time.Second)
	}
	waitRetained(t, sub3, "kill/gone", "", 10*time.Second)
}

func TestCluster_RetainedConvergenceTime(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1 := c.node("n1")
	pub, _ := connectRaw(t, n1.broker, "pub", v3("conv-pub", true))
	readers := []*rawClient{}
	for _, name := range []string{"n2", "n3"} {
		r, _ := connectRaw(t, c.node(name).broker, "read-"+name, v3("conv-read-"+name, true))
		readers = append(readers, r)
	}

	const writes = 100
	times := make([]time.Duration, 0, writes)
	for i := range writes {
		want := fmt.Sprintf("w%d", i)
		start := time.Now()
		if code := pub.publish("conv/x", 1, true, want); code != 0 {
			t.Fatalf("PUBACK %d code %#x", i, code)
		}
		for _, r := range readers {
			waitRetained(t, r, "conv/x", want, 10*time.Second)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	t.Logf("retained convergence on 2 other nodes after a QoS 1 write (PUBLISH to seen by a new subscriber on both), %d writes: p50 %v, p99 %v, max %v",
		writes, times[writes/2], times[writes*99/100], times[writes-1])
}
