package breakers

import (
	"testing"
	"time"
)

// TestRetainedFull_V311ClientDisconnected fills the retained store and then
// publishes one more retained QoS 1 message from an MQTT 3.1.1 client. An
// MQTT 5.0 client gets PUBACK 0x97 and stays connected, but the 3.1.1 client
// is disconnected. docs/configuration.md does not mention this. A 3.1.1
// device that publishes its state as a retained message reconnects, sends
// the message again and is disconnected again, in a loop, while the store is
// full.
func TestRetainedFull_V311ClientDisconnected(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "starling.yaml", "limits:\n  max_retained_messages: 1\n")
	b := startBroker(t, "--config", cfg)

	c5, _ := connect(t, b.addr, connectOpts{clientID: "v5", clean: true})
	c5.send(publishPacket(5, "state/first", []byte("1"), 1, 1, true, nil))
	c5.expect(typePuback, 5*time.Second)
	c5.send(publishPacket(5, "state/second", []byte("2"), 1, 2, true, nil))
	ack := c5.expect(typePuback, 5*time.Second)
	if len(ack.body) < 3 || ack.body[2] != 0x97 {
		t.Fatalf("v5 retained publish past the limit: PUBACK %x, expected reason 0x97", ack.body)
	}

	c4, _ := connect(t, b.addr, connectOpts{clientID: "v311", version: 4, clean: true})
	c4.send(publishPacket(4, "state/third", []byte("3"), 1, 3, true, nil))
	p, err := c4.read(5 * time.Second)
	if err != nil {
		knownBug(t, "3.1.1 retained publish past max_retained_messages: connection closed (%v) instead of PUBACK", err)
	}
	if p.typ != typePuback {
		t.Errorf("3.1.1 retained publish past the limit: got %v, expected PUBACK", p)
	}
}
