package e2e

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A small MQTT codec for the raw client, written independently of the
// broker's node/packet so that a shared bug cannot hide itself. It encodes
// only what tests send and decodes only what tests check.

// Control packet types (the high nibble of the first byte).
const (
	typeConnect     byte = 1
	typeConnack     byte = 2
	typePublish     byte = 3
	typePuback      byte = 4
	typePubrec      byte = 5
	typePubrel      byte = 6
	typePubcomp     byte = 7
	typeSubscribe   byte = 8
	typeSuback      byte = 9
	typeUnsubscribe byte = 10
	typeUnsuback    byte = 11
	typePingreq     byte = 12
	typePingresp    byte = 13
	typeDisconnect  byte = 14
	typeAuth        byte = 15
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
	"PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
	"PINGRESP", "DISCONNECT", "AUTH"}

// MQTT 5.0 property identifiers used by the tests.
const (
	propPayloadFormat       byte = 0x01
	propMessageExpiry       byte = 0x02
	propContentType         byte = 0x03
	propResponseTopic       byte = 0x08
	propCorrelationData     byte = 0x09
	propSubscriptionID      byte = 0x0B
	propSessionExpiry       byte = 0x11
	propAssignedClientID    byte = 0x12
	propServerKeepAlive     byte = 0x13
	propAuthMethod          byte = 0x15
	propAuthData            byte = 0x16
	propRequestProblemInfo  byte = 0x17
	propWillDelay           byte = 0x18
	propRequestResponseInfo byte = 0x19
	propResponseInfo        byte = 0x1A
	propServerReference     byte = 0x1C
	propReasonString        byte = 0x1F
	propReceiveMaximum      byte = 0x21
	propTopicAliasMaximum   byte = 0x22
	propTopicAlias          byte = 0x23
	propMaximumQoS          byte = 0x24
	propRetainAvailable     byte = 0x25
	propUserProperty        byte = 0x26
	propMaximumPacketSize   byte = 0x27
	propWildcardAvailable   byte = 0x28
	propSubIDAvailable      byte = 0x29
	propSharedSubAvailable  byte = 0x2A
)

// MQTT 5.0 reason codes used by the tests.
const (
	rcSuccess                byte = 0x00
	rcMalformedPacket        byte = 0x81
	rcProtocolError          byte = 0x82
	rcUnsupportedProtocol    byte = 0x84
	rcClientIDNotValid       byte = 0x85
	rcServerShuttingDown     byte = 0x8B
	rcSessionTakenOver       byte = 0x8E
	rcKeepAliveTimeout       byte = 0x8D
	rcTopicNameInvalid       byte = 0x90
	rcReceiveMaximumExceeded byte = 0x93
	rcPacketTooLarge         byte = 0x95
	rcQuotaExceeded          byte = 0x97
)

// packet is one control packet as read from the wire.
type packet struct {
	Type  byte   // control packet type, typeConnect..typeAuth
	Flags byte   // the low nibble of the first byte
	Body  []byte // variable header and payload
}

func (p *packet) String() string {
	name := "?"
	if int(p.Type) < len(typeNames) {
		name = typeNames[p.Type]
	}
	if len(p.Body) > 16 {
		return fmt.Sprintf("%s flags=%#x body=% x...(%d bytes)", name, p.Flags, p.Body[:16], len(p.Body))
	}
	return fmt.Sprintf("%s flags=%#x body=% x", name, p.Flags, p.Body)
}

// maxReadPacket caps what the raw client accepts, so a broken length field
// cannot make a test allocate gigabytes.
const maxReadPacket = 16 << 20

// readPacket reads one control packet.
func readPacket(r *bufio.Reader) (*packet, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	length, err := readVarint(r)
	if err != nil {
		return nil, fmt.Errorf("read remaining length: %w", err)
	}
	if length > maxReadPacket {
		return nil, fmt.Errorf("remaining length %d exceeds the test limit", length)
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read %d-byte body: %w", length, err)
	}
	return &packet{Type: first >> 4, Flags: first & 0x0F, Body: body}, nil
}

func readVarint(r io.ByteReader) (int, error) {
	value, shift := 0, 0
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		value |= int(b&0x7F) << shift
		if b&0x80 == 0 {
			return value, nil
		}
		shift += 7
	}
	return 0, errors.New("variable byte integer longer than 4 bytes")
}

