package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func TestCluster_ThreeNodesFormFromBootstrapExpect(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	leaders := map[string]bool{}
	for _, name := range []string{"n1", "n2", "n3"} {
		st := c.node(name).mustStatus(t)
		leaders[st.Leader] = true
		if len(st.Members) != 3 {
			t.Fatalf("%s sees %d members, want 3: %+v", name, len(st.Members), st.Members)
		}
		for _, m := range st.Members {
			if m.State != "joined" || m.Gossip != "alive" || m.Suffrage != "Voter" {
				t.Errorf("%s sees %s as %s/%s/%s, want joined/alive/Voter", name, m.Name, m.State, m.Gossip, m.Suffrage)
			}
		}
	}
	if len(leaders) != 1 || leaders[""] {
		t.Fatalf("nodes disagree on the leader: %v", leaders)
	}
}

func TestCluster_PublishReachesSubscriberOnAnotherNode(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n3 := c.node("n1"), c.node("n3")

	for _, version := range []byte{4, 5} {
		for qos := byte(0); qos <= 2; qos++ {
			t.Run(fmt.Sprintf("v%d/qos%d", version, qos), func(t *testing.T) {
				topic := fmt.Sprintf("cross/v%d/q%d/leaf", version, qos)
				sub, _ := connectRaw(t, n3.broker, "sub", connectSpec{Version: version, ClientID: fmt.Sprintf("sub-%d-%d", version, qos), Clean: true, Keepalive: 60})
				sub.mustSubscribe(fmt.Sprintf("cross/v%d/+/#", version), 2)
				pub, _ := connectRaw(t, n1.broker, "pub", connectSpec{Version: version, ClientID: fmt.Sprintf("pub-%d-%d", version, qos), Clean: true, Keepalive: 60})
				for i := range 5 {
					pub.publish(topic, qos, false, fmt.Sprintf("m%d", i))
				}
				for i := range 5 {
					m := sub.receive(ioTimeout)
					if m.Topic != topic || m.Payload != fmt.Sprintf("m%d", i) || m.QoS != qos {
						t.Fatalf("message %d: got %s %q QoS %d, want %s %q QoS %d", i, m.Topic, m.Payload, m.QoS, topic, fmt.Sprintf("m%d", i), qos)
					}
				}
				sub.expectNoPublish(quietPeriod)
			})
		}
	}

	t.Run("large payloads", func(t *testing.T) {
		// Twenty messages of 900 KB queue up together: more than the
		// 4 MiB of one gRPC message, so requests must be split by size.
		sub, _ := connectRaw(t, n3.broker, "sub", v3("large-sub", true))
		sub.mustSubscribe("large/#", 1)
		pub, _ := connectRaw(t, n1.broker, "pub", v3("large-pub", true))
		payload := strings.Repeat("x", 900_000)
		for i := range 20 {
			pub.send(encodePublish(4, publishSpec{Topic: "large/x", QoS: 1, ID: uint16(i + 1), Payload: []byte(fmt.Sprint(i) + payload)}))
		}
		for i := range 20 {
			m := sub.receive(3 * ioTimeout)
			if !strings.HasPrefix(m.Payload, fmt.Sprint(i)+"x") || len(m.Payload) != len(fmt.Sprint(i))+len(payload) {
				t.Fatalf("message %d: got %d bytes starting %q", i, len(m.Payload), m.Payload[:min(8, len(m.Payload))])
			}
		}
	})

	t.Run("v5 properties", func(t *testing.T) {
		sub, _ := connectRaw(t, n3.broker, "sub", v5("props-sub", true))
		sub.mustSubscribe("props/#", 1)
		pub, _ := connectRaw(t, n1.broker, "pub", v5("props-pub", true))
		pub.publish("props/a", 1, false, "{}",
			propByte(propPayloadFormat, 1),
			propU32(propMessageExpiry, 3600),
			propString(propContentType, "application/json"),
			propString(propResponseTopic, "reply/here"),
			propString(propCorrelationData, "corr-1"),
			propPair(propUserProperty, "k1", "v1"),
			propPair(propUserProperty, "k2", "v2"),
			propPair(propUserProperty, "k1", "v3"))
		m := sub.receive(ioTimeout)
		checks := []struct {
			id   byte
			want string
		}{
			{propContentType, "application/json"},
			{propResponseTopic, "reply/here"},
			{propCorrelationData, "corr-1"},
		}
		for _, ck := range checks {
			if got, _ := m.Props.str(ck.id); got != ck.want {
				t.Errorf("property %#x = %q, want %q", ck.id, got, ck.want)
			}
		}
		if v, _ := m.Props.u32(propPayloadFormat); v != 1 {
			t.Errorf("payload format = %d, want 1", v)
		}
		if v, ok := m.Props.u32(propMessageExpiry); !ok || v > 3600 || v < 3500 {
			t.Errorf("message expiry = %d (present %v), want about 3600", v, ok)
		}
		var users []string
		for _, v := range m.Props[propUserProperty] {
			users = append(users, v.(string))
		}
		if want := []string{"k1=v1", "k2=v2", "k1=v3"}; !slices.Equal(users, want) {
			t.Errorf("user properties %v, want %v in order", users, want)
		}
	})
}

