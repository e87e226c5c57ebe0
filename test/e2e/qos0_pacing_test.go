package e2e

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestRetained_QoS0BurstPacedForSlowReader: the retained messages owed to a
// new QoS 0 subscription must be paced by the subscriber's socket, as QoS 1/2
// ones are by the inflight window, and reach a subscriber that reads slowly
// in full ([MQTT-3.3.1-6]). Small messages used to pile up as packets for the
// socket until the broker closed the subscriber as a client that "does not
// read its replies": field bug B30 at full scale (E2E_FULL=1) saw its slow
// QoS 0 reader closed after 0 of 40,000 retained messages.
func TestRetained_QoS0BurstPacedForSlowReader(t *testing.T) {
	if !isStarling() {
		t.Skip("checks Starling's pacing of QoS 0 sends")
	}
	t.Parallel()
	// Over a MiB on the wire, more than the kernel buffers of a loopback
	// connection hold while the reader lags; and 8,192 packets, as many as
	// a connection may have waiting for its socket, are far below the 1 MiB
	// of QoS 0 bytes it may buffer.
	const total = 20000
	payload := []byte(strings.Repeat("r", 60))
	b := startBroker(t, brokerOptions{})
	res := publishPipelined(pipelineConfig{
		Addr: b.Addr(), ClientID: "rq0-pub", Count: total, Window: 64, Timeout: 2 * time.Minute,
		Build: func(i int) publishSpec {
			return publishSpec{Topic: fmt.Sprintf("rq0/%d", i), Retain: true, Payload: payload}
		},
	})
	if res.Err != nil {
		t.Fatalf("retained publisher: %d of %d acknowledged: %v", len(res.Acked), total, res.Err)
	}
	probe := newProbe(t, b)

	// paho reads the socket only as fast as its handler returns.
	var got atomic.Int64
	sub, _ := newPaho(t, b, "rq0-slow")
	tok := sub.Subscribe("rq0/#", 0, func(_ mqtt.Client, m mqtt.Message) {
		n := int64(0)
		if m.Retained() {
			n = got.Add(1)
		}
		// Slow for the first few seconds, then as fast as paho goes.
		if n < 3000 {
			time.Sleep(time.Millisecond)
		}
	})
	if !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	deadline := time.Now().Add(total*time.Millisecond + 30*time.Second)
	for got.Load() < total && sub.IsConnectionOpen() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := got.Load(); n < total {
		t.Fatalf("slow QoS 0 subscriber got %d of %d retained messages (connected: %v)\n%s",
			n, total, sub.IsConnectionOpen(), b.Log())
	}
	if strings.Contains(b.Log(), "does not read its replies") {
		t.Errorf("the broker closed a client for not reading:\n%s", b.Log())
	}
	probe.check()
}
