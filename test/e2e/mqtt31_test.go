package e2e

import (
	"strings"
	"testing"
)

// TestConnect_MQTT31ClientIDLength: MQTT 3.1 ("MQIsdp", level 3) requires a
// client id of 1 to 23 characters; the server answers any other with CONNACK
// 0x02 (identifier rejected) and closes. 3.1.1 and 5.0 lifted the limit.
func TestConnect_MQTT31ClientIDLength(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	probe := newProbe(t, b)

	// Exactly 23 bytes is accepted and works.
	id23 := strings.Repeat("a", 22) + "3"
	c, ca := connectRaw(t, b, "id23", connectSpec{Version: 3, ClientID: id23, Clean: true, Keepalive: 60})
	if ca.SessionPresent {
		t.Fatal("MQTT 3.1 clean connect: Session Present 1")
	}
	c.mustSubscribe("legacy31/t", 1)
	c.publish("legacy31/t", 1, false, "23 bytes")
	if m := c.receive(ioTimeout); m.Payload != "23 bytes" {
		t.Fatalf("23-byte MQTT 3.1 client got %+v", m)
	}

	for name, id := range map[string]string{
		"24-bytes": strings.Repeat("b", 24),
		"empty":    "",
	} {
		for _, clean := range []bool{true, false} {
			r := dialRaw(t, b, "mqtt31-"+name, 3)
			r.send(connectSpec{Version: 3, ClientID: id, Clean: clean, Keepalive: 60}.encode())
			if r.expectRefused(0x02) == nil {
				t.Fatalf("MQTT 3.1 client id %s (clean %v): closed without CONNACK 0x02", name, clean)
			}
		}
	}

	// The same 24-byte id is fine in 3.1.1 and 5.0.
	for _, spec := range []connectSpec{v3(strings.Repeat("c", 24), true), v5(strings.Repeat("d", 24), true)} {
		c, _ := connectRaw(t, b, "long-id", spec)
		c.disconnect()
	}
	probe.check()
}
