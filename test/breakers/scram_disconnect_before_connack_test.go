package breakers

import (
	"testing"
	"time"
)

// TestScram_ProtocolErrorBeforeConnack breaks a SCRAM-SHA-256 exchange after
// the server's first AUTH packet. MQTT 5.0 [MQTT-3.14.0-1] forbids the server
// to send DISCONNECT before a successful CONNACK: it may send a CONNACK with
// an error reason code and close. Starling sends DISCONNECT 0x82 instead.
func TestScram_ProtocolErrorBeforeConnack(t *testing.T) {
	b := startBroker(t)
	method := append([]byte{0x15}, str("SCRAM-SHA-256")...)
	data := append([]byte{0x16}, str("n,,n=someone,r=abcdefghijkl")...)

	cases := []struct {
		name string
		next []byte
	}{
		{"PINGREQ", pkt(12, 0, nil)},
		{"AUTH with another method", pkt(typeAuth, 0, append([]byte{0x18, 9, 0x15}, str("PLAIN!")...))},
		{"DISCONNECT", pkt(typeDisconnect, 0, nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, b.addr)
			c.send(connectPacket(connectOpts{clientID: "scram", clean: true, props: append(method, data...)}))
			c.expect(typeAuth, 5*time.Second)
			c.send(tc.next)

			p, err := c.read(5 * time.Second)
			if err != nil {
				return // closing the connection is allowed
			}
			if p.typ == typeDisconnect {
				knownBug(t, "after %s during SCRAM the server sent DISCONNECT %x before any CONNACK", tc.name, p.body[:1])
			}
			if p.typ != typeConnack || connackCode(p) < 0x80 {
				t.Errorf("after %s during SCRAM: got %v, expected a CONNACK with a reason code of 0x80 or more, or a close", tc.name, p)
			}
		})
	}
}
