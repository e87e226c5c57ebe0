package packet

import "encoding/binary"

// Subscription option bits of MQTT 5.0, section 3.8.3.1. In 3.1 and 3.1.1
// only the QoS bits exist and the others are reserved.
const (
	optionQoS                 = 0x03
	optionNoLocal             = 0x04
	optionRetainAsPublished   = 0x08
	optionRetainHandlingShift = 4
	optionReserved5           = 0xC0
	optionReserved3           = 0xFC
)

// countEntries counts the entries of a SUBSCRIBE or UNSUBSCRIBE payload, each a
// length-prefixed string followed by extra bytes, so that the decoder can
// allocate the slice once. A truncated last entry is counted; the decoder
// reports it.
func countEntries(b []byte, extra int) int {
	n := 0
	for len(b) >= 2 {
		n++
		skip := 2 + int(binary.BigEndian.Uint16(b)) + extra
		if skip >= len(b) {
			break
		}
		b = b[skip:]
	}
	return n
}

// decodeSubscribe decodes a SUBSCRIBE body. Topic filters are checked only as
// UTF-8 strings: wildcard placement, shared subscription syntax and the rule
// that No Local must not be set on a shared subscription [MQTT-3.8.3-4] belong
// to the router and the node.
func decodeSubscribe(d *decoder, version byte) (*Subscribe, error) {
	s := &Subscribe{}
	var err error
	if s.PacketID, err = d.readPacketID(TypeSubscribe); err != nil {
		return nil, err
	}
	if version == Version5 {
		if err := decodeProperties(d, TypeSubscribe, &s.Properties); err != nil {
			return nil, err
		}
	}
	if d.remaining() == 0 {
		return nil, Errorf(ReasonProtocolError, "SUBSCRIBE without a topic filter [MQTT-3.8.3-3]")
	}

	s.Subscriptions = make([]Subscription, 0, countEntries(d.buf[d.off:], 1))
	for d.remaining() > 0 {
		var sub Subscription
		if sub.Filter, err = d.readString("topic filter"); err != nil {
			return nil, err
		}
		opts, err := d.readByte("subscription options")
		if err != nil {
			return nil, err
		}
		if err := decodeOptions(opts, version, &sub); err != nil {
			return nil, err
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	return s, nil
}

// decodeOptions checks the subscription options byte and stores it in sub.
func decodeOptions(opts, version byte, sub *Subscription) error {
	sub.QoS = opts & optionQoS
	if version != Version5 {
		if opts&optionReserved3 != 0 || sub.QoS == 3 {
			return Errorf(ReasonMalformedPacket, "subscription options 0x%02X: reserved bits set or QoS 3 [MQTT-3-8.3-4]", opts)
		}
		return nil
	}

	if opts&optionReserved5 != 0 {
		return Errorf(ReasonMalformedPacket, "subscription options 0x%02X: reserved bits 6 and 7 set [MQTT-3.8.3-5]", opts)
	}
	if sub.QoS == 3 {
		return Errorf(ReasonProtocolError, "subscription with maximum QoS 3")
	}
	sub.NoLocal = opts&optionNoLocal != 0
	sub.RetainAsPublished = opts&optionRetainAsPublished != 0
	sub.RetainHandling = opts >> optionRetainHandlingShift & 0x03
	if sub.RetainHandling == 3 {
		return Errorf(ReasonProtocolError, "subscription with retain handling 3")
	}
	return nil
}

// Encode appends the SUBSCRIBE for version to dst, with the fixed header flags
// 0010 that SUBSCRIBE requires. For 3.1 and 3.1.1 only the QoS of each
// subscription is written.
func (s *Subscribe) Encode(dst []byte, version byte) ([]byte, error) {
	if err := checkVersion(TypeSubscribe, version); err != nil {
		return dst, err
	}

	e := newEncoder(dst)
	mark := e.header(TypeSubscribe, 0x02)
	e.uint16(s.PacketID)
	if version == Version5 {
		e.properties(TypeSubscribe, &s.Properties)
	}
	for i := range s.Subscriptions {
		sub := &s.Subscriptions[i]
		e.string("topic filter", sub.Filter)
		e.checkQoS("subscription QoS", sub.QoS)
		opts := sub.QoS & optionQoS
		if version == Version5 {
			if sub.RetainHandling > 2 {
				e.fail("retain handling %d is not 0, 1 or 2", sub.RetainHandling)
			}
			if sub.NoLocal {
				opts |= optionNoLocal
			}
			if sub.RetainAsPublished {
				opts |= optionRetainAsPublished
			}
			opts |= (sub.RetainHandling & 0x03) << optionRetainHandlingShift
		}
		e.byte(opts)
	}
	return e.finish(TypeSubscribe, mark, nil)
}

// decodeSuback decodes a SUBACK body. In 3.1 and 3.1.1 the return codes are
// 0, 1, 2 or 0x80 [MQTT-3.9.3-2] and are stored as the reason codes of the
// same value.
func decodeSuback(d *decoder, version byte) (*Suback, error) {
	s := &Suback{}
	var err error
	if s.PacketID, err = d.readPacketID(TypeSuback); err != nil {
		return nil, err
	}
	if version == Version5 {
		if err := decodeProperties(d, TypeSuback, &s.Properties); err != nil {
			return nil, err
		}
	}
	if s.ReasonCodes, err = decodeReasonList(d, TypeSuback, version); err != nil {
		return nil, err
	}
	return s, nil
}

// decodeReasonList decodes the payload of a SUBACK or 5.0 UNSUBACK: one
// reason code per topic filter of the request, so at least one.
func decodeReasonList(d *decoder, t Type, version byte) ([]ReasonCode, error) {
	rest := d.rest()
	if len(rest) == 0 {
		return nil, Errorf(ReasonProtocolError, "%v without a reason code", t)
	}
	codes := make([]ReasonCode, len(rest))
	for i, b := range rest {
		c := ReasonCode(b)
		valid := validReason(t, c)
		if version != Version5 {
			valid = c <= ReasonGrantedQoS2 || c == ReasonUnspecifiedError
		}
		if !valid {
			return nil, Errorf(ReasonProtocolError, "reason code 0x%02X is not valid in %v", b, t)
		}
		codes[i] = c
	}
	return codes, nil
}

// Encode appends the SUBACK for version to dst. For 3.1 and 3.1.1 each reason
// code is mapped to a return code: the granted QoS, or 0x80 for any failure.
func (s *Suback) Encode(dst []byte, version byte) ([]byte, error) {
	if err := checkVersion(TypeSuback, version); err != nil {
		return dst, err
	}

	e := newEncoder(dst)
	mark := e.header(TypeSuback, 0)
	e.uint16(s.PacketID)
	if version == Version5 {
		e.properties(TypeSuback, &s.Properties)
	}
	for _, c := range s.ReasonCodes {
		if version != Version5 {
			c = ReasonCode(v3SubackCode(c))
		}
		e.byte(byte(c))
	}
	return e.finish(TypeSuback, mark, nil)
}

// decodeUnsubscribe decodes an UNSUBSCRIBE body. Topic filters are checked
// only as UTF-8 strings.
func decodeUnsubscribe(d *decoder, version byte) (*Unsubscribe, error) {
	u := &Unsubscribe{}
	var err error
	if u.PacketID, err = d.readPacketID(TypeUnsubscribe); err != nil {
		return nil, err
	}
	if version == Version5 {
		if err := decodeProperties(d, TypeUnsubscribe, &u.Properties); err != nil {
			return nil, err
		}
	}
	if d.remaining() == 0 {
		return nil, Errorf(ReasonProtocolError, "UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]")
	}

	u.Filters = make([]string, 0, countEntries(d.buf[d.off:], 0))
	for d.remaining() > 0 {
		f, err := d.readString("topic filter")
		if err != nil {
			return nil, err
		}
		u.Filters = append(u.Filters, f)
	}
	return u, nil
}

// Encode appends the UNSUBSCRIBE for version to dst, with the fixed header
// flags 0010 that UNSUBSCRIBE requires.
func (u *Unsubscribe) Encode(dst []byte, version byte) ([]byte, error) {
	if err := checkVersion(TypeUnsubscribe, version); err != nil {
		return dst, err
	}

	e := newEncoder(dst)
	mark := e.header(TypeUnsubscribe, 0x02)
	e.uint16(u.PacketID)
	if version == Version5 {
		e.properties(TypeUnsubscribe, &u.Properties)
	}
	for _, f := range u.Filters {
		e.string("topic filter", f)
	}
	return e.finish(TypeUnsubscribe, mark, nil)
}

// decodeUnsuback decodes an UNSUBACK body. Before 5.0 it is only a packet
// identifier.
func decodeUnsuback(d *decoder, version byte) (*Unsuback, error) {
	u := &Unsuback{}
	var err error
	if u.PacketID, err = d.readPacketID(TypeUnsuback); err != nil {
		return nil, err
	}
	if version != Version5 {
		return u, d.end(TypeUnsuback)
	}
	if err := decodeProperties(d, TypeUnsuback, &u.Properties); err != nil {
		return nil, err
	}
	if u.ReasonCodes, err = decodeReasonList(d, TypeUnsuback, version); err != nil {
		return nil, err
	}
	return u, nil
}

// Encode appends the UNSUBACK for version to dst. Properties and reason codes
// are written only for 5.0.
func (u *Unsuback) Encode(dst []byte, version byte) ([]byte, error) {
	if err := checkVersion(TypeUnsuback, version); err != nil {
		return dst, err
	}

	e := newEncoder(dst)
	mark := e.header(TypeUnsuback, 0)
	e.uint16(u.PacketID)
	if version == Version5 {
		e.properties(TypeUnsuback, &u.Properties)
		for _, c := range u.ReasonCodes {
			e.byte(byte(c))
		}
	}
	return e.finish(TypeUnsuback, mark, nil)
}
