package e2e

import (
	"encoding/json"
	"os/exec"
	"testing"
)

// TestPersistentQoS1_StreamStaysInOrder runs the load tool against a node:
// four publishers stream QoS 1 messages for 3 s, each on its own topic, to
// connected persistent MQTT 5.0 subscribers. A message then reaches its
// subscriber either reserved in the publisher's batch or queued and written
// by the persister, and no message may overtake an earlier one of its
// publisher [MQTT-4.6.0-6]. When a reserved message could overtake one
// waiting for the persister, a run had several hundred out of order.
func TestPersistentQoS1_StreamStaysInOrder(t *testing.T) {
	if !isStarling() {
		t.Skip("runs starling bench, which the e2e run against another broker does not build")
	}
	b := idleBroker(t)

	cmd := exec.Command(starlingBin, "bench", "--addr", b.Addr(), "--scenario", "pairs", "-n", "4",
		"--qos", "1", "--clean=false", "--session-expiry", "60s", "--protocol", "5.0",
		"--duration", "3s", "--size", "200", "--client-prefix", "order", "-o", "json", "--progress=false")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("starling bench: %v\n%s", err, out)
	}
	var res struct {
		Received   uint64 `json:"received"`
		Lost       uint64 `json:"lost"`
		Duplicates uint64 `json:"duplicates"`
		OutOfOrder uint64 `json:"out_of_order"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("decode bench result: %v\n%s", err, out)
	}
	if res.Received == 0 {
		t.Fatal("the subscribers received nothing")
	}
	if res.OutOfOrder != 0 {
		t.Errorf("%d of %d messages out of order", res.OutOfOrder, res.Received)
	}
	if res.Lost != 0 {
		t.Errorf("%d messages lost", res.Lost)
	}
	if res.Duplicates != 0 {
		t.Errorf("%d duplicates", res.Duplicates)
	}
}
