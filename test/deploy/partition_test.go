package deploy

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Bounds and timings of the partition test.
const (
	// partitionLength is how long starling-3 stays cut off from the
	// cluster network. With the default lan profile, gossip declares a
	// node dead after 1 to 2 s of detection and 4 to 12 s of suspicion
	// (docs/cluster.md, Timings), so the majority commits its death
	// within this time.
	partitionLength = 20 * time.Second
	// partitionPublishInterval paces each publisher: at most about 25
	// messages a second, each waiting for its PUBACK. The messages that
	// one side queues for the other during partitionLength (about 500)
	// reach the persistent subscriber of the other side in one burst at
	// the heal, and must fit in its session queue together with the live
	// messages: a session queue over limits.max_queued_messages (default
	// 1000) drops its oldest message, although the publisher got a PUBACK
	// for it.
	partitionPublishInterval = 40 * time.Millisecond
	// partitionMaxMessages caps the messages of each publisher.
	partitionMaxMessages = 10000
	// partitionLoadAfterHeal is how long the publishers go on after the
	// network is reconnected, so that load runs across the heal.
	partitionLoadAfterHeal = 5 * time.Second
	// partitionSubackBound is the longest a SUBACK may take on either side
	// during the partition. A first subscriber waits for its route to
	// commit. On the majority it waits at most the route wait (2 s) for
	// the unreachable node. On the minority it waits until the node has
	// had no leader for two election timeouts (2 s with the lan profile),
	// and the node finds the leader gone after a heartbeat timeout (1 s).
	partitionSubackBound = 5 * time.Second
	// partitionHealTimeout bounds the wait, from the reconnect, for the
	// members, the leader, the outboxes and the routes to converge.
	partitionHealTimeout = 60 * time.Second
	// partitionDeliveryTimeout bounds the wait, after convergence, for
	// both persistent subscribers to receive every acknowledged message.
	partitionDeliveryTimeout = 30 * time.Second
	// partitionRetainedSyncTimeout bounds the wait for a digest comparison
	// by starling-3 after the heal: the retained sync interval is 30 s
	// (cluster.DefaultRetainedSyncInterval, not configurable from serve)
	// and a digest call may take up to 10 s.
	partitionRetainedSyncTimeout = 45 * time.Second
	// retainedProbeWait is how long a new subscriber waits for a retained
	// message before it concludes there is none.
	retainedProbeWait = 2 * time.Second
)

// Topics of the partition test.
const (
	// dataFilter matches the topic of each load publisher, dataTopicPrefix
	// followed by the publisher's node name.
	dataFilter      = "partition/data/#"
	dataTopicPrefix = "partition/data/"
	// localFilter matches topics that only starling-3's clients use.
	localFilter = "partition/local/#"
	// minorityFilter is a second filter subscribed on starling-3 once it
	// names no leader.
	minorityFilter = "partition/minority/#"
	// majorityFilter is subscribed on starling-2 during the partition.
	majorityFilter = "partition/majority/#"
	// deletedTopic holds a retained message set before the partition and
	// deleted on starling-1 during it.
	deletedTopic = "partition/retained/deleted"
	// minorityRetainedTopic holds a retained message set on starling-3
	// during the partition.
	minorityRetainedTopic = "partition/retained/minority"
)