// routeBeforeSuback runs the invariant 6 check n times: a subscriber on
// subNode gets its SUBACK, and a publish on pubNode at that moment must reach
// it. Every fourth round a second subscriber subscribes while the first
// one's route is still pending, and must get the message too.
func routeBeforeSuback(t *testing.T, subNode, pubNode *clusterNode, rounds int) {
	pub, _ := connectRaw(t, pubNode.broker, "pub", v3("rb-pub", true))
	misses := 0
	for i := range rounds {
		filter := fmt.Sprintf("rb/%d/+", i)
		topic := fmt.Sprintf("rb/%d/x", i)
		first, _ := connectRaw(t, subNode.broker, "first", v3(fmt.Sprintf("rb-a-%d", i), true))
		var second *rawClient
		if i%4 == 3 {
			// The first SUBSCRIBE is in flight; the second arrives while
			// its route is pending and must wait for the same commit.
			first.send(encodeSubscribe(4, 1, []subscription{{Filter: filter, Options: 1}}))
			second, _ = connectRaw(t, subNode.broker, "second", v3(fmt.Sprintf("rb-b-%d", i), true))
			second.mustSubscribe(filter, 1)
		} else {
			first.mustSubscribe(filter, 1)
		}
		pub.publish(topic, 1, false, "now")
		for _, c := range []*rawClient{first, second} {
			if c == nil {
				continue
			}
			m, err := c.next(5 * time.Second)
			for err == nil && m.Type == typeSuback {
				m, err = c.next(5 * time.Second)
			}
			if err != nil || m.Type != typePublish {
				misses++
				t.Errorf("round %d: %s missed the message published right after its SUBACK: %v %v", i, c.name, m, err)
			}
			c.close()
		}
		if misses > 5 {
			t.Fatalf("stopping after %d misses", misses)
		}
	}
}

func TestCluster_RouteBeforeSubackNoMiss(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	start := time.Now()
	rounds := scaled(1000, 10000)
	routeBeforeSuback(t, c.node("n1"), c.node("n2"), rounds)
	t.Logf("%d rounds in %v", rounds, time.Since(start))
}

func TestCluster_RouteBeforeSubackWithSlowApply(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3, ApplyDelay: map[string]time.Duration{"n2": 20 * time.Millisecond}})
	start := time.Now()
	rounds := scaled(1000, 10000)
	routeBeforeSuback(t, c.node("n1"), c.node("n2"), rounds)
	t.Logf("%d rounds in %v", rounds, time.Since(start))
}

// qos1Publisher publishes QoS 1 messages numbered from 0 until stop closes
// and records the numbers whose PUBACK arrived.
type qos1Publisher struct {
	mu    sync.Mutex
	acked []int
}

