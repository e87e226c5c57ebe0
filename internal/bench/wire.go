package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Control packet types, the high four bits of the fixed header (MQTT 3.1.1
// and 5.0, section 2.1.2).
const (
	typeConnect    = 1
	typeConnack    = 2
	typePublish    = 3
	typePuback     = 4
	typePubrec     = 5
	typePubrel     = 6
	typePubcomp    = 7
	typeSubscribe  = 8
	typeSuback     = 9
	typePingreq    = 12
	typePingresp   = 13
	typeDisconnect = 14
)

// Protocol levels carried in CONNECT.
const (
	Version311 byte = 4 // MQTT 3.1.1
	Version5   byte = 5 // MQTT 5.0
)

// MQTT 5.0 property identifiers that the client writes or reads
// (section 2.2.2.2).
const (
	propSessionExpiry   = 0x11
	propServerKeepAlive = 0x13
	propReasonString    = 0x1F
	propReceiveMaximum  = 0x21
	propMaximumQoS      = 0x24
	propMaximumPacket   = 0x27
)

// maxRemainingLength is the largest remaining length a four-byte variable
// byte integer can carry.
const maxRemainingLength = 268435455

var errMalformed = errors.New("bench: malformed packet from broker")

// appendVarint appends n as an MQTT variable byte integer.
func appendVarint(dst []byte, n int) []byte {
	for {
		b := byte(n & 0x7F)
		n >>= 7
		if n == 0 {
			return append(dst, b)
		}
		dst = append(dst, b|0x80)
	}
}

// varintSize returns the encoded length of n as a variable byte integer.
func varintSize(n int) int {
	switch {
	case n < 1<<7:
		return 1
	case n < 1<<14:
		return 2
	case n < 1<<21:
		return 3
	default:
		return 4
	}
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// connectOptions are the CONNECT fields the load generator sets.
type connectOptions struct {
	version       byte
	clientID      string
	cleanStart    bool
	keepAlive     uint16 // seconds, 0 disables keep alive
	sessionExpiry uint32 // seconds, MQTT 5.0 only
	username      string
	password      string
}

// appendConnect appends a CONNECT packet. The password is written only when
// it is not empty, and in 3.1.1 the caller must also set a username because
// that version forbids a password without one [MQTT-3.1.2-22].
func appendConnect(dst []byte, o connectOptions) []byte {
	var body []byte
	body = appendString(body, "MQTT")
	body = append(body, o.version)

	var flags byte
	if o.cleanStart {
		flags |= 0x02
	}
	if o.username != "" {
		flags |= 0x80
	}
	if o.password != "" {
		flags |= 0x40
	}
	body = append(body, flags)
	body = binary.BigEndian.AppendUint16(body, o.keepAlive)

	if o.version == Version5 {
		if o.sessionExpiry > 0 {
			body = append(body, 5, propSessionExpiry)
			body = binary.BigEndian.AppendUint32(body, o.sessionExpiry)
		} else {
			body = append(body, 0)
		}
	}

	body = appendString(body, o.clientID)
	if o.username != "" {
		body = appendString(body, o.username)
	}
	if o.password != "" {
		body = appendString(body, o.password)
	}

	dst = append(dst, typeConnect<<4)
	dst = appendVarint(dst, len(body))
	return append(dst, body...)
}

// appendSubscribe appends a SUBSCRIBE for one topic filter at the given
// maximum QoS. Its fixed header flags must be 0010 [MQTT-3.8.1-1].
func appendSubscribe(dst []byte, version byte, packetID uint16, filter string, qos byte) []byte {
	n := 2 + 2 + len(filter) + 1
	if version == Version5 {
		n++ // empty property block
	}
	dst = append(dst, typeSubscribe<<4|0x02)
	dst = appendVarint(dst, n)
	dst = binary.BigEndian.AppendUint16(dst, packetID)
	if version == Version5 {
		dst = append(dst, 0)
	}
	dst = appendString(dst, filter)
	return append(dst, qos)
}

// appendPublishHeader appends everything of a PUBLISH up to its payload:
// the fixed header, the topic, the packet identifier when qos > 0 and, in
// MQTT 5.0, an empty property block. The caller writes payloadLen bytes of
// payload after it.
func appendPublishHeader(dst []byte, version, qos byte, topic string, packetID uint16, payloadLen int) []byte {
	n := 2 + len(topic) + payloadLen
	if qos > 0 {
		n += 2
	}
	if version == Version5 {
		n++
	}
	dst = append(dst, typePublish<<4|qos<<1)
	dst = appendVarint(dst, n)
	dst = appendString(dst, topic)
	if qos > 0 {
		dst = binary.BigEndian.AppendUint16(dst, packetID)
	}
	if version == Version5 {
		dst = append(dst, 0)
	}
	return dst
}

// appendAck appends a PUBACK, PUBREC, PUBREL or PUBCOMP with reason code 0.
// The two-byte form is valid in 3.1.1 and, as the short form for success,
// in 5.0 too. PUBREL carries the fixed header flags 0010 [MQTT-3.6.1-1].
func appendAck(dst []byte, packetType byte, packetID uint16) []byte {
	b0 := packetType << 4
	if packetType == typePubrel {
		b0 |= 0x02
	}
	dst = append(dst, b0, 2)
	return binary.BigEndian.AppendUint16(dst, packetID)
}

// frame is one packet read from the broker. body aliases the read buffer and
// stays valid only until the next read on the same connection.
type frame struct {
	header byte // first byte of the fixed header: type and flags
	body   []byte
}

func (f frame) packetType() byte { return f.header >> 4 }

// publish is the part of an incoming PUBLISH the subscriber needs.
type publish struct {
	qos      byte
	packetID uint16
	payload  []byte
}

// parsePublish decodes a PUBLISH body without copying. MQTT 5.0 properties
// are skipped: the subscriber sets no Topic Alias Maximum, so the broker may
// not replace the topic by an alias [MQTT-3.3.2-8].
func parsePublish(f frame, version byte) (publish, error) {
	p := publish{qos: (f.header >> 1) & 0x03}
	b := f.body
	if p.qos == 3 || len(b) < 2 {
		return p, errMalformed
	}
	topicLen := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < topicLen {
		return p, errMalformed
	}
	b = b[topicLen:]

	if p.qos > 0 {
		if len(b) < 2 {
			return p, errMalformed
		}
		p.packetID = binary.BigEndian.Uint16(b)
		b = b[2:]
	}

	if version == Version5 {
		propLen, n, err := readVarint(b)
		if err != nil || len(b)-n < propLen {
			return p, errMalformed
		}
		b = b[n+propLen:]
	}
	p.payload = b
	return p, nil
}

// ack is an incoming PUBACK, PUBREC, PUBREL or PUBCOMP.
type ack struct {
	packetID uint16
	reason   byte // 0 when the 5.0 short form leaves it out, and always in 3.1.1
}

func parseAck(f frame) (ack, error) {
	if len(f.body) < 2 {
		return ack{}, errMalformed
	}
	a := ack{packetID: binary.BigEndian.Uint16(f.body)}
	if len(f.body) > 2 {
		a.reason = f.body[2]
	}
	return a, nil
}

// connack is the decoded CONNACK with the 5.0 properties that limit the client.
type connack struct {
	sessionPresent  bool
	reason          byte
	receiveMaximum  uint16 // 0 when absent, which means 65,535
	maximumPacket   uint32 // 0 when absent, which means no limit
	maximumQoS      byte   // 2 when absent
	serverKeepAlive int    // seconds, -1 when absent
	reasonString    string
}

func parseConnack(f frame, version byte) (connack, error) {
	c := connack{maximumQoS: 2, serverKeepAlive: -1}
	if len(f.body) < 2 {
		return c, errMalformed
	}
	c.sessionPresent = f.body[0]&0x01 != 0
	c.reason = f.body[1]
	if version != Version5 || len(f.body) == 2 {
		return c, nil
	}

	err := walkProperties(f.body[2:], func(id byte, value []byte) {
		switch id {
		case propReceiveMaximum:
			c.receiveMaximum = binary.BigEndian.Uint16(value)
		case propMaximumPacket:
			c.maximumPacket = binary.BigEndian.Uint32(value)
		case propMaximumQoS:
			c.maximumQoS = value[0]
		case propServerKeepAlive:
			c.serverKeepAlive = int(binary.BigEndian.Uint16(value))
		case propReasonString:
			c.reasonString = string(value[2:])
		}
	})
	return c, err
}

// parseSuback returns the packet identifier and the first reason code of a
// SUBACK, and the reason string of a 5.0 SUBACK when the broker sent one.
func parseSuback(f frame, version byte) (packetID uint16, code byte, reason string, err error) {
	b := f.body
	if len(b) < 3 {
		return 0, 0, "", errMalformed
	}
	packetID = binary.BigEndian.Uint16(b)
	b = b[2:]

	if version == Version5 {
		propLen, n, err := readVarint(b)
		if err != nil || len(b)-n < propLen {
			return 0, 0, "", errMalformed
		}
		err = walkProperties(b[:n+propLen], func(id byte, value []byte) {
			if id == propReasonString {
				reason = string(value[2:])
			}
		})
		if err != nil {
			return 0, 0, "", err
		}
		b = b[n+propLen:]
	}
	if len(b) < 1 {
		return 0, 0, "", errMalformed
	}
	return packetID, b[0], reason, nil
}

// parseDisconnect returns the reason code of a DISCONNECT sent by a 5.0
// broker, 0 when it left the code out.
func parseDisconnect(f frame) byte {
	if len(f.body) == 0 {
		return 0
	}
	return f.body[0]
}

// readVarint decodes a variable byte integer and returns it with its length.
func readVarint(b []byte) (value, size int, err error) {
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, errMalformed
		}
		value |= int(b[i]&0x7F) << (7 * i)
		if b[i]&0x80 == 0 {
			return value, i + 1, nil
		}
	}
	return 0, 0, errMalformed
}