// TestPartition_MinorityHeals cuts starling-3 off the cluster network for
// partitionLength under QoS 1 load from a publisher on starling-1 and one
// on starling-3, with a persistent subscriber on each of those nodes.
// During the partition each side must keep serving its clients and the
// majority must keep committing routes. After the heal every acknowledged
// message must reach both persistent subscribers, the nodes must agree on
// members and leader, the outboxes must drain, the route counts converge,
// and retained writes and deletes of both sides must win on every node.
func TestPartition_MinorityHeals(t *testing.T) {
	t.Parallel()
	start := time.Now()
	pc := startPartitionCluster(t)
	n1, n2, n3 := pc.nodes[0], pc.nodes[1], pc.nodes[2]
	t.Logf("three nodes on two networks ready in %v", time.Since(start).Round(time.Millisecond))

	// Persistent subscribers on both sides of the coming partition. Their
	// routes commit before the SUBACK.
	subscribers := map[string]*sequenceSubscriber{
		n1.name: newSequenceSubscriber(n1.mqttURL, "partition-subscriber-1"),
		n3.name: newSequenceSubscriber(n3.mqttURL, "partition-subscriber-3"),
	}
	for _, s := range subscribers {
		if err := s.connect(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.disconnect)
		if err := s.subscribe(dataFilter); err != nil {
			t.Fatal(err)
		}
	}
	// The clean subscriber of starling-3 connects now and subscribes
	// during the partition.
	local := mustConnect(t, connectOptions{URL: n3.mqttURL, ClientID: "partition-local-3"})

	retainer1 := mustConnect(t, connectOptions{URL: n1.mqttURL, ClientID: "partition-retainer-1"})
	publish(t, retainer1, deletedTopic, "set before the partition", true)
	waitFor(t, readyTimeout, func() error {
		return expectRetained(n3, deletedTopic, "set before the partition")
	})

	publishers := map[string]*sequencePublisher{}
	for _, n := range []*partitionNode{n1, n3} {
		publishers[n.name] = &sequencePublisher{url: n.mqttURL, clientID: "partition-publisher-" + n.name,
			topic: dataTopicPrefix + n.name, interval: partitionPublishInterval, max: partitionMaxMessages}
	}
	ctx, cancel := context.WithCancel(context.Background())
	loadDone := make(chan struct{}, len(publishers))
	for _, p := range publishers {
		go func() {
			defer func() { loadDone <- struct{}{} }()
			p.run(ctx)
		}()
	}
	var stopped atomic.Bool
	stopLoad := func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		for range publishers {
			<-loadDone
		}
	}
	t.Cleanup(stopLoad)
	for _, p := range publishers {
		p.waitAcked(t, 50, readyTimeout)
	}

	// Cut starling-3 off.
	ipBefore := pc.clusterNetIP(t, n3)
	ackedAtCut := map[string]int{}
	for name, p := range publishers {
		ackedAtCut[name] = p.ackedCount()
	}
	docker(t, "network", "disconnect", pc.clusterNet, n3.container.name)
	cut := time.Now()
	t.Logf("disconnected %s (%s) from the cluster network", n3.name, ipBefore)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	timelineDone := make(chan partitionTimeline, 1)
	go func() { timelineDone <- watchPartition(watchCtx, cut, n1, n3) }()
	t.Cleanup(stopWatch)

	// A first subscriber on the minority right after the cut, while
	// starling-3 may still believe in the old leader.
	subackStart := time.Now()
	localDeliveries := subscribeChannel(t, local, localFilter)
	subackAtCut := time.Since(subackStart)
	if subackAtCut > partitionSubackBound {
		t.Errorf("SUBACK on %s right after the cut took %v, expected at most %v", n3.name, subackAtCut, partitionSubackBound)
	}

	waitFor(t, 10*time.Second, func() error {
		st, err := n3.status()
		if err != nil {
			return err
		}
		if st.Leader != "" {
			return fmt.Errorf("%s still names leader %s", n3.name, st.Leader)
		}
		return nil
	})
	var majorityLeader string
	waitFor(t, 10*time.Second, func() error {
		s1, err := n1.status()
		if err != nil {
			return err
		}
		s2, err := n2.status()
		if err != nil {
			return err
		}
		if s1.Leader == "" || s1.Leader == n3.name || s1.Leader != s2.Leader {
			return fmt.Errorf("the majority has no common leader: %s names %q, %s names %q", n1.name, s1.Leader, n2.name, s2.Leader)
		}
		majorityLeader = s1.Leader
		return nil
	})
	t.Logf("the majority's leader during the partition is %s", majorityLeader)

	// A first subscriber on the minority once it names no leader: the
	// SUBACK goes out at once and the route change waits for the heal.
	subackStart = time.Now()
	minorityDeliveries := subscribeChannel(t, local, minorityFilter)
	subackLeaderless := time.Since(subackStart)
	if subackLeaderless > partitionSubackBound {
		t.Errorf("SUBACK on %s without a leader took %v, expected at most %v", n3.name, subackLeaderless, partitionSubackBound)
	}

	// The minority serves its own clients: a client that connects during
	// the partition publishes to starling-3's clean subscriber.
	connectStart := time.Now()
	localPublisher := mustConnect(t, connectOptions{URL: n3.mqttURL, ClientID: "partition-local-publisher-3"})
	connackMinority := time.Since(connectStart)
	for i := range 10 {
		topic := "partition/local/" + strconv.Itoa(i)
		publish(t, localPublisher, topic, "from "+n3.name, false)
		expectMessage(t, localDeliveries, received{Topic: topic, Payload: "from " + n3.name})
	}
	publish(t, localPublisher, "partition/minority/x", "from "+n3.name, false)
	expectMessage(t, minorityDeliveries, received{Topic: "partition/minority/x", Payload: "from " + n3.name})

	// The majority commits routes: a first subscriber on starling-2 gets
	// what a client of starling-1 publishes after the SUBACK.
	majority := mustConnect(t, connectOptions{URL: n2.mqttURL, ClientID: "partition-majority-2"})
	subackStart = time.Now()
	majorityDeliveries := subscribeChannel(t, majority, majorityFilter)
	subackMajority := time.Since(subackStart)
	if subackMajority > partitionSubackBound {
		t.Errorf("SUBACK on %s during the partition took %v, expected at most %v", n2.name, subackMajority, partitionSubackBound)
	}
	publish(t, retainer1, "partition/majority/x", "from "+n1.name, false)
	expectMessage(t, majorityDeliveries, received{Topic: "partition/majority/x", Payload: "from " + n1.name})
	t.Logf("during the partition: SUBACK on %s %v right after the cut and %v without a leader, CONNACK %v; SUBACK on %s %v",
		n3.name, subackAtCut.Round(time.Millisecond), subackLeaderless.Round(time.Millisecond), connackMinority.Round(time.Millisecond),
		n2.name, subackMajority.Round(time.Millisecond))

	// Retained writes on both sides: a delete on the majority, a new
	// message on the minority. Each side serves its own write at once.
	publish(t, retainer1, deletedTopic, "", true)
	retainer3 := mustConnect(t, connectOptions{URL: n3.mqttURL, ClientID: "partition-retainer-3"})
	publish(t, retainer3, minorityRetainedTopic, "set on "+n3.name+" during the partition", true)
	if err := expectNoRetained(n1, deletedTopic); err != nil {
		t.Errorf("after the delete on %s: %v", n1.name, err)
	}
	if err := expectRetained(n3, minorityRetainedTopic, "set on "+n3.name+" during the partition"); err != nil {
		t.Errorf("after the write on %s: %v", n3.name, err)
	}

	// Each side delivers its own publisher's messages to its persistent
	// subscriber during the partition.
	for _, n := range []*partitionNode{n1, n3} {
		acked, _, _ := publishers[n.name].results()
		topic := dataTopicPrefix + n.name
		waitFor(t, 10*time.Second, func() error {
			if missing := subscribers[n.name].missing(topic, acked); len(missing) > 0 {
				return fmt.Errorf("%d messages of %s's publisher not delivered to its subscriber on the same node during the partition; first ones: %v",
					len(missing), n.name, missing[:min(len(missing), 10)])
			}
			return nil
		})
	}

	if s1, err := n1.status(); err == nil {
		t.Logf("%s during the partition: gossip says %s is %s, outbox toward it holds %d messages",
			n1.name, n3.name, s1.gossipOf(n3.name), s1.outboxDepth(n3.name))
	}
	if s3, err := n3.status(); err == nil {
		t.Logf("%s during the partition: Raft state %s, outbox toward %s holds %d messages",
			n3.name, s3.RaftState, n1.name, s3.outboxDepth(n1.name))
	}
	if rest := partitionLength - time.Since(cut); rest > 0 {
		time.Sleep(rest)
	} else {
		t.Logf("the checks during the partition took %v, longer than the planned %v", time.Since(cut).Round(time.Millisecond), partitionLength)
	}

	// Heal.
	ackedAtHeal := map[string]int{}
	for name, p := range publishers {
		ackedAtHeal[name] = p.ackedCount()
	}
	stopWatch()
	timeline := <-timelineDone
	t.Logf("after the cut: %s named no leader after %v; %s's gossip listed %s as gone after %v and its record as dead after %v",
		n3.name, timeline.leaderLost, n1.name, n3.name, timeline.gossipGone, timeline.deathCommitted)
	docker(t, "network", "connect", "--alias", n3.name, pc.clusterNet, n3.container.name)
	heal := time.Now()
	partitioned := heal.Sub(cut)
	// The node resolved its --advertise name once at start, so gossip
	// still announces the old address.
	if ipAfter := pc.clusterNetIP(t, n3); ipAfter != ipBefore {
		t.Fatalf("%s came back on the cluster network as %s, not %s: Docker gave it a new address, which its gossip does not announce",
			n3.name, ipAfter, ipBefore)
	}
	t.Logf("reconnected %s after %v", n3.name, partitioned.Round(time.Millisecond))

	// Retained writes of both sides win everywhere after the heal. The
	// probes run beside the other checks so that the time is measured
	// from the heal.
	type retainedResult struct {
		converged time.Duration
		err       error
	}
	retainedDone := make(chan retainedResult, 1)
	retainedCtx, stopRetained := context.WithCancel(context.Background())
	t.Cleanup(stopRetained)
	go func() {
		var err error
		for deadline := heal.Add(partitionHealTimeout); time.Now().Before(deadline) && retainedCtx.Err() == nil; sleepContext(retainedCtx, 100*time.Millisecond) {
			if err = expectNoRetained(n3, deletedTopic); err != nil {
				continue
			}
			if err = expectRetained(n1, minorityRetainedTopic, "set on "+n3.name+" during the partition"); err != nil {
				continue
			}
			retainedDone <- retainedResult{converged: time.Since(heal)}
			return
		}
		retainedDone <- retainedResult{err: err}
	}()

	time.Sleep(partitionLoadAfterHeal)
	stopLoad()

	// Convergence: the first moment each condition held, and the moment
	// all held together.
	conditions := []struct {
		name  string
		check func([]*clusterStatus) error
	}{
		{"members and leader agree", membersAgree},
		{"outboxes drained", outboxesDrained},
		{"remote routes converged", routesConverged},
	}
	firstMet := make([]time.Duration, len(conditions))
	lastErr := make([]error, len(conditions))
	var converged time.Duration
	for deadline := heal.Add(partitionHealTimeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		all, err := pc.statuses()
		if err != nil {
			for i := range lastErr {
				lastErr[i] = err
			}
			continue
		}
		met := 0
		for i, c := range conditions {
			lastErr[i] = c.check(all)
			if lastErr[i] == nil {
				met++
				if firstMet[i] == 0 {
					firstMet[i] = time.Since(heal)
				}
			}
		}
		if met == len(conditions) {
			converged = time.Since(heal)
			break
		}
	}
	for i, c := range conditions {
		if lastErr[i] != nil {
			t.Errorf("%s: not within %v of the heal: %v", c.name, partitionHealTimeout, lastErr[i])
		} else {
			t.Logf("heal to %s: %v", c.name, firstMet[i].Round(time.Millisecond))
		}
	}
	if converged > 0 {
		t.Logf("heal to all converged: %v (the publishers ran for the first %v)", converged.Round(time.Millisecond), partitionLoadAfterHeal)
	}

	// Every message acknowledged on either side reaches both persistent
	// subscribers.
	for deadline := time.Now().Add(partitionDeliveryTimeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		missing := 0
		for _, p := range publishers {
			acked, _, _ := p.results()
			for _, s := range subscribers {
				missing += len(s.missing(p.topic, acked))
			}
		}
		if missing == 0 {
			t.Logf("heal to every acknowledged message delivered: %v", time.Since(heal).Round(time.Millisecond))
			break
		}
	}
	for _, n := range pc.nodes {
		if dropped, err := n.droppedQueueFull(); err != nil {
			t.Error(err)
		} else if dropped > 0 {
			t.Errorf("%s dropped %d messages at a full session queue (starling_messages_dropped_total{reason=\"queue_full\"})", n.name, dropped)
		}
	}
	for _, pub := range []*partitionNode{n1, n3} {
		p := publishers[pub.name]
		acked, failed, publishErr := p.results()
		during := ackedAtHeal[pub.name] - ackedAtCut[pub.name]
		if during == 0 {
			t.Errorf("the publisher on %s got no PUBACK during the partition (last error %v)", pub.name, publishErr)
		}
		for _, sub := range []*partitionNode{n1, n3} {
			s := subscribers[sub.name]
			missing := s.missing(p.topic, acked)
			distinct, duplicates := s.counts(p.topic)
			t.Logf("publisher on %s -> subscriber on %s: %d acknowledged (%d during the partition), %d without PUBACK, %d received, %d lost, %d duplicated",
				pub.name, sub.name, len(acked), during, failed, distinct, len(missing), duplicates)
			if len(missing) > 0 {
				t.Errorf("%d messages acknowledged on %s never reached the subscriber on %s within %v after convergence; first ones: %v",
					len(missing), pub.name, sub.name, partitionDeliveryTimeout, missing[:min(len(missing), 20)])
			}
		}
	}
	for name, s := range subscribers {
		if invalid := s.invalidPayloads(); len(invalid) > 0 {
			t.Errorf("subscriber on %s received %d messages that no publisher sent: %q", name, len(invalid), invalid[:min(len(invalid), 5)])
		}
		if lost, err := s.connectionLosses(); lost > 0 {
			t.Errorf("subscriber on %s lost its connection %d times (last: %v); cutting the cluster network must leave clients connected", name, lost, err)
		}
	}

	// The route that starling-3 queued during the partition is committed
	// after the heal: a publish on starling-1 reaches its clean subscriber.
	publish(t, retainer1, "partition/local/after-heal", "from "+n1.name, false)
	expectMessage(t, localDeliveries, received{Topic: "partition/local/after-heal", Payload: "from " + n1.name})

	if r := <-retainedDone; r.err != nil {
		t.Errorf("retained messages not converged within %v of the heal: %v", partitionHealTimeout, r.err)
	} else {
		t.Logf("heal to the retained delete served on %s and the retained write on %s: %v (each probe waits %v for no message)",
			n3.name, n1.name, r.converged.Round(time.Millisecond), retainedProbeWait)
	}

	// A digest comparison of starling-3 with a peer after both retained
	// writes arrived everywhere must not bring the deleted message back.
	s3, err := n3.status()
	if err != nil {
		t.Fatal(err)
	}
	syncsBefore := s3.Retained.Syncs
	syncStart := time.Now()
	waitFor(t, partitionRetainedSyncTimeout, func() error {
		st, err := n3.status()
		if err != nil {
			return err
		}
		if st.Retained.Syncs <= syncsBefore {
			return fmt.Errorf("%s completed no retained sync since the retained messages converged (%d syncs)", n3.name, st.Retained.Syncs)
		}
		return nil
	})
	t.Logf("%s completed a retained digest sync %v after the heal (waited %v)",
		n3.name, time.Since(heal).Round(time.Millisecond), time.Since(syncStart).Round(time.Millisecond))
	for _, n := range pc.nodes {
		if err := expectNoRetained(n, deletedTopic); err != nil {
			t.Errorf("after a retained sync: %s: %v", n.name, err)
		}
		if err := expectRetained(n, minorityRetainedTopic, "set on "+n3.name+" during the partition"); err != nil {
			t.Errorf("after a retained sync: %s: %v", n.name, err)
		}
	}
	if all, err := pc.statuses(); err == nil {
		for _, st := range all {
			t.Logf("%s retained replication: %d applied, %d repairs, %d syncs", st.Name, st.Retained.Applied, st.Retained.Repairs, st.Retained.Syncs)
		}
	}
	t.Logf("partition test took %v", time.Since(start).Round(time.Millisecond))
}