func (p *qos1Publisher) run(t *testing.T, n *clusterNode, id, topic string, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	c, in := newPaho(t, n.broker, id)
	_ = in
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		tok := c.Publish(topic, 1, false, fmt.Sprintf("%d", i))
		if !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
			continue
		}
		p.mu.Lock()
		p.acked = append(p.acked, i)
		p.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

func TestCluster_KillNodeUnderQoS1LoadLosesNothingAcked(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3, DeadGrace: 2 * time.Second})
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")

	sub, in := newPaho(t, n2.broker, "load-sub")
	pahoSubscribe(t, sub, "load/#", 1)
	victim, _ := newPaho(t, n3.broker, "victim-sub")
	pahoSubscribe(t, victim, "load/#", 1)
	before := n1.mustStatus(t).RemoteRoutes

	var pub qos1Publisher
	stop, done := make(chan struct{}), make(chan struct{})
	go pub.run(t, n1, "load-pub", "load/x", stop, done)
	time.Sleep(time.Second)
	n3.Kill()
	killedAt := time.Now()
	time.Sleep(time.Second)
	close(stop)
	<-done

	pub.mu.Lock()
	acked := append([]int(nil), pub.acked...)
	pub.mu.Unlock()
	if len(acked) < 50 {
		t.Fatalf("only %d messages acknowledged; the load did not run", len(acked))
	}
	in.waitCount(t, len(acked), 3*ioTimeout)
	got := map[string]bool{}
	for _, m := range in.all() {
		got[m.Payload] = true
	}
	for _, i := range acked {
		if !got[fmt.Sprint(i)] {
			t.Errorf("acknowledged message %d never reached the subscriber on n2", i)
		}
	}

	// n3's clean subscription dies with it: its route goes after the grace.
	waitFor(t, 30*time.Second, func() error {
		st, err := n1.status()
		if err != nil {
			return err
		}
		if st.RemoteRoutes >= before {
			return fmt.Errorf("n1 still has %d remote routes, had %d with n3", st.RemoteRoutes, before)
		}
		return nil
	})
	t.Logf("%d messages acknowledged, all delivered; n3's route purged %v after kill -9", len(acked), time.Since(killedAt).Round(100*time.Millisecond))
}

func TestCluster_RestartedNodeGetsQueuedMessagesForPersistentSession(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3, DeadGrace: 2 * time.Second})
	n1, n3 := c.node("n1"), c.node("n3")

	sub, _ := connectRaw(t, n3.broker, "durable", v3("durable-sub", false))
	sub.mustSubscribe("durable/#", 1)
	sub.close()

	for round, wait := range []time.Duration{0, 4 * time.Second} {
		n3.Kill()
		time.Sleep(wait) // 0: within the grace; 4 s: past it
		pub, _ := connectRaw(t, n1.broker, "pub", v3(fmt.Sprintf("durable-pub-%d", round), true))
		const n = 100
		for i := range n {
			if code := pub.publish("durable/x", 1, false, fmt.Sprintf("%d-%d", round, i)); code != 0 {
				t.Fatalf("round %d: PUBACK %d code %#x", round, i, code)
			}
		}
		pub.close()
		n3.Start()
		c.waitReady(60 * time.Second)
		sub, _ = connectRaw(t, n3.broker, "durable", v3("durable-sub", false))
		msgs := sub.receiveN(n, 3*ioTimeout)
		for i, m := range msgs {
			if m.Payload != fmt.Sprintf("%d-%d", round, i) {
				t.Fatalf("round %d: message %d is %q, want %q (lost or out of order)", round, i, m.Payload, fmt.Sprintf("%d-%d", round, i))
			}
		}
		sub.expectNoPublish(quietPeriod)
		sub.close()
	}
}

