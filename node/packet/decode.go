package packet

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// bodyChunk is the largest body that read allocates in full before any of it
// has arrived. A larger body grows its buffer as bytes arrive, so a client that
// sends only a fixed header claiming 256 MiB costs this much memory and no more.
const bodyChunk = 64 << 10

// read implements Read.
func read(r *bufio.Reader, version byte, maxSize uint32, pub *Publish) (Packet, error) {
	switch version {
	case 0, Version31, Version311, Version5:
	default:
		return nil, fmt.Errorf("packet: read with unknown protocol version %d", version)
	}

	b0, err := r.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("packet: read fixed header: %w", err)
	}
	remaining, n, err := readRemainingLength(r)
	if err != nil {
		return nil, err
	}
	if err := checkFixedHeader(b0, version); err != nil {
		return nil, err
	}

	// The size check comes before the body buffer exists, so an oversized
	// length costs nothing but the fixed header.
	if maxSize == 0 {
		maxSize = DefaultMaxPacketSize
	}
	if size := uint64(1+n) + uint64(remaining); size > uint64(maxSize) {
		return nil, Errorf(ReasonPacketTooLarge, "packet of %d bytes exceeds the maximum of %d", size, maxSize)
	}

	body, err := readBody(r, int(remaining))
	if err != nil {
		return nil, fmt.Errorf("packet: read %v body of %d bytes: %w", Type(b0>>4), remaining, err)
	}
	p, err := decode(b0, body, version, pub)
	if err != nil {
		// Only a CONNECT comes back with its error, so that the node can
		// reply in the client's protocol version.
		if c, ok := p.(*Connect); ok && c != nil {
			return c, err
		}
		return nil, err
	}
	return p, nil
}

// readBody reads exactly n bytes. An EOF, even before the first byte, becomes
// io.ErrUnexpectedEOF because the fixed header promised a body.
func readBody(r *bufio.Reader, n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if n <= bodyChunk {
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, unexpectedEOF(err)
		}
		return body, nil
	}

	// Grow by doubling up to n. The copies cost about n bytes in total, which
	// only packets larger than bodyChunk pay.
	body := make([]byte, 0, bodyChunk)
	for len(body) < n {
		if len(body) == cap(body) {
			grown := make([]byte, len(body), min(2*cap(body), n))
			copy(grown, body)
			body = grown
		}
		m, err := io.ReadFull(r, body[len(body):cap(body)])
		body = body[:len(body)+m]
		if err != nil {
			return nil, unexpectedEOF(err)
		}
	}
	return body, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// checkFixedHeader checks the packet type against the connection state and the
// flags of the first header byte, before the body is read.
func checkFixedHeader(b0, version byte) error {
	t := Type(b0 >> 4)
	flags := b0 & 0x0F

	switch {
	case version == 0 && t != TypeConnect:
		return Errorf(ReasonProtocolError, "first packet is %v, expected CONNECT [MQTT-3.1.0-1]", t)
	case version != 0 && t == TypeConnect:
		return Errorf(ReasonProtocolError, "second CONNECT on the connection [MQTT-3.1.0-2]")
	case t == 0:
		return Errorf(ReasonMalformedPacket, "reserved packet type 0")
	case t == TypeAuth && version != Version5:
		return Errorf(ReasonMalformedPacket, "AUTH is reserved before MQTT 5.0")
	}

	switch t {
	case TypePublish:
		qos := flags >> 1 & 0x03
		if qos == 3 {
			return Errorf(ReasonMalformedPacket, "PUBLISH with QoS 3 [MQTT-3.3.1-4]")
		}
		if qos == 0 && flags&0x08 != 0 {
			return Errorf(ReasonMalformedPacket, "PUBLISH with QoS 0 and DUP set [MQTT-3.3.1-2]")
		}
	case TypePubrel, TypeSubscribe, TypeUnsubscribe:
		// MQTT 3.1 let a client set DUP when it sent these packets again.
		if version == Version31 {
			flags &^= 0x08
		}
		if flags != 0x02 {
			return Errorf(ReasonMalformedPacket, "%v fixed header flags are %04b, expected 0010 [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]", t, b0&0x0F)
		}
	default:
		if flags != 0 {
			return Errorf(ReasonMalformedPacket, "%v fixed header flags are %04b, expected 0000 [MQTT-2.2.2-1]", t, flags)
		}
	}
	return nil
}

