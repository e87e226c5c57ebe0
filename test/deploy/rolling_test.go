package deploy

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Bounds of the rolling restart's load.
const (
	// rollingMaxMessages caps the messages the publisher sends.
	rollingMaxMessages = 20000
	// rollingPublishInterval paces the publisher: at most about 200
	// messages a second, each waiting for its PUBACK.
	rollingPublishInterval = 5 * time.Millisecond
	// rollingLoadTimeout bounds the whole load, restarts included.
	rollingLoadTimeout = 3 * time.Minute
	// rollingAcksBetween is how many new PUBACKs the test waits for after
	// each restart, so that load runs between restarts.
	rollingAcksBetween = 200
	// rollingDeliveryTimeout bounds the wait for the subscriber to receive
	// every acknowledged message after the last restart.
	rollingDeliveryTimeout = 60 * time.Second
	// rollingTopic is the topic of the load. The subscriber subscribes to
	// rolling/#.
	rollingTopic = "rolling/data"
)

// TestCompose_RollingRestart restarts the nodes of the Compose cluster one
// at a time under QoS 1 load and checks that no acknowledged message is
// lost. A subscriber with a persistent session on starling-0 receives what
// a publisher on starling-1 sends. The test restarts starling-2, then the
// publisher's node, then the subscriber's, waiting for /readyz after each.
// The subscriber reconnects to its own node, because a client that
// reconnects elsewhere while its node is down gets a fresh session. It must
// end up with every message that got a PUBACK.
func TestCompose_RollingRestart(t *testing.T) {
	t.Parallel()
	start := time.Now()
	project := upComposeCluster(t, "rolling")
	t.Logf("cluster up and ready in %v", time.Since(start).Round(time.Millisecond))

	const subscriberNode, publisherNode = "starling-0", "starling-1"
	subscriber := &persistentSubscriber{clientID: "rolling-subscriber", received: map[int]int{}}
	waitFor(t, readyTimeout, func() error {
		return subscriber.connect("tcp://" + project.hostPort(t, subscriberNode, 1883))
	})
	t.Cleanup(subscriber.disconnect)
	if err := subscriber.subscribe("rolling/#"); err != nil {
		t.Fatal(err)
	}

	publisher := &loadPublisher{clientID: "rolling-publisher"}
	publisher.setURL("tcp://" + project.hostPort(t, publisherNode, 1883))
	ctx, cancel := context.WithTimeout(context.Background(), rollingLoadTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		publisher.run(ctx)
	}()
	stopLoad := func() {
		cancel()
		<-done
	}
	t.Cleanup(stopLoad)
	publisher.waitAcked(t, rollingAcksBetween)

	for _, service := range []string{"starling-2", publisherNode, subscriberNode} {
		restartStart := time.Now()
		acked := publisher.ackedCount()
		project.mustRun(t, "restart", "--timeout", "40", service)
		project.waitReady(t, service, clusterReadyTimeout)
		// Docker publishes the restarted container's ports on new host
		// ports.
		url := "tcp://" + project.hostPort(t, service, 1883)
		switch service {
		case publisherNode:
			publisher.setURL(url)
		case subscriberNode:
			waitFor(t, readyTimeout, func() error { return subscriber.connect(url) })
			if !subscriber.sessionPresent {
				t.Errorf("subscriber reconnected to %s without its session (Session Present 0)", service)
			}
		}
		publisher.waitAcked(t, acked+rollingAcksBetween)
		t.Logf("restarted %s and saw %d new PUBACKs in %v", service, rollingAcksBetween, time.Since(restartStart).Round(time.Millisecond))
	}
	stopLoad()

	acked, failed := publisher.results()
	var missing []int
	deadline := time.Now().Add(rollingDeliveryTimeout)
	for {
		missing = subscriber.missing(acked)
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	received, duplicates, invalid := subscriber.counts()
	t.Logf("rolling restart: %d messages acknowledged, %d publishes without PUBACK, %d received (%d duplicates) in %v",
		len(acked), failed, received, duplicates, time.Since(start).Round(time.Millisecond))
	if len(invalid) > 0 {
		t.Errorf("subscriber received %d messages that the publisher did not send: %q", len(invalid), invalid[:min(len(invalid), 5)])
	}
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged messages never reached the subscriber within %v after the last restart; first ones: %v",
			len(missing), rollingDeliveryTimeout, missing[:min(len(missing), 20)])
	}
}

// persistentSubscriber is an MQTT 3.1.1 client with a persistent session
// (clean session 0) that records the sequence numbers it receives. connect
// replaces its paho client; the session, its subscription and its queued
// messages stay on the broker.
type persistentSubscriber struct {
	clientID string

	// client and sessionPresent belong to the test goroutine.
	client         mqtt.Client
	sessionPresent bool

	mu       sync.Mutex
	received map[int]int // sequence number -> deliveries; guarded by mu
	invalid  []string    // payloads that are no sequence number; guarded by mu
}