func TestCluster_QoS2ExactlyOnceWhenReceiverKilledMidForward(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n3 := c.node("n1"), c.node("n3")

	sub, _ := connectRaw(t, n3.broker, "qos2-sub", v3("qos2-sub", false))
	sub.mustSubscribe("eo/#", 2)
	sub.close()

	var acked atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		pub, _ := connectRaw(t, n1.broker, "qos2-pub", v3("qos2-pub", true))
		// At most 800: the subscriber is offline, and its queue holds 1,000.
		for i := 0; i < 800; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if pub.publish("eo/x", 2, false, fmt.Sprint(i)) == 0 {
				acked.Store(int64(i + 1))
			}
		}
	}()
	waitFor(t, 30*time.Second, func() error {
		if acked.Load() < 150 {
			return fmt.Errorf("%d acknowledged", acked.Load())
		}
		return nil
	})
	n3.Kill()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-done
	n3.Start()
	c.waitReady(60 * time.Second)

	total := int(acked.Load())
	sub, _ = connectRaw(t, n3.broker, "qos2-sub", v3("qos2-sub", false))
	seen := map[string]int{}
	for len(seen) < total {
		m := sub.receive(3 * ioTimeout)
		seen[m.Payload]++
	}
	sub.expectNoPublish(quietPeriod)
	for i := range total {
		if n := seen[fmt.Sprint(i)]; n != 1 {
			t.Errorf("QoS 2 message %d delivered %d times, want exactly once", i, n)
		}
	}
	t.Logf("%d QoS 2 messages, each delivered once across a kill -9 of the receiving node", total)
}

func TestCluster_GrowsToFiveWithThreeVoters(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	c.add(4)
	c.add(5)
	c.waitReady(60 * time.Second)
	waitFor(t, 30*time.Second, func() error {
		st, err := c.node("n1").status()
		if err != nil {
			return err
		}
		voters, nonvoters := 0, 0
		for _, m := range st.Members {
			switch m.Suffrage {
			case "Voter":
				voters++
			case "Nonvoter":
				nonvoters++
			}
		}
		if voters != 3 || nonvoters != 2 {
			return fmt.Errorf("%d voters and %d nonvoters, want 3 and 2: %+v", voters, nonvoters, st.Members)
		}
		return nil
	})

	// A nonvoter has the full state: a subscriber there gets a message
	// published on a voter.
	sub, _ := connectRaw(t, c.node("n5").broker, "sub", v3("grow-sub", true))
	sub.mustSubscribe("grow/x", 1)
	pub, _ := connectRaw(t, c.node("n1").broker, "pub", v3("grow-pub", true))
	pub.publish("grow/x", 1, false, "hi")
	if m := sub.receive(ioTimeout); m.Payload != "hi" {
		t.Fatalf("got %q", m.Payload)
	}
}

