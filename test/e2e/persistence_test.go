package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Persistence across kill -9 and graceful restarts. Starling promises that
// nothing it acknowledged is lost when the process is killed: persistent
// sessions, their subscriptions, queued QoS 1/2 messages, QoS 2 state and
// retained messages come back.

// crash kills the broker with SIGKILL. Mosquitto writes its database only
// every few changes and at exit, so for mosquitto the harness stops it with
// SIGTERM instead: the tests then check their own logic, not mosquitto's
// crash safety.
func crash(t testing.TB, b *broker) {
	t.Helper()
	if b.kind == kindMosquitto {
		t.Log("mosquitto is not crash-safe by design: stopping it with SIGTERM instead of SIGKILL")
		b.Stop()
		return
	}
	b.Kill()
}

func TestPersistence_KillKeepsSessionsAndRetained(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	spec3 := v3("keep-3", false)
	spec5 := v5("keep-5", false, propU32(propSessionExpiry, 3600))
	s3, _ := connectRaw(t, b, "keep-3", spec3)
	s3.mustSubscribe("keep/3", 1)
	s3.mustSubscribe("keep/q2", 2)
	s3.disconnect()
	s5, _ := connectRaw(t, b, "keep-5", spec5)
	s5.mustSubscribe("keep/5/#", 1)
	s5.disconnect()

	pub, _ := connectRaw(t, b, "keep-pub", v3("keep-pub", true))
	for i := 0; i < 3; i++ {
		pub.publish("keep/3", 1, false, fmt.Sprintf("m%d", i))
		pub.publish("keep/5/x", 1, false, fmt.Sprintf("m%d", i))
	}
	pub.publish("keep/q2", 2, false, "exactly once")
	pub.publish("keep/retained", 1, true, "still here")
	pub.close()

	crash(t, b)
	b.Start()

	// [MQTT-3.1.2-4] The sessions, their subscriptions and the queued
	// messages survive (a product promise for a restart, not a spec rule).
	s3, ca := connectRaw(t, b, "keep-3", spec3)
	if !ca.SessionPresent {
		t.Fatal("keep-3: Session Present 0 after restart")
	}
	for i, m := range s3.receiveN(4, ioTimeout) {
		expected := fmt.Sprintf("m%d", i)
		if i == 3 {
			expected = "exactly once"
		}
		if m.Payload != expected {
			t.Fatalf("keep-3: message %d is %q on %s, expected %q", i, m.Payload, m.Topic, expected)
		}
		if i == 3 && m.QoS != 2 {
			t.Fatalf("keep-3: QoS 2 message delivered at QoS %d", m.QoS)
		}
	}
	s3.expectNoPublish(quietPeriod)

	s5, ca = connectRaw(t, b, "keep-5", spec5)
	if !ca.SessionPresent {
		t.Fatal("keep-5: Session Present 0 after restart")
	}
	for i, m := range s5.receiveN(3, ioTimeout) {
		if m.Payload != fmt.Sprintf("m%d", i) {
			t.Fatalf("keep-5: message %d is %q", i, m.Payload)
		}
	}

	// The subscriptions themselves survived: new messages arrive.
	pub, _ = connectRaw(t, b, "keep-pub", v3("keep-pub", true))
	pub.publish("keep/3", 1, false, "after")
	pub.publish("keep/5/y", 1, false, "after")
	if m := s3.receive(ioTimeout); m.Payload != "after" {
		t.Fatalf("keep-3 after restart got %+v", m)
	}
	if m := s5.receive(ioTimeout); m.Payload != "after" {
		t.Fatalf("keep-5 after restart got %+v", m)
	}

	late, _ := connectRaw(t, b, "late", v3("late", true))
	late.mustSubscribe("keep/retained", 1)
	if m := late.receive(ioTimeout); m.Payload != "still here" || !m.Retain {
		t.Fatalf("retained message after restart: %+v", m)
	}
}

func TestPersistence_QoS2InboundStateSurvivesKill(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub, _ := connectRaw(t, b, "q2-sub", v3("q2-sub", false))
	sub.mustSubscribe("q2/t", 2)
	sub.disconnect()

	// The publisher's session holds packet id 3 between PUBREC and PUBREL.
	pubSpec := v3("q2-pub", false)
	pub, _ := connectRaw(t, b, "q2-pub", pubSpec)
	pub.send(encodePublish(4, publishSpec{Topic: "q2/t", QoS: 2, ID: 3, Payload: []byte("once")}))
	pub.awaitAck(typePubrec, 3)

	crash(t, b)
	b.Start()

	// After the restart the publisher resends the PUBLISH (it may not know
	// whether PUBREC arrived) and then PUBREL; the subscriber still gets one
	// copy [MQTT-4.3.3-2].
	pub, ca := connectRaw(t, b, "q2-pub", pubSpec)
	if !ca.SessionPresent {
		t.Fatal("publisher: Session Present 0 after restart")
	}
	pub.send(encodePublish(4, publishSpec{Topic: "q2/t", QoS: 2, ID: 3, Dup: true, Payload: []byte("once")}))
	pub.awaitAck(typePubrec, 3)
	pub.send(encodeAck(typePubrel, 3))
	pub.awaitAck(typePubcomp, 3)

	sub, _ = connectRaw(t, b, "q2-sub", v3("q2-sub", false))
	if m := sub.receive(ioTimeout); m.Payload != "once" {
		t.Fatalf("got %+v", m)
	}
	sub.expectNoPublish(quietPeriod)
}

