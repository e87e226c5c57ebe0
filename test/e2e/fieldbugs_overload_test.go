package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Overload scenarios: slow subscribers and large retained bursts. Message
// counts are bounded and scaled up by E2E_FULL=1.

// publishQoS0 writes count QoS 0 PUBLISHes built by build over a fresh
// 3.1.1 connection, pacing them to about rate per second (0 means as fast as
// possible). It returns how many were written and the error that stopped it.
func publishQoS0(addr, clientID string, count, rate int, build func(i int) publishSpec) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))

	if _, err := conn.Write(v3(clientID, true).encode()); err != nil {
		return 0, err
	}
	if p, err := readPacket(bufio.NewReader(conn)); err != nil || p.Type != typeConnack {
		return 0, fmt.Errorf("CONNACK: %v %v", p, err)
	}

	w := bufio.NewWriter(conn)
	start := time.Now()
	for i := 0; i < count; i++ {
		if rate > 0 {
			if ahead := time.Duration(i)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
				w.Flush()
				time.Sleep(ahead)
			}
		}
		if _, err := w.Write(encodePublish(4, build(i))); err != nil {
			return i, err
		}
	}
	if err := w.Flush(); err != nil {
		return count, err
	}
	conn.Write(encodeDisconnect(4, 0))
	return count, nil
}

// stampedPayload returns a payload of size bytes that starts with the
// current time, for latency measurements.
func stampedPayload(size int) []byte {
	p := make([]byte, max(size, 8))
	binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
	return p
}

// TestFieldBug_B29_SlowSubscriber: one subscriber that stops reading made a
// broker buffer without limit until it ran out of memory.
func TestFieldBug_B29_SlowSubscriber(t *testing.T) {
	// Not parallel: load and timing measurements need the machine to
	// themselves, and go test runs serial tests before the parallel ones.
	const maxQueued = 1000
	b := startBroker(t, brokerOptions{Limits: limits{MaxQueuedMessages: maxQueued, MaxInflight: 20}})
	baseline, err := b.RSS()
	if err != nil {
		t.Fatalf("read broker RSS: %v", err)
	}

	// slow: subscribed to everything at QoS 1 and never reads again.
	slow, _ := connectRaw(t, b, "slow", v3("slow", true))
	slow.mustSubscribe("load/#", 1)
	// slowPersist: the same with a persistent session that goes away halfway.
	persistSpec := v3("slow-persist", false)
	slowPersist, _ := connectRaw(t, b, "slow-persist", persistSpec)
	slowPersist.mustSubscribe("load/#", 1)

	// fast: subscribed to one publisher's topic, measuring latency.
	var latMu sync.Mutex
	var latencies []time.Duration
	fast, _ := newPaho(t, b, "fast")
	tok := fast.Subscribe("load/0", 0, func(_ mqtt.Client, m mqtt.Message) {
		sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Payload())))
		latMu.Lock()
		latencies = append(latencies, time.Since(sent))
		latMu.Unlock()
	})
	if !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("fast subscribe: %v", tok.Error())
	}
	probe := newProbe(t, b)

	// Publishers: half QoS 0 at a steady rate, half QoS 1 with 16 in flight.
	publishers := scaled(8, 32)
	perPublisher := scaled(2500, 10000)
	const payloadSize = 256
	var wg sync.WaitGroup
	var sentTotal atomic.Int64
	errs := make(chan error, publishers)
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("load/%d", p)
			build := func(int) publishSpec { return publishSpec{Topic: topic, Payload: stampedPayload(payloadSize)} }
			id := fmt.Sprintf("load-pub-%d", p)
			if p%2 == 0 {
				n, err := publishQoS0(b.Addr(), id, perPublisher, 2000, build)
				sentTotal.Add(int64(n))
				if err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
				}
				return
			}
			res := publishPipelined(pipelineConfig{Addr: b.Addr(), ClientID: id, Count: perPublisher, Build: build, Window: 16, Timeout: 2 * time.Minute})
			sentTotal.Add(int64(len(res.Acked)))
			if res.Err != nil {
				errs <- fmt.Errorf("%s: %w", id, res.Err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// While the load runs: the probe must keep working, memory must stay
	// bounded, and the persistent slow subscriber leaves halfway.
	peak := baseline
	loadStart := time.Now()
	persistGone := false
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-ticker.C:
		}
		probe.check()
		if rss, err := b.RSS(); err == nil {
			peak = max(peak, rss)
		}
		if !persistGone && time.Since(loadStart) > time.Second {
			slowPersist.close()
			persistGone = true
		}
	}
	close(errs)
	for err := range errs {
		t.Errorf("publisher failed: %v", err)
	}
	if !persistGone {
		slowPersist.close()
	}
	probe.check()

	// The limit is an estimate: queues of at most 1,000 messages of 256 bytes
	// per session, plus the broker's working set, stay far below 256 MiB.
	// A broker built with -race needs several times the memory.
	growthLimit := int64(256 << 20)
	if raceDetector {
		growthLimit *= 4
	}
	t.Logf("broker RSS: baseline %d MiB, peak %d MiB, %d messages published", baseline>>20, peak>>20, sentTotal.Load())
	if peak > baseline+growthLimit {
		t.Errorf("broker RSS peaked at %d MiB, more than %d MiB above the %d MiB baseline", peak>>20, growthLimit>>20, baseline>>20)
	}

	latMu.Lock()
	lat := slices.Clone(latencies)
	latMu.Unlock()
	if len(lat) == 0 {
		t.Fatal("the fast subscriber received nothing")
	}
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	t.Logf("fast subscriber: %d messages, p50 %v, p99 %v", len(lat), lat[len(lat)/2], p99)
	// The scenario targets a p99 below 200 ms. On a shared 2-core machine
	// that also runs every client, 1 s is the bound this test can hold to,
	// and 5 s under the race detector.
	latencyLimit := time.Second
	if raceDetector {
		latencyLimit = 5 * time.Second
	}
	if p99 > latencyLimit {
		t.Errorf("fast subscriber p99 latency %v, expected below %v", p99, latencyLimit)
	}

	// The slow clean-session subscriber is either still connected (its
	// queue overflowed by the drop policy) or was disconnected; both are
	// allowed. The persistent one kept at most its queue limit plus the
	// inflight window while offline.
	sp, ca := connectRaw(t, b, "slow-persist", persistSpec)
	if !ca.SessionPresent {
		t.Fatal("slow-persist: Session Present 0")
	}
	queued := 0
	for {
		p, err := sp.next(2 * quietPeriod)
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
		sp.ack(m)
		queued++
	}
	t.Logf("slow-persist received %d queued messages (max_queued_messages %d)", queued, maxQueued)
	if queued == 0 || queued > maxQueued+20+50 {
		t.Errorf("slow-persist received %d queued messages, expected 1..%d", queued, maxQueued+70)
	}
	requireAlive(t, b)
}