// TestCluster_FieldBugB23RestartLeavesRoutesCorrect follows field bug B23
// steps 1-3 and 5 (the partition of step 4 belongs to the partition tests).
func TestCluster_FieldBugB23RestartLeavesRoutesCorrect(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")

	s1, _ := connectRaw(t, n2.broker, "s1", v3("b23-s1", true))
	s1.mustSubscribe("rt/#", 1)
	s3, _ := connectRaw(t, n3.broker, "s3", v3("b23-s3", true))
	s3.mustSubscribe("rt/x", 1)

	// Step 2: kill node-3, publish from node-1 at once.
	n3.Kill()
	pub, _ := connectRaw(t, n1.broker, "pub", v3("b23-pub", true))
	for i := range 100 {
		pub.publish("rt/x", 1, false, fmt.Sprint(i))
	}
	s1.receiveN(100, 2*ioTimeout)
	n3.Start()
	c.waitReady(60 * time.Second)
	s3, _ = connectRaw(t, n3.broker, "s3", v3("b23-s3", true))
	s3.mustSubscribe("rt/x", 1)
	pub3, _ := connectRaw(t, n3.broker, "pub3", v3("b23-pub3", true))
	pub.publish("rt/x", 1, false, "from-n1")
	pub3.publish("rt/x", 1, false, "from-n3")
	for _, c := range []*rawClient{s1, s3} {
		got := []string{c.receive(ioTimeout).Payload, c.receive(ioTimeout).Payload}
		slices.Sort(got)
		if !slices.Equal(got, []string{"from-n1", "from-n3"}) {
			t.Fatalf("%s got %v, want one each from n1 and n3", c.name, got)
		}
		c.expectNoPublish(quietPeriod)
	}

	// Step 3: a route that comes and goes leaves no trace on node-1.
	before := n1.mustStatus(t).RemoteRoutes
	s3b, _ := connectRaw(t, n3.broker, "s3b", v3("b23-s3b", true))
	s3b.mustSubscribe("rt/y", 1)
	if got := n1.mustStatus(t).RemoteRoutes; got != before+1 {
		t.Fatalf("n1 has %d remote routes after rt/y, want %d", got, before+1)
	}
	s3b.unsubscribe("rt/y")
	waitFor(t, 10*time.Second, func() error {
		if got := n1.mustStatus(t).RemoteRoutes; got != before {
			return fmt.Errorf("n1 has %d remote routes after the unsubscribe, want %d", got, before)
		}
		return nil
	})

	// Step 5: stop node-1 and node-2 together, start both; a leader is
	// elected and messages flow again.
	var wg sync.WaitGroup
	for _, n := range []*clusterNode{n1, n2} {
		wg.Add(1)
		go func() { defer wg.Done(); n.Stop() }()
	}
	wg.Wait()
	n1.Start()
	n2.Start()
	c.waitReady(60 * time.Second)
	s1, _ = connectRaw(t, n2.broker, "s1", v3("b23-s1", true))
	s1.mustSubscribe("rt/#", 1)
	pub, _ = connectRaw(t, n1.broker, "pub", v3("b23-pub", true))
	pub.publish("rt/x", 1, false, "after")
	for _, c := range []*rawClient{s1, s3} {
		if m := c.receive(2 * ioTimeout); m.Payload != "after" {
			t.Fatalf("%s got %q after the restart of n1 and n2", c.name, m.Payload)
		}
	}
}