// TestCrash_QoS1AckedMessagesSurviveKill kills the broker in the middle of
// a stream of QoS 1 publishes and checks that every message that got a
// PUBACK reaches the persistent subscriber after the restart. Duplicates
// are allowed at QoS 1, and unacknowledged messages may or may not arrive.
func TestCrash_QoS1AckedMessagesSurviveKill(t *testing.T) {
	// Not parallel: load and timing measurements need the machine to
	// themselves, and go test runs serial tests before the parallel ones.
	total := scaled(2000, 20000)
	killAfter := total / 3
	b := startBroker(t, brokerOptions{
		// The offline queue must hold the whole stream; a drop policy would
		// lose acknowledged messages by design.
		Limits: limits{MaxQueuedMessages: total + 1000, MaxQueuedBytes: 64 << 20},
	})

	subSpec := v3("crash-sub", false)
	sub, _ := connectRaw(t, b, "crash-sub", subSpec)
	sub.mustSubscribe("crash/t", 1)
	sub.disconnect()

	setter, _ := connectRaw(t, b, "crash-retain", v3("crash-retain", true))
	setter.publish("crash/retained", 1, true, "before the kill")
	setter.disconnect()

	// Publish as fast as possible with 32 messages in flight, and kill the
	// broker from this goroutine once killAfter PUBACKs have arrived.
	ackSignal := make(chan struct{})
	results := make(chan pipelineResult, 1)
	go func() {
		results <- publishPipelined(pipelineConfig{
			Addr:     b.Addr(),
			ClientID: "crash-pub",
			Count:    total,
			Build: func(i int) publishSpec {
				return publishSpec{Topic: "crash/t", Payload: []byte(fmt.Sprintf("id-%06d", i))}
			},
			Window:      32,
			Timeout:     2 * time.Minute,
			AckSignal:   ackSignal,
			AckSignalAt: killAfter,
		})
	}()
	var res pipelineResult
	select {
	case <-ackSignal:
		crash(t, b)
		res = <-results
	case res = <-results:
		t.Fatalf("publisher ended before %d PUBACKs: %d acked, %d sent, %v", killAfter, len(res.Acked), res.Sent, res.Err)
	}
	t.Logf("sent %d, acked %d of %d before the kill (publisher stopped with: %v)", res.Sent, len(res.Acked), total, res.Err)
	if len(res.Acked) < killAfter {
		t.Fatalf("only %d PUBACKs recorded, expected at least %d", len(res.Acked), killAfter)
	}

	b.Start()

	// Collect until every acknowledged id has arrived, then until silence.
	sub, ca := connectRaw(t, b, "crash-sub", subSpec)
	if !ca.SessionPresent {
		t.Fatal("subscriber: Session Present 0 after the restart")
	}
	received := map[int]int{}
	missing := func() []int {
		var out []int
		for _, idx := range res.Acked {
			if received[idx] == 0 {
				out = append(out, idx)
			}
		}
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		p, err := sub.next(ioTimeout)
		if err != nil {
			break
		}
		if p.Type != typePublish {
			continue
		}
		m, err := decodePublish(4, p)
		if err != nil {
			t.Fatal(err)
		}
		sub.ack(m)
		idx, err := strconv.Atoi(strings.TrimPrefix(m.Payload, "id-"))
		if err != nil {
			t.Fatalf("unexpected payload %q", m.Payload)
		}
		received[idx]++
	}
	lost := missing()
	if len(lost) > 0 {
		sort.Ints(lost)
		t.Errorf("%d acknowledged messages lost after the kill, first ids %v", len(lost), lost[:min(len(lost), 20)])
	}
	dups, unackedDelivered := 0, 0
	ackedSet := map[int]bool{}
	for _, idx := range res.Acked {
		ackedSet[idx] = true
	}
	for idx, n := range received {
		dups += n - 1
		if !ackedSet[idx] {
			unackedDelivered++
		}
	}
	t.Logf("delivered %d distinct messages, %d duplicates, %d that had no PUBACK", len(received), dups, unackedDelivered)

	late, _ := connectRaw(t, b, "crash-late", v3("crash-late", true))
	late.mustSubscribe("crash/retained", 1)
	if m := late.receive(ioTimeout); m.Payload != "before the kill" || !m.Retain {
		t.Fatalf("retained message after the kill: %+v", m)
	}
}