func appendVarint(b []byte, v int) []byte {
	for {
		digit := byte(v % 128)
		v /= 128
		if v > 0 {
			digit |= 0x80
		}
		b = append(b, digit)
		if v == 0 {
			return b
		}
	}
}

// appendString appends a UTF-8 string (or any bytes) with its 2-byte length.
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// frame builds a packet from its first byte and body.
func frame(first byte, body []byte) []byte {
	out := appendVarint([]byte{first}, len(body))
	return append(out, body...)
}

// Property encoders. props concatenates encoded properties and prefixes the
// total length, which is the form every MQTT 5.0 packet carries.

func propByte(id, v byte) []byte { return []byte{id, v} }

func propU16(id byte, v uint16) []byte { return binary.BigEndian.AppendUint16([]byte{id}, v) }

func propU32(id byte, v uint32) []byte { return binary.BigEndian.AppendUint32([]byte{id}, v) }

func propString(id byte, s string) []byte { return appendString([]byte{id}, s) }

func propPair(id byte, k, v string) []byte { return appendString(appendString([]byte{id}, k), v) }

func propVarint(id byte, v int) []byte { return appendVarint([]byte{id}, v) }

func props(list ...[]byte) []byte {
	var all []byte
	for _, p := range list {
		all = append(all, p...)
	}
	return append(appendVarint(nil, len(all)), all...)
}

// connectSpec describes a CONNECT packet.
type connectSpec struct {
	// Version is the protocol level: 3 (MQTT 3.1, "MQIsdp"), 4 (3.1.1) or 5.
	Version byte
	// ProtocolName overrides the name that goes with Version.
	ProtocolName string
	ClientID     string
	Clean        bool
	Keepalive    uint16
	// FlagsXor is XORed into the connect flags byte to build invalid ones.
	FlagsXor byte
	Will     *willSpec
	Username *string
	Password *string
	// Props are the encoded CONNECT properties for version 5, without the
	// length prefix; nil sends an empty property list.
	Props [][]byte
}

// willSpec describes the will message of a CONNECT packet.
type willSpec struct {
	Topic   string
	Payload string
	QoS     byte
	Retain  bool
	Props   [][]byte // version 5 will properties
}

func (s connectSpec) encode() []byte {
	name := s.ProtocolName
	if name == "" {
		name = "MQTT"
		if s.Version == 3 {
			name = "MQIsdp"
		}
	}
	body := appendString(nil, name)
	body = append(body, s.Version)

	var flags byte
	if s.Clean {
		flags |= 0x02
	}
	if s.Will != nil {
		flags |= 0x04 | s.Will.QoS<<3
		if s.Will.Retain {
			flags |= 0x20
		}
	}
	if s.Password != nil {
		flags |= 0x40
	}
	if s.Username != nil {
		flags |= 0x80
	}
	body = append(body, flags^s.FlagsXor)
	body = binary.BigEndian.AppendUint16(body, s.Keepalive)
	if s.Version == 5 {
		body = append(body, props(s.Props...)...)
	}

	body = appendString(body, s.ClientID)
	if s.Will != nil {
		if s.Version == 5 {
			body = append(body, props(s.Will.Props...)...)
		}
		body = appendString(body, s.Will.Topic)
		body = appendString(body, s.Will.Payload)
	}
	if s.Username != nil {
		body = appendString(body, *s.Username)
	}
	if s.Password != nil {
		body = appendString(body, *s.Password)
	}
	return frame(typeConnect<<4, body)
}

// publishSpec describes a PUBLISH packet.
type publishSpec struct {
	Topic   string
	QoS     byte
	Retain  bool
	Dup     bool
	ID      uint16
	Payload []byte
	Props   [][]byte // version 5 only
}

func encodePublish(version byte, s publishSpec) []byte {
	first := typePublish<<4 | s.QoS<<1
	if s.Dup {
		first |= 0x08
	}
	if s.Retain {
		first |= 0x01
	}
	body := appendString(nil, s.Topic)
	if s.QoS > 0 {
		body = binary.BigEndian.AppendUint16(body, s.ID)
	}
	if version == 5 {
		body = append(body, props(s.Props...)...)
	}
	body = append(body, s.Payload...)
	return frame(first, body)
}