func TestCluster_RefusesPlaintextOffLoopback(t *testing.T) {
	t.Parallel()
	if !isStarling() {
		t.Skip("starling only")
	}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--peer-bind", "0.0.0.0:0", "--cluster-bind", "127.0.0.1:0"},
		{"--peer-bind", "127.0.0.1:0", "--cluster-bind", "0.0.0.0:0"},
	} {
		cmd := exec.Command(starlingBin, append([]string{"serve", "--listen", "tcp://127.0.0.1:0",
			"--data-dir", dir, "--node-name", "n1", "--advertise", "127.0.0.1"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("%v: started without TLS and gossip key off loopback:\n%s", args, out)
		}
		text := strings.ToLower(string(out))
		if !strings.Contains(text, "insecure") {
			t.Errorf("%v: the error does not name the insecure flag:\n%s", args, out)
		}
	}
}

func TestCluster_RolesAndGroupsReplicateToEveryNode(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	ctl := func(n *clusterNode, args ...string) (string, error) {
		out, err := exec.Command(starlingBin, append([]string{"ctl", "--http", n.http}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := ctl(c.node("n1"), "role", "put", "sensors", "--rule", "allow:publish:sensors/%c/#"); err != nil {
		t.Fatalf("role put on n1: %v\n%s", err, out)
	}
	if out, err := ctl(c.node("n2"), "group", "put", "fleet", "--role", "sensors"); err != nil {
		t.Fatalf("group put on n2: %v\n%s", err, out)
	}
	// A change returns once the node that made it applied it; the others
	// follow within a Raft round trip.
	for _, name := range []string{"n1", "n2", "n3"} {
		waitFor(t, 5*time.Second, func() error {
			out, err := ctl(c.node(name), "role", "get", "sensors", "-o", "json")
			if err != nil || !strings.Contains(out, "sensors/%c/#") {
				return fmt.Errorf("role get on %s: %v\n%s", name, err, out)
			}
			out, err = ctl(c.node(name), "group", "get", "fleet", "-o", "json")
			if err != nil || !strings.Contains(out, "sensors") {
				return fmt.Errorf("group get on %s: %v\n%s", name, err, out)
			}
			return nil
		})
	}
	if out, err := ctl(c.node("n3"), "role", "delete", "sensors"); err != nil {
		t.Fatalf("role delete on n3: %v\n%s", err, out)
	}
	waitFor(t, 5*time.Second, func() error {
		if out, err := ctl(c.node("n1"), "role", "get", "sensors"); err == nil {
			return fmt.Errorf("role still on n1 after its delete on n3:\n%s", out)
		}
		return nil
	})
}

func TestCluster_ACLChangeOnOneNodeAppliesToClientOnAnother(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")
	ctl := func(n *clusterNode, args ...string) {
		t.Helper()
		out, err := exec.Command(starlingBin, append([]string{"ctl", "--http", n.http}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ctl %v on %s: %v\n%s", args, n.name, err, out)
		}
	}
	ctl(n1, "role", "put", "writer", "--rule", "allow:publish:allowed/#")
	req, _ := http.NewRequest(http.MethodPut, "http://"+n1.http+"/api/v1/users/dev",
		strings.NewReader(`{"password":"a-long-enough-password","roles":["writer"]}`))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT user on n1: %s", resp.Status)
	}

	user, pass := "dev", "a-long-enough-password"
	var dev *rawClient
	waitFor(t, 10*time.Second, func() error {
		cl := dialRaw(t, n3.broker, "dev", 5)
		ca := cl.connect(connectSpec{Version: 5, ClientID: "acl-dev", Clean: true, Keepalive: 60, Username: &user, Password: &pass})
		if ca.Code != 0 {
			cl.close()
			return fmt.Errorf("CONNACK %#x on n3", ca.Code)
		}
		dev = cl
		return nil
	})
	if code := dev.publish("allowed/x", 1, false, "ok"); code != 0 {
		t.Fatalf("publish to allowed/x: reason %#x, want 0", code)
	}
	if code := dev.publish("other/x", 1, false, "no"); code != 0x87 {
		t.Fatalf("publish to other/x before the change: reason %#x, want 0x87", code)
	}

	// The change is made on n2; the client stays connected to n3.
	ctl(n2, "role", "put", "writer", "--rule", "allow:publish:allowed/#", "--rule", "allow:publish:other/#")
	waitFor(t, 10*time.Second, func() error {
		if code := dev.publish("other/x", 1, false, "yes"); code != 0 {
			return fmt.Errorf("publish to other/x after the change: reason %#x", code)
		}
		return nil
	})
}

func TestCluster_SharedGroupAcrossNodesGetsEachMessageOnce(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")

	// Members on n2 and n3; the publisher's node n1 has none, so it picks
	// among the nodes that do.
	var members []*inbox
	for i, n := range []*clusterNode{n2, n3} {
		cl, in := newPaho(t, n.broker, fmt.Sprintf("member-%d", i))
		// paho files the SUBACK under the filter without its $share
		// prefix, so pahoSubscribe cannot check the grant.
		if tok := cl.Subscribe("$share/g/shared/#", 1, nil); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
			t.Fatalf("subscribe member %d: %v", i, tok.Error())
		}
		members = append(members, in)
	}
	pub, _ := newPaho(t, n1.broker, "shared-pub")
	total := scaled(3000, 10000)
	for i := range total {
		tok := pub.Publish("shared/x", 1, false, fmt.Sprint(i))
		if !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	waitFor(t, 3*ioTimeout, func() error {
		if got := members[0].count() + members[1].count(); got < total {
			return fmt.Errorf("group received %d of %d", got, total)
		}
		return nil
	})
	time.Sleep(quietPeriod)
	seen := map[string]int{}
	for _, in := range members {
		for _, m := range in.all() {
			seen[m.Payload]++
		}
	}
	for i := range total {
		if n := seen[fmt.Sprint(i)]; n != 1 {
			t.Errorf("message %d reached the group %d times, want once", i, n)
		}
	}
	if members[0].count() == 0 || members[1].count() == 0 {
		t.Errorf("one node's member got nothing: %d and %d", members[0].count(), members[1].count())
	}
	t.Logf("%d messages: %d to the member on n2, %d to the member on n3", total, members[0].count(), members[1].count())
}

func TestCluster_NodeLeavePurgesRoutesAndRemovesVoter(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n3 := c.node("n1"), c.node("n3")

	sub, _ := connectRaw(t, n3.broker, "sub", v3("leaver-sub", false))
	sub.mustSubscribe("leave/#", 1)
	before := n1.mustStatus(t).RemoteRoutes

	resp, err := httpClient.Post("http://"+n3.http+"/api/v1/node/leave", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v1/node/leave on n3: %s", resp.Status)
	}
	st := n1.mustStatus(t)
	if st.RemoteRoutes >= before {
		t.Errorf("n1 still has %d remote routes after n3 left, had %d", st.RemoteRoutes, before)
	}
	for _, m := range st.Members {
		if m.Name == "n3" && (m.State != "left" || m.Suffrage != "") {
			t.Errorf("n1 sees n3 as %s with suffrage %q, want left and out of raft", m.State, m.Suffrage)
		}
	}
}

// TestCluster_FieldBugB21SharedGroupOneCopy follows field bug B21: a shared
// group with a member on each node gets each message once, also after a
// member's node restarts and after a member leaves.
func TestCluster_FieldBugB21SharedGroupOneCopy(t *testing.T) {
	t.Parallel()
	c := startCluster(t, clusterOptions{Nodes: 3})
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")

	member := func(n *clusterNode, id string) (mqtt.Client, *inbox) {
		cl, in := newPaho(t, n.broker, id)
		if tok := cl.Subscribe("$share/g/jobs", 1, nil); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
			t.Fatalf("%s: subscribe: %v", id, tok.Error())
		}
		return cl, in
	}
	_, sa := member(n1, "b21-sa")
	_, sb := member(n2, "b21-sb")
	sc, scIn := member(n3, "b21-sc")
	plainCl, plain := newPaho(t, n3.broker, "b21-plain")
	pahoSubscribe(t, plainCl, "jobs", 1)

	publish := func(n *clusterNode, id, prefix string, count int) {
		pub, _ := newPaho(t, n.broker, id)
		for i := range count {
			pahoPublish(t, pub, "jobs", 1, false, fmt.Sprintf("%s-%d", prefix, i))
		}
	}
	groupGot := func(prefix string, members ...*inbox) map[string]int {
		got := map[string]int{}
		for _, in := range members {
			for _, m := range in.all() {
				if strings.HasPrefix(m.Payload, prefix+"-") {
					got[m.Payload]++
				}
			}
		}
		return got
	}
	exactlyOnce := func(step, prefix string, count int, members ...*inbox) {
		t.Helper()
		waitFor(t, 3*ioTimeout, func() error {
			if got := len(groupGot(prefix, members...)); got < count {
				return fmt.Errorf("%s: the group got %d of %d", step, got, count)
			}
			return nil
		})
		time.Sleep(quietPeriod)
		got := groupGot(prefix, members...)
		for i := range count {
			if n := got[fmt.Sprintf("%s-%d", prefix, i)]; n != 1 {
				t.Errorf("%s: message %d reached the group %d times, want once", step, i, n)
			}
		}
	}

	// Step 2.
	publish(n1, "b21-pub1", "s2", 300)
	exactlyOnce("step 2", "s2", 300, sa, sb, scIn)
	plain.waitCount(t, 300, 3*ioTimeout)

	// Step 3: node 2 is killed and restarted; its member comes back.
	n2.Kill()
	n2.Start()
	c.waitReady(60 * time.Second)
	_, sb2 := member(n2, "b21-sb")
	publish(n2, "b21-pub2", "s3", 100)
	exactlyOnce("step 3", "s3", 100, sa, sb2, scIn)

	// Step 4: the member on node 3 leaves; node 3 has none, so it hands
	// each message to a node that has one.
	sc.Disconnect(250)
	publish(n3, "b21-pub3", "s4", 100)
	exactlyOnce("step 4", "s4", 100, sa, sb2)
}
