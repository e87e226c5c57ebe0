package conformance

import (
	"encoding/binary"
	"time"
)

// Hand-built packets, for input that node/packet would refuse to encode or
// that must differ from its encoding byte by byte.

// mqttString returns s as an MQTT string: a two-byte big-endian length, then
// the bytes, which need not be valid UTF-8.
func mqttString(s string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(s)))
	return append(b, s...)
}

// u16 returns n as two big-endian bytes.
func u16(n uint16) []byte { return binary.BigEndian.AppendUint16(nil, n) }

// rawPacket returns a packet with first byte b0 and the parts as its body,
// with a minimal remaining length.
func rawPacket(b0 byte, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	out := []byte{b0}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

// rawConnect returns a CONNECT with the given protocol name, level and
// connect flags, keep alive 0, an empty property block for level 5, and the
// payload parts as given.
func rawConnect(name string, level, flags byte, payload ...[]byte) []byte {
	parts := [][]byte{mqttString(name), {level, flags}, u16(0)}
	if level == v5 {
		parts = append(parts, []byte{0})
	}
	return rawPacket(0x10, append(parts, payload...)...)
}

// expectConnectRejected checks that the broker rejects a CONNECT: it closes
// the connection, sending at most one CONNACK before. A CONNACK is allowed
// only when ackAllowed. Its code, the byte after the flags, must then be one
// of codes, or any non-zero code when codes is empty. Its Session Present
// flag must be 0 ([MQTT-3.2.2-4] in 3.1.1, [MQTT-3.2.2-6] in 5.0). It
// returns the code, or -1 when no CONNACK came.
func (c *client) expectConnectRejected(ackAllowed bool, codes ...byte) int {
	c.t.Helper()
	f, ok := c.nextFrame(closeTimeout)
	if !ok && c.closed {
		return -1
	}
	if !ok {
		c.t.Fatalf("%s: expected the broker to reject the CONNECT and close, the connection is still open after %v", c.id, closeTimeout)
	}
	if f.raw[0] != 0x20 || len(f.raw) < 4 {
		c.t.Fatalf("%s: expected a CONNACK or a close, got % x [MQTT-3.2.0-1]", c.id, truncate(f.raw))
	}
	code := f.raw[3]
	switch {
	case code == 0:
		c.t.Fatalf("%s: broker accepted a CONNECT it must reject: CONNACK % x", c.id, f.raw)
	case !ackAllowed:
		c.t.Errorf("%s: broker sent CONNACK % x; it must close without one [MQTT-3.1.4-1]", c.id, f.raw)
	case len(codes) > 0 && !containsByte(codes, code):
		c.t.Errorf("%s: CONNACK code 0x%02X, want one of % x", c.id, code, codes)
	}
	if f.raw[2] != 0 {
		c.t.Errorf("%s: refusing CONNACK has flags 0x%02X, want Session Present 0", c.id, f.raw[2])
	}
	c.expectClosedRaw()
	return int(code)
}

// expectClosedRaw checks that the connection closes within closeTimeout with
// no further packet.
func (c *client) expectClosedRaw() {
	c.t.Helper()
	deadline := time.Now().Add(closeTimeout)
	f, ok := c.nextFrame(time.Until(deadline))
	switch {
	case ok:
		c.t.Fatalf("%s: expected a close, got % x", c.id, truncate(f.raw))
	case !c.closed:
		c.t.Fatalf("%s: expected the broker to close the connection within %v, it is still open", c.id, closeTimeout)
	}
}

func containsByte(list []byte, b byte) bool {
	for _, x := range list {
		if x == b {
			return true
		}
	}
	return false
}