// connect connects a new paho client to url. Messages of the session that
// arrive before any SUBSCRIBE of this client go to the default handler.
func (s *persistentSubscriber) connect(url string) error {
	s.disconnect()
	opts := mqtt.NewClientOptions().
		AddBroker(url).
		SetClientID(s.clientID).
		SetUsername("alice").
		SetPassword("alice-password").
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(mqttTimeout).
		SetProtocolVersion(4).
		SetDefaultPublishHandler(s.handle)
	client := mqtt.NewClient(opts)
	token := client.Connect()
	if !token.WaitTimeout(mqttTimeout) {
		client.Disconnect(0)
		return fmt.Errorf("CONNECT to %s timed out after %v", url, mqttTimeout)
	}
	if err := token.Error(); err != nil {
		return fmt.Errorf("CONNECT to %s: %w", url, err)
	}
	s.client = client
	s.sessionPresent = token.(*mqtt.ConnectToken).SessionPresent()
	return nil
}

// subscribe subscribes the session to filter at QoS 1.
func (s *persistentSubscriber) subscribe(filter string) error {
	token := s.client.Subscribe(filter, 1, nil)
	if !token.WaitTimeout(mqttTimeout) {
		return fmt.Errorf("SUBSCRIBE %s timed out after %v", filter, mqttTimeout)
	}
	return token.Error()
}

// disconnect closes the current client, if any, without ending the session.
func (s *persistentSubscriber) disconnect() {
	if s.client != nil {
		s.client.Disconnect(250)
		s.client = nil
	}
}

// handle records one delivery. paho sends the PUBACK after it returns.
func (s *persistentSubscriber) handle(_ mqtt.Client, m mqtt.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, err := strconv.Atoi(string(m.Payload()))
	if err != nil || m.Topic() != rollingTopic {
		s.invalid = append(s.invalid, m.Topic()+" "+string(m.Payload()))
		return
	}
	s.received[seq]++
}

// missing returns the sequence numbers of acked that were never received.
func (s *persistentSubscriber) missing(acked []int) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []int
	for _, seq := range acked {
		if s.received[seq] == 0 {
			missing = append(missing, seq)
		}
	}
	return missing
}

// counts returns the number of distinct messages received, of repeated
// deliveries (which QoS 1 allows) and the messages on another topic or
// without a sequence number.
func (s *persistentSubscriber) counts() (distinct, duplicates int, invalid []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.received {
		distinct++
		duplicates += n - 1
	}
	return distinct, duplicates, slices.Clone(s.invalid)
}

// loadPublisher publishes numbered QoS 1 messages, one at a time, and
// records which got a PUBACK. When its connection fails it reconnects to
// the URL most recently set.
type loadPublisher struct {
	clientID string
	url      atomic.Pointer[string]

	mu     sync.Mutex
	acked  []int // sequence numbers with a PUBACK, in order; guarded by mu
	failed int   // publishes without a PUBACK; guarded by mu
}

func (p *loadPublisher) setURL(url string) { p.url.Store(&url) }

// run publishes until ctx ends or rollingMaxMessages are sent. A failed
// publish uses up its sequence number, so every payload is unique.
func (p *loadPublisher) run(ctx context.Context) {
	var client mqtt.Client
	defer func() {
		if client != nil {
			client.Disconnect(250)
		}
	}()
	for seq := 1; seq <= rollingMaxMessages && ctx.Err() == nil; {
		if client == nil {
			c, err := p.connect()
			if err != nil {
				sleepContext(ctx, 200*time.Millisecond)
				continue
			}
			client = c
		}

		token := client.Publish(rollingTopic, 1, false, strconv.Itoa(seq))
		ok := token.WaitTimeout(mqttTimeout) && token.Error() == nil
		p.mu.Lock()
		if ok {
			p.acked = append(p.acked, seq)
		} else {
			p.failed++
		}
		p.mu.Unlock()
		if !ok {
			client.Disconnect(0)
			client = nil
		}
		seq++
		sleepContext(ctx, rollingPublishInterval)
	}
}

func (p *loadPublisher) connect() (mqtt.Client, error) {
	url := *p.url.Load()
	opts := mqtt.NewClientOptions().
		AddBroker(url).
		SetClientID(p.clientID).
		SetUsername("alice").
		SetPassword("alice-password").
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetProtocolVersion(4)
	client := mqtt.NewClient(opts)
	token := client.Connect()
	if !token.WaitTimeout(mqttTimeout) {
		client.Disconnect(0)
		return nil, fmt.Errorf("CONNECT to %s timed out", url)
	}
	if err := token.Error(); err != nil {
		return nil, err
	}
	return client, nil
}

func (p *loadPublisher) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// results returns the acknowledged sequence numbers and the count of
// publishes without a PUBACK.
func (p *loadPublisher) results() ([]int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acked), p.failed
}

// waitAcked waits until n messages in all have a PUBACK.
func (p *loadPublisher) waitAcked(t testing.TB, n int) {
	t.Helper()
	waitFor(t, clusterReadyTimeout, func() error {
		if got := p.ackedCount(); got < n {
			return fmt.Errorf("%d messages acknowledged, waiting for %d", got, n)
		}
		return nil
	})
}

// sleepContext sleeps for d or until ctx ends.
func sleepContext(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}