func TestShutdown_SigtermDisconnectsAndKeepsAcked(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	subSpec := v3("term-sub", false)
	sub, _ := connectRaw(t, b, "term-sub", subSpec)
	sub.mustSubscribe("term/t", 1)
	sub.disconnect()

	pub, _ := connectRaw(t, b, "term-pub", v3("term-pub", true))
	const n = 50
	for i := 0; i < n; i++ {
		pub.publish("term/t", 1, false, strconv.Itoa(i))
	}

	v5c, _ := connectRaw(t, b, "term-v5", v5("term-v5", true))
	v3c, _ := connectRaw(t, b, "term-v3", v3("term-v3", true))

	// SIGTERM: a 5.0 client gets DISCONNECT 0x8B (server shutting down)
	// before the close; a 3.1.1 client is just closed. Stop checks that the
	// process exits with status 0.
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := b.stop(); err != nil {
			t.Errorf("graceful stop: %v", err)
		}
	}()
	got := v5c.expectClosed(stopTimeout)
	if len(got) != 1 || got[0].Type != typeDisconnect || disconnectReason(got[0]) != rcServerShuttingDown {
		if !(len(got) == 0 && knownMosquittoGap(t, "no DISCONNECT 0x8B on shutdown")) {
			t.Errorf("5.0 client: expected DISCONNECT 0x8B before the close, got %v", got)
		}
	}
	if got := v3c.expectClosed(stopTimeout); len(got) != 0 {
		t.Errorf("3.1.1 client: expected a close without packets, got %v", got)
	}
	<-stopped

	b.Start()
	sub, ca := connectRaw(t, b, "term-sub", subSpec)
	if !ca.SessionPresent {
		t.Fatal("Session Present 0 after a graceful restart")
	}
	for i, m := range sub.receiveN(n, ioTimeout) {
		if m.Payload != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m.Payload)
		}
	}
}

func TestPersistence_RelaxedDurabilityGracefulRestart(t *testing.T) {
	t.Parallel()
	// durability: relaxed acknowledges before the write reaches the disk, so
	// a kill may lose the last milliseconds. A graceful stop must still
	// flush everything it acknowledged.
	b := startBroker(t, brokerOptions{Durability: "relaxed"})
	spec := v3("relaxed-sub", false)
	sub, _ := connectRaw(t, b, "relaxed-sub", spec)
	sub.mustSubscribe("relaxed/t", 1)
	sub.disconnect()

	res := publishPipelined(pipelineConfig{
		Addr: b.Addr(), ClientID: "relaxed-pub", Count: 500, Window: 32, Timeout: time.Minute,
		Build: func(i int) publishSpec { return publishSpec{Topic: "relaxed/t", Payload: []byte(strconv.Itoa(i))} },
	})
	if res.Err != nil {
		t.Fatalf("publisher: %d of 500 acknowledged: %v", len(res.Acked), res.Err)
	}
	b.Restart()

	sub, _ = connectRaw(t, b, "relaxed-sub", spec)
	for i, m := range sub.receiveN(500, ioTimeout) {
		if m.Payload != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m.Payload)
		}
	}
}

func TestPersistence_PahoSessionAcrossRestart(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	// A paho 3.1.1 client with clean session 0 subscribes at QoS 2 and goes
	// away. QoS 1 and 2 messages published meanwhile survive a broker
	// restart and arrive in order when paho reconnects without subscribing.
	sub, _ := newPaho(t, b, "paho-sub", withClean(false))
	pahoSubscribe(t, sub, "paho/#", 2)
	sub.Disconnect(250)

	pub, _ := newPaho(t, b, "paho-pub")
	const n = 10
	for i := 0; i < n; i++ {
		pahoPublish(t, pub, "paho/t", byte(1+i%2), false, strconv.Itoa(i))
	}
	pub.Disconnect(250)
	b.Restart()

	_, in := newPaho(t, b, "paho-sub", withClean(false))
	got := in.waitCount(t, n, ioTimeout)
	for i, m := range got {
		if m.Payload != strconv.Itoa(i) || m.QoS != byte(1+i%2) {
			t.Fatalf("message %d: %q at QoS %d, expected %q at QoS %d", i, m.Payload, m.QoS, strconv.Itoa(i), 1+i%2)
		}
	}
	in.expectCountStays(t, n, quietPeriod)
}