// TestFieldBug_B30_RetainedBurst: a wildcard subscribe over tens of
// thousands of retained messages delivered only part of them, or starved
// other clients.
func TestFieldBug_B30_RetainedBurst(t *testing.T) {
	// Not parallel: load and timing measurements need the machine to
	// themselves, and go test runs serial tests before the parallel ones.
	perGroup := scaled(500, 10000)
	const groups = 4
	total := groups * perGroup
	// mosquitto's default queue of 1,000 messages would truncate the burst,
	// which is the bug the scenario describes; lift it to check the test.
	b := startBroker(t, brokerOptions{MosquittoConfig: []string{"max_queued_messages 0"}})

	res := publishPipelined(pipelineConfig{
		Addr: b.Addr(), ClientID: "rb-pub", Count: total, Window: 64, Timeout: 3 * time.Minute,
		Build: func(i int) publishSpec {
			topic := fmt.Sprintf("rb/g%d/%d", i/perGroup+1, i%perGroup+1)
			return publishSpec{Topic: topic, Retain: true, Payload: []byte(topic)}
		},
	})
	if res.Err != nil {
		t.Fatalf("retained publisher: %d of %d acknowledged: %v", len(res.Acked), total, res.Err)
	}

	probe := newProbe(t, b)

	// sub-2: 3.1.1, QoS 0, reading about 1,000 messages per second.
	var slowCount atomic.Int64
	sub2, _ := newPaho(t, b, "sub-2")
	tok := sub2.Subscribe("rb/#", 0, func(_ mqtt.Client, m mqtt.Message) {
		if m.Retained() {
			slowCount.Add(1)
		}
		time.Sleep(time.Millisecond)
	})
	if !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("sub-2 subscribe: %v", tok.Error())
	}

	// sub-1: 5.0 with Receive Maximum 20, acknowledging at once.
	sub1, _ := connectRaw(t, b, "sub-1", v5("sub-1", true, propU16(propReceiveMaximum, 20)))
	sub1.mustSubscribe("rb/#", 1)
	start := time.Now()
	seen := make(map[string]int, total)
	var worstPing time.Duration
	for len(seen) < total {
		m := sub1.receive(ioTimeout)
		// [MQTT-3.3.1-8] Sent because of a new subscription: RETAIN=1.
		if !m.Retain {
			t.Fatalf("%s delivered with RETAIN=0", m.Topic)
		}
		seen[m.Topic]++
		if len(seen)%250 == 0 {
			pingStart := time.Now()
			probe.ping()
			worstPing = max(worstPing, time.Since(pingStart))
		}
	}
	t.Logf("sub-1 received %d retained messages in %v; slowest probe PINGRESP %v",
		total, time.Since(start).Round(time.Millisecond), worstPing.Round(time.Millisecond))
	sub1.expectNoPublish(quietPeriod)
	for topic, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times, expected once", topic, n)
		}
	}
	// The scenario targets a PINGRESP within 1 s. Allow 2 s on a loaded
	// machine, and 5 s under the race detector.
	pingLimit := 2 * time.Second
	if raceDetector {
		pingLimit = 5 * time.Second
	}
	if worstPing > pingLimit {
		t.Errorf("probe PINGRESP took %v during the burst", worstPing)
	}
	probe.check()

	// [MQTT-3.3.1-6] sub-2 gets every retained message too, unless a QoS 0
	// drop policy applies, which the broker must then report in its log.
	deadline := time.Now().Add(time.Duration(total)*2*time.Millisecond + 30*time.Second)
	for slowCount.Load() < int64(total) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	n := slowCount.Load()
	t.Logf("sub-2 received %d of %d retained messages", n, total)
	if n < int64(total) && !strings.Contains(strings.ToLower(b.Log()), "drop") {
		t.Errorf("sub-2 received %d of %d retained messages and the broker logged no drop", n, total)
	}
}