// subscription is one topic filter of a SUBSCRIBE packet. Options is the
// subscription options byte: QoS in bits 0-1 and, for version 5, No Local
// (0x04), Retain As Published (0x08) and Retain Handling (bits 4-5).
type subscription struct {
	Filter  string
	Options byte
}

func encodeSubscribe(version byte, id uint16, subs []subscription, subProps ...[]byte) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	if version == 5 {
		body = append(body, props(subProps...)...)
	}
	for _, s := range subs {
		body = appendString(body, s.Filter)
		body = append(body, s.Options)
	}
	return frame(typeSubscribe<<4|0x02, body)
}

func encodeUnsubscribe(version byte, id uint16, filters ...string) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	if version == 5 {
		body = append(body, 0)
	}
	for _, f := range filters {
		body = appendString(body, f)
	}
	return frame(typeUnsubscribe<<4|0x02, body)
}

// encodeAck builds PUBACK, PUBREC, PUBREL or PUBCOMP. Only the packet id is
// sent, which in version 5 means reason code 0x00 with no properties.
func encodeAck(kind byte, id uint16) []byte {
	first := kind << 4
	if kind == typePubrel {
		first |= 0x02
	}
	return frame(first, binary.BigEndian.AppendUint16(nil, id))
}

func encodePingreq() []byte { return []byte{typePingreq << 4, 0} }

// encodeDisconnect builds a DISCONNECT. For version 5 with a non-zero reason
// or properties it carries them; otherwise it is the 2-byte form.
func encodeDisconnect(version byte, reason byte, p ...[]byte) []byte {
	if version != 5 || (reason == 0 && len(p) == 0) {
		return []byte{typeDisconnect << 4, 0}
	}
	return frame(typeDisconnect<<4, append([]byte{reason}, props(p...)...))
}

// properties holds decoded MQTT 5.0 properties. Integer properties are stored
// as uint32, strings and binary data as string, user properties as "k=v".
type properties map[byte][]any

func (p properties) u32(id byte) (uint32, bool) {
	if v, ok := p[id]; ok {
		n, ok := v[0].(uint32)
		return n, ok
	}
	return 0, false
}

func (p properties) str(id byte) (string, bool) {
	if v, ok := p[id]; ok {
		s, ok := v[0].(string)
		return s, ok
	}
	return "", false
}

// decodeProps decodes a length-prefixed property list and returns the bytes
// that follow it.
func decodeProps(b []byte) (properties, []byte, error) {
	r := &sliceReader{b: b}
	n, err := readVarint(r)
	if err != nil {
		return nil, nil, fmt.Errorf("property length: %w", err)
	}
	if n > len(r.b) {
		return nil, nil, fmt.Errorf("property length %d exceeds the %d bytes left", n, len(r.b))
	}
	list, rest := r.b[:n], r.b[n:]
	out := properties{}
	for len(list) > 0 {
		id := list[0]
		list = list[1:]
		var v any
		switch id {
		case propPayloadFormat, propRequestProblemInfo, propRequestResponseInfo, propMaximumQoS,
			propRetainAvailable, propWildcardAvailable, propSubIDAvailable, propSharedSubAvailable:
			if len(list) < 1 {
				return nil, nil, errShortProps
			}
			v, list = uint32(list[0]), list[1:]
		case propServerKeepAlive, propReceiveMaximum, propTopicAliasMaximum, propTopicAlias:
			if len(list) < 2 {
				return nil, nil, errShortProps
			}
			v, list = uint32(binary.BigEndian.Uint16(list)), list[2:]
		case propMessageExpiry, propSessionExpiry, propWillDelay, propMaximumPacketSize:
			if len(list) < 4 {
				return nil, nil, errShortProps
			}
			v, list = binary.BigEndian.Uint32(list), list[4:]
		case propSubscriptionID:
			sr := &sliceReader{b: list}
			n, err := readVarint(sr)
			if err != nil {
				return nil, nil, err
			}
			v, list = uint32(n), sr.b
		case propContentType, propResponseTopic, propCorrelationData, propAssignedClientID,
			propAuthMethod, propAuthData, propResponseInfo, propServerReference, propReasonString:
			s, r, err := cutString(list)
			if err != nil {
				return nil, nil, err
			}
			v, list = s, r
		case propUserProperty:
			k, r, err := cutString(list)
			if err != nil {
				return nil, nil, err
			}
			val, r, err := cutString(r)
			if err != nil {
				return nil, nil, err
			}
			v, list = k+"="+val, r
		default:
			return nil, nil, fmt.Errorf("unknown property id %#x", id)
		}
		out[id] = append(out[id], v)
	}
	return out, rest, nil
}

