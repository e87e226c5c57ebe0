package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// received is one message delivered to a paho client.
type received struct {
	Topic     string
	Payload   string
	QoS       byte
	Retained  bool
	Duplicate bool
	ID        uint16
}

// inbox collects the messages a paho client receives. It is safe for
// concurrent use by paho's router goroutine and the test.
type inbox struct {
	mu   sync.Mutex
	msgs []received
}

func (in *inbox) handle(_ mqtt.Client, m mqtt.Message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, received{
		Topic: m.Topic(), Payload: string(m.Payload()), QoS: m.Qos(),
		Retained: m.Retained(), Duplicate: m.Duplicate(), ID: m.MessageID(),
	})
	in.mu.Unlock()
}

// all returns a copy of the messages received so far.
func (in *inbox) all() []received {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]received(nil), in.msgs...)
}

// count returns how many messages arrived so far.
func (in *inbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs)
}

// waitCount waits until at least n messages arrived and returns them all.
func (in *inbox) waitCount(t testing.TB, n int, timeout time.Duration) []received {
	t.Helper()
	waitFor(t, timeout, func() error {
		if got := in.count(); got < n {
			return fmt.Errorf("received %d of %d messages: %v", got, n, in.all())
		}
		return nil
	})
	return in.all()
}

// expectCountStays waits d and fails if the inbox holds other than n messages.
func (in *inbox) expectCountStays(t testing.TB, n int, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	if got := in.all(); len(got) != n {
		t.Fatalf("expected %d messages, got %d: %v", n, len(got), got)
	}
}

// pahoOption adjusts the options of a paho client before it connects.
type pahoOption func(*mqtt.ClientOptions)

func withClean(clean bool) pahoOption {
	return func(o *mqtt.ClientOptions) { o.SetCleanSession(clean) }
}

// newPaho connects an MQTT 3.1.1 paho client with a clean session, no
// automatic reconnect, and every message landing in the returned inbox. The
// client disconnects in t.Cleanup.
func newPaho(t testing.TB, b *broker, id string, opts ...pahoOption) (mqtt.Client, *inbox) {
	t.Helper()
	in := &inbox{}
	o := mqtt.NewClientOptions().
		AddBroker(b.URL()).
		SetClientID(id).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(ioTimeout).
		SetWriteTimeout(ioTimeout).
		SetKeepAlive(60 * time.Second).
		SetDefaultPublishHandler(in.handle)
	for _, opt := range opts {
		opt(o)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(ioTimeout) {
		t.Fatalf("paho %s: CONNECT timed out", id)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho %s: connect: %v", id, err)
	}
	t.Cleanup(func() {
		if c.IsConnectionOpen() {
			c.Disconnect(250)
		}
	})
	return c, in
}

// pahoSubscribe subscribes and fails the test unless the broker grants qos.
func pahoSubscribe(t testing.TB, c mqtt.Client, filter string, qos byte) {
	t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(ioTimeout) {
		t.Fatalf("paho SUBSCRIBE %q timed out", filter)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho SUBSCRIBE %q: %v", filter, err)
	}
	st := tok.(*mqtt.SubscribeToken)
	if got := st.Result()[filter]; got != qos {
		t.Fatalf("SUBSCRIBE %q QoS %d: granted %#x", filter, qos, got)
	}
}

// pahoPublish publishes and waits until the QoS flow completes.
func pahoPublish(t testing.TB, c mqtt.Client, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(ioTimeout) {
		t.Fatalf("paho PUBLISH %q timed out", topic)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho PUBLISH %q: %v", topic, err)
	}
}
