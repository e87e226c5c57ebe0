package packet

import "fmt"

// decodeReasonOnly decodes the body of a 5.0 DISCONNECT or AUTH: a reason code
// and properties, both optional. A remaining length of 0 means reason code 0
// and no properties; of 1, no properties. Before 5.0 a DISCONNECT has no body.
func decodeReasonOnly(d *decoder, t Type, version byte, code *ReasonCode, props *Properties) error {
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

// appendEmpty appends a packet with no body.
func appendEmpty(dst []byte, t Type, version byte) ([]byte, error) {
	if err := checkVersion(t, version); err != nil {
		return dst, err
	}
	return append(dst, byte(t)<<4, 0), nil
}

// Encode appends the PINGREQ to dst.
func (*Pingreq) Encode(dst []byte, version byte) ([]byte, error) {
	return appendEmpty(dst, TypePingreq, version)
}

// Encode appends the PINGRESP to dst.
func (*Pingresp) Encode(dst []byte, version byte) ([]byte, error) {
	return appendEmpty(dst, TypePingresp, version)
}

// Encode appends the DISCONNECT for version to dst. Before 5.0 it has no body
// and the reason code and properties are ignored. In 5.0 it takes the shortest
// form the spec allows, as the acknowledgements do.
func (p *Disconnect) Encode(dst []byte, version byte) ([]byte, error) {
	if version != Version5 {
		return appendEmpty(dst, TypeDisconnect, version)
	}
	e := newEncoder(dst)
	mark := e.header(TypeDisconnect, 0)
	e.reasonAndProperties(TypeDisconnect, p.ReasonCode, &p.Properties)
	return e.finish(TypeDisconnect, mark, nil)
}

// Encode appends the AUTH to dst. AUTH exists only in 5.0, so any other
// version is an error.
func (p *Auth) Encode(dst []byte, version byte) ([]byte, error) {
	if version != Version5 {
		return dst, fmt.Errorf("%w: AUTH does not exist in protocol version %d", ErrNotEncodable, version)
	}
	e := newEncoder(dst)
	mark := e.header(TypeAuth, 0)
	e.reasonAndProperties(TypeAuth, p.ReasonCode, &p.Properties)
	return e.finish(TypeAuth, mark, nil)
}
