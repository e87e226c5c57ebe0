package packet

import "fmt"

// decodeAck decodes the body of a PUBACK, PUBREC, PUBREL or PUBCOMP, which
// share one layout: a packet identifier, and in 5.0 a reason code and
// properties that may be left out. A remaining length of 2 means reason code
// 0 and no properties; of 3, no properties.
func decodeAck(d *decoder, t Type, version byte, id *uint16, code *ReasonCode, props *Properties) error {
	var err error
	if *id, err = d.readPacketID(t); err != nil {
		return err
	}
	if version != Version5 || d.remaining() == 0 {
		return d.end(t)
	}

	c, err := d.readByte("reason code")
	if err != nil {
		return err
	}
	*code = ReasonCode(c)
	if !validReason(t, *code) {
		return Errorf(ReasonProtocolError, "reason code 0x%02X is not valid in %v", c, t)
	}
	if d.remaining() == 0 {
		return nil
	}
	if err := decodeProperties(d, t, props); err != nil {
		return err
	}
	return d.end(t)
}

// appendAck appends a PUBACK, PUBREC, PUBREL or PUBCOMP. In 5.0 it writes the
// shortest form the spec allows: no reason code and no property length when
// the reason code is 0 and no property is written, and no property length when
// only the reason code is non-zero.
func appendAck(dst []byte, t Type, flags byte, version byte, id uint16, code ReasonCode, props *Properties) ([]byte, error) {
	if err := checkVersion(t, version); err != nil {
		return dst, err
	}

	e := newEncoder(dst)
	mark := e.header(t, flags)
	e.uint16(id)
	if version == Version5 {
		e.reasonAndProperties(t, code, props)
	}
	return e.finish(t, mark, nil)
}

// reasonAndProperties appends a reason code and a property block. Then it
// drops the trailing parts that the short forms of 5.0 let a sender leave out:
// the property length when it is 0, and then the reason code when it is 0 too.
// The four acknowledgements, DISCONNECT and AUTH use it, because in them the
// reason code ends the variable header.
func (e *encoder) reasonAndProperties(t Type, code ReasonCode, props *Properties) {
	e.byte(byte(code))
	before := len(e.buf)
	e.properties(t, props)

	// An empty block is the single byte 0; any property makes it longer.
	if len(e.buf) != before+1 {
		return
	}
	e.buf = e.buf[:before]
	if code == ReasonSuccess {
		e.buf = e.buf[:before-1]
	}
}

// Encode appends the PUBACK for version to dst.
func (p *Puback) Encode(dst []byte, version byte) ([]byte, error) {
	return appendAck(dst, TypePuback, 0, version, p.PacketID, p.ReasonCode, &p.Properties)
}

// Encode appends the PUBREC for version to dst.
func (p *Pubrec) Encode(dst []byte, version byte) ([]byte, error) {
	return appendAck(dst, TypePubrec, 0, version, p.PacketID, p.ReasonCode, &p.Properties)
}

// Encode appends the PUBREL for version to dst, with the fixed header flags
// 0010 that PUBREL requires.
func (p *Pubrel) Encode(dst []byte, version byte) ([]byte, error) {
	return appendAck(dst, TypePubrel, 0x02, version, p.PacketID, p.ReasonCode, &p.Properties)
}

// Encode appends the PUBCOMP for version to dst.
func (p *Pubcomp) Encode(dst []byte, version byte) ([]byte, error) {
	return appendAck(dst, TypePubcomp, 0, version, p.PacketID, p.ReasonCode, &p.Properties)
}

// SuccessAck is a PUBACK, PUBREC, PUBREL or PUBCOMP with reason code 0x00
// and no properties, the acknowledgement of nearly every QoS 1 and 2
// message. Its wire form is that of the full type. A queue of outbound
// packets holds it in 4 bytes instead of the full type's struct with its
// Properties, which is about 300 bytes.
type SuccessAck struct {
	Kind     Type
	PacketID uint16
}

// Type returns the acknowledgement's packet type.
func (a SuccessAck) Type() Type { return a.Kind }

// Encode appends the acknowledgement for version to dst.
func (a SuccessAck) Encode(dst []byte, version byte) ([]byte, error) {
	var flags byte
	switch a.Kind {
	case TypePuback, TypePubrec, TypePubcomp:
	case TypePubrel:
		flags = 0x02
	default:
		return dst, fmt.Errorf("packet: SuccessAck of type %v is invalid: use PUBACK, PUBREC, PUBREL or PUBCOMP", a.Kind)
	}
	var none Properties
	return appendAck(dst, a.Kind, flags, version, a.PacketID, ReasonSuccess, &none)
}