var retainedProbes atomic.Int64

// retainedOf subscribes a new clean client of n to topic and returns the
// retained message it receives within retainedProbeWait, or nil.
func retainedOf(n *partitionNode, topic string) (*received, error) {
	clientID := fmt.Sprintf("partition-retained-probe-%d", retainedProbes.Add(1))
	client, _, err := connectClient(n.mqttURL, clientID, true, nil)
	if err != nil {
		return nil, err
	}
	defer client.Disconnect(250)
	ch := make(chan received, 1)
	err = subscribeQoS1(client, topic, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case ch <- received{Topic: m.Topic(), Payload: string(m.Payload()), Retained: m.Retained()}:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	select {
	case m := <-ch:
		return &m, nil
	case <-time.After(retainedProbeWait):
		return nil, nil
	}
}

// expectRetained returns nil when a new subscriber of n to topic gets the
// retained message payload.
func expectRetained(n *partitionNode, topic, payload string) error {
	m, err := retainedOf(n, topic)
	if err != nil {
		return err
	}
	want := received{Topic: topic, Payload: payload, Retained: true}
	if m == nil {
		return fmt.Errorf("a new subscriber to %s on %s got no retained message, expected %q", topic, n.name, payload)
	}
	if *m != want {
		return fmt.Errorf("a new subscriber to %s on %s got %+v, expected %+v", topic, n.name, *m, want)
	}
	return nil
}

// expectNoRetained returns nil when a new subscriber of n to topic gets no
// message within retainedProbeWait.
func expectNoRetained(n *partitionNode, topic string) error {
	m, err := retainedOf(n, topic)
	if err != nil {
		return err
	}
	if m != nil {
		return fmt.Errorf("a new subscriber to %s on %s got %+v, expected no retained message", topic, n.name, *m)
	}
	return nil
}

// partitionTimeline is when each side noticed the partition, measured from
// the cut; zero for what did not happen before the heal.
type partitionTimeline struct {
	// leaderLost is when the minority node first named no leader.
	leaderLost time.Duration
	// gossipGone is when the majority node's gossip first listed the
	// minority node as gone.
	gossipGone time.Duration
	// deathCommitted is when the majority node first listed the minority
	// node's record as dead.
	deathCommitted time.Duration
}

// watchPartition polls the status of majority and minority every 100 ms
// until ctx ends and returns when each noticed the partition.
func watchPartition(ctx context.Context, cut time.Time, majority, minority *partitionNode) partitionTimeline {
	var tl partitionTimeline
	for ctx.Err() == nil {
		if st, err := minority.status(); err == nil && st.Leader == "" && tl.leaderLost == 0 {
			tl.leaderLost = time.Since(cut).Round(time.Millisecond)
		}
		if st, err := majority.status(); err == nil {
			if st.gossipOf(minority.name) == "gone" && tl.gossipGone == 0 {
				tl.gossipGone = time.Since(cut).Round(time.Millisecond)
			}
			for _, m := range st.Members {
				if m.Name == minority.name && m.State == "dead" && tl.deathCommitted == 0 {
					tl.deathCommitted = time.Since(cut).Round(time.Millisecond)
				}
			}
		}
		sleepContext(ctx, 100*time.Millisecond)
	}
	return tl
}