// walkProperties calls fn for each property in b, which starts with the
// property length. value holds the encoded value: fixed-size integers as
// they are, strings and binary data with their two-byte length prefix, and a
// user property as both prefixed strings.
func walkProperties(b []byte, fn func(id byte, value []byte)) error {
	n, size, err := readVarint(b)
	if err != nil || len(b)-size < n {
		return errMalformed
	}
	b = b[size : size+n]

	for len(b) > 0 {
		id := b[0]
		b = b[1:]
		valueLen, err := propertyValueLen(id, b)
		if err != nil {
			return err
		}
		fn(id, b[:valueLen])
		b = b[valueLen:]
	}
	return nil
}

// propertyValueLen returns the encoded length of the value of property id
// at the start of b, from the property's data type (section 2.2.2.2).
func propertyValueLen(id byte, b []byte) (int, error) {
	var n int
	switch id {
	case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A: // byte
		n = 1
	case 0x13, 0x21, 0x22, 0x23: // two-byte integer
		n = 2
	case 0x02, 0x11, 0x18, 0x27: // four-byte integer
		n = 4
	case 0x0B: // variable byte integer
		_, size, err := readVarint(b)
		if err != nil {
			return 0, err
		}
		n = size
	case 0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F: // string or binary data
		if len(b) < 2 {
			return 0, errMalformed
		}
		n = 2 + int(binary.BigEndian.Uint16(b))
	case 0x26: // user property: two strings
		if len(b) < 2 {
			return 0, errMalformed
		}
		k := 2 + int(binary.BigEndian.Uint16(b))
		if len(b) < k+2 {
			return 0, errMalformed
		}
		n = k + 2 + int(binary.BigEndian.Uint16(b[k:]))
	default:
		return 0, fmt.Errorf("bench: unknown MQTT 5.0 property 0x%02X from broker: %w", id, errMalformed)
	}
	if len(b) < n {
		return 0, errMalformed
	}
	return n, nil
}
