package deploy

import (
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// mqttTimeout bounds one CONNECT, SUBSCRIBE, PUBLISH or delivery.
const mqttTimeout = 10 * time.Second

// received is one message delivered to a subscriber.
type received struct {
	Topic    string
	Payload  string
	Retained bool
}

// connectOptions are the settings of one paho client.
type connectOptions struct {
	// URL is tcp://HOST:PORT or tls://HOST:PORT.
	URL      string
	ClientID string
	Username string
	Password string
	// TLS configures a tls:// connection. Nil uses paho's default.
	TLS *tls.Config
}

// connect connects an MQTT 3.1.1 paho client with a clean session, and
// disconnects it at cleanup. It returns the CONNECT error without failing
// the test, so that tests can expect a rejection.
func connect(t testing.TB, o connectOptions) (mqtt.Client, error) {
	t.Helper()
	opts := mqtt.NewClientOptions().
		AddBroker(o.URL).
		SetClientID(o.ClientID).
		SetUsername(o.Username).
		SetPassword(o.Password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(mqttTimeout).
		SetProtocolVersion(4)
	if o.TLS != nil {
		opts.SetTLSConfig(o.TLS)
	}
	client := mqtt.NewClient(opts)
	token := client.Connect()
	if !token.WaitTimeout(mqttTimeout) {
		client.Disconnect(0)
		return nil, fmt.Errorf("CONNECT to %s timed out after %v", o.URL, mqttTimeout)
	}
	if err := token.Error(); err != nil {
		return nil, fmt.Errorf("CONNECT to %s as %q: %w", o.URL, o.Username, err)
	}
	t.Cleanup(func() { client.Disconnect(250) })
	return client, nil
}

// mustConnect is connect that fails the test on error.
func mustConnect(t testing.TB, o connectOptions) mqtt.Client {
	t.Helper()
	client, err := connect(t, o)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// subscribe subscribes at QoS 1 and returns the channel of deliveries.
func subscribe(t testing.TB, client mqtt.Client, filter string) <-chan received {
	t.Helper()
	ch := make(chan received, 16)
	token := client.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case ch <- received{Topic: m.Topic(), Payload: string(m.Payload()), Retained: m.Retained()}:
		default:
		}
	})
	if !token.WaitTimeout(mqttTimeout) {
		t.Fatalf("SUBSCRIBE %s timed out after %v", filter, mqttTimeout)
	}
	if err := token.Error(); err != nil {
		t.Fatalf("SUBSCRIBE %s: %v", filter, err)
	}
	return ch
}

// publish publishes at QoS 1 and waits for the PUBACK, which Starling sends
// after the message is synced to disk.
func publish(t testing.TB, client mqtt.Client, topic, payload string, retain bool) {
	t.Helper()
	token := client.Publish(topic, 1, retain, payload)
	if !token.WaitTimeout(mqttTimeout) {
		t.Fatalf("PUBLISH %s timed out after %v", topic, mqttTimeout)
	}
	if err := token.Error(); err != nil {
		t.Fatalf("PUBLISH %s: %v", topic, err)
	}
}

// expectMessage waits for one delivery and checks its topic, payload and
// retain flag.
func expectMessage(t testing.TB, ch <-chan received, want received) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("received %+v, expected %+v", got, want)
		}
	case <-time.After(mqttTimeout):
		t.Fatalf("no message within %v, expected %+v", mqttTimeout, want)
	}
}