var errShortProps = errors.New("property list ends inside a property")

func cutString(b []byte) (string, []byte, error) {
	if len(b) < 2 {
		return "", nil, errors.New("string length missing")
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return "", nil, fmt.Errorf("string of %d bytes, %d left", n, len(b)-2)
	}
	return string(b[2 : 2+n]), b[2+n:], nil
}

type sliceReader struct{ b []byte }

func (r *sliceReader) ReadByte() (byte, error) {
	if len(r.b) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

// connack is a decoded CONNACK.
type connack struct {
	SessionPresent bool
	Code           byte // 3.1.1 return code or 5.0 reason code
	Props          properties
}

func decodeConnack(version byte, p *packet) (connack, error) {
	if p.Type != typeConnack {
		return connack{}, fmt.Errorf("expected CONNACK, got %v", p)
	}
	if len(p.Body) < 2 {
		return connack{}, fmt.Errorf("CONNACK body of %d bytes", len(p.Body))
	}
	c := connack{SessionPresent: p.Body[0]&1 == 1, Code: p.Body[1]}
	if version == 5 && len(p.Body) > 2 {
		pr, _, err := decodeProps(p.Body[2:])
		if err != nil {
			return c, fmt.Errorf("CONNACK properties: %w", err)
		}
		c.Props = pr
	}
	return c, nil
}

// publishMsg is a decoded PUBLISH.
type publishMsg struct {
	Topic   string
	QoS     byte
	Dup     bool
	Retain  bool
	ID      uint16
	Payload string
	Props   properties
}

func decodePublish(version byte, p *packet) (publishMsg, error) {
	if p.Type != typePublish {
		return publishMsg{}, fmt.Errorf("expected PUBLISH, got %v", p)
	}
	m := publishMsg{QoS: (p.Flags >> 1) & 3, Dup: p.Flags&8 != 0, Retain: p.Flags&1 != 0}
	topic, rest, err := cutString(p.Body)
	if err != nil {
		return m, fmt.Errorf("PUBLISH topic: %w", err)
	}
	m.Topic = topic
	if m.QoS > 0 {
		if len(rest) < 2 {
			return m, errors.New("PUBLISH packet id missing")
		}
		m.ID = binary.BigEndian.Uint16(rest)
		rest = rest[2:]
	}
	if version == 5 {
		pr, r, err := decodeProps(rest)
		if err != nil {
			return m, fmt.Errorf("PUBLISH properties: %w", err)
		}
		m.Props, rest = pr, r
	}
	m.Payload = string(rest)
	return m, nil
}

// ack is a decoded PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK or UNSUBACK.
type ack struct {
	ID uint16
	// Codes holds the reason code of a publish acknowledgement (absent means
	// 0x00) or the return codes of a SUBACK or UNSUBACK.
	Codes []byte
}

func decodeAck(version byte, p *packet) (ack, error) {
	if len(p.Body) < 2 {
		return ack{}, fmt.Errorf("%v: body of %d bytes", p, len(p.Body))
	}
	a := ack{ID: binary.BigEndian.Uint16(p.Body)}
	rest := p.Body[2:]
	switch p.Type {
	case typeSuback, typeUnsuback:
		if version == 5 {
			_, r, err := decodeProps(rest)
			if err != nil {
				return a, err
			}
			rest = r
		}
		a.Codes = rest
	default:
		if len(rest) > 0 {
			a.Codes = rest[:1]
		} else {
			a.Codes = []byte{0}
		}
	}
	return a, nil
}

// disconnectReason returns the reason code of a version 5 DISCONNECT (an empty
// body means 0x00).
func disconnectReason(p *packet) byte {
	if len(p.Body) == 0 {
		return 0
	}
	return p.Body[0]
}