// decode decodes the body of a packet whose fixed header passed
// checkFixedHeader.
func decode(b0 byte, body []byte, version byte, pub *Publish) (Packet, error) {
	d := decoder{buf: body}
	switch t := Type(b0 >> 4); t {
	case TypeConnect:
		return decodeConnect(&d)
	case TypeConnack:
		return decodeConnack(&d, version)
	case TypePublish:
		return decodePublish(&d, b0, version, pub)
	case TypePuback:
		p := &Puback{}
		return p, decodeAck(&d, t, version, &p.PacketID, &p.ReasonCode, &p.Properties)
	case TypePubrec:
		p := &Pubrec{}
		return p, decodeAck(&d, t, version, &p.PacketID, &p.ReasonCode, &p.Properties)
	case TypePubrel:
		p := &Pubrel{}
		return p, decodeAck(&d, t, version, &p.PacketID, &p.ReasonCode, &p.Properties)
	case TypePubcomp:
		p := &Pubcomp{}
		return p, decodeAck(&d, t, version, &p.PacketID, &p.ReasonCode, &p.Properties)
	case TypeSubscribe:
		return decodeSubscribe(&d, version)
	case TypeSuback:
		return decodeSuback(&d, version)
	case TypeUnsubscribe:
		return decodeUnsubscribe(&d, version)
	case TypeUnsuback:
		return decodeUnsuback(&d, version)
	case TypePingreq:
		return &Pingreq{}, d.end(t)
	case TypePingresp:
		return &Pingresp{}, d.end(t)
	case TypeDisconnect:
		p := &Disconnect{}
		return p, decodeReasonOnly(&d, t, version, &p.ReasonCode, &p.Properties)
	default: // TypeAuth, only in 5.0 as checkFixedHeader made sure
		p := &Auth{}
		return p, decodeReasonOnly(&d, t, version, &p.ReasonCode, &p.Properties)
	}
}

// decoder reads the fields of one packet body. Every method checks the bounds
// before indexing and returns an *Error with ReasonMalformedPacket, naming the
// field, when the body is too short.
type decoder struct {
	buf []byte
	off int
}

func (d *decoder) remaining() int { return len(d.buf) - d.off }

func (d *decoder) truncated(field string, need int) error {
	return Errorf(ReasonMalformedPacket, "%s needs %d bytes but %d remain", field, need, d.remaining())
}

func (d *decoder) readByte(field string) (byte, error) {
	if d.remaining() < 1 {
		return 0, d.truncated(field, 1)
	}
	b := d.buf[d.off]
	d.off++
	return b, nil
}

func (d *decoder) readUint16(field string) (uint16, error) {
	if d.remaining() < 2 {
		return 0, d.truncated(field, 2)
	}
	v := binary.BigEndian.Uint16(d.buf[d.off:])
	d.off += 2
	return v, nil
}

func (d *decoder) readUint32(field string) (uint32, error) {
	if d.remaining() < 4 {
		return 0, d.truncated(field, 4)
	}
	v := binary.BigEndian.Uint32(d.buf[d.off:])
	d.off += 4
	return v, nil
}

func (d *decoder) readVarInt(field string) (uint32, error) {
	v, n, err := decodeVarInt(d.buf[d.off:])
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return 0, Errorf(e.Code, "%s: %s", field, e.Reason)
		}
		return 0, err
	}
	d.off += n
	return v, nil
}

// readBinary reads two-byte-length-prefixed binary data. The result aliases
// the body, with its capacity cut to its length so that an append by the
// caller cannot overwrite the next field. Empty data is returned as nil.
func (d *decoder) readBinary(field string) ([]byte, error) {
	// The length prefix is read inline: passing field+" length" on would
	// build that string on every call.
	if d.remaining() < 2 {
		return nil, Errorf(ReasonMalformedPacket, "%s length needs 2 bytes but %d remain", field, d.remaining())
	}
	n := binary.BigEndian.Uint16(d.buf[d.off:])
	d.off += 2
	if int(n) > d.remaining() {
		return nil, d.truncated(field, int(n))
	}
	if n == 0 {
		return nil, nil
	}
	b := d.buf[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

// readString reads a UTF-8 encoded string and checks it as ValidUTF8 does
// before it copies the bytes into a new string.
func (d *decoder) readString(field string) (string, error) {
	b, err := d.readBinary(field)
	if err != nil {
		return "", err
	}
	if !validUTF8(b) {
		return "", Errorf(ReasonMalformedPacket, "%s is not valid UTF-8 or contains U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2]", field)
	}
	return string(b), nil
}

// readPacketID reads a packet identifier, which must not be zero
// [MQTT-2.3.1-1]. Zero is reported as ReasonProtocolError in every version:
// the packet parses, but the value is one the spec forbids.
func (d *decoder) readPacketID(t Type) (uint16, error) {
	id, err := d.readUint16("packet identifier")
	if err != nil {
		return 0, err
	}
	if id == 0 {
		return 0, Errorf(ReasonProtocolError, "%v with packet identifier 0 [MQTT-2.3.1-1]", t)
	}
	return id, nil
}

// rest returns the unread bytes, or nil when none remain.
func (d *decoder) rest() []byte {
	if d.remaining() == 0 {
		return nil
	}
	b := d.buf[d.off:]
	d.off = len(d.buf)
	return b
}

// end reports bytes left over after the last field of a packet.
func (d *decoder) end(t Type) error {
	if n := d.remaining(); n != 0 {
		return Errorf(ReasonMalformedPacket, "%v has %d bytes after its last field", t, n)
	}
	return nil
}
