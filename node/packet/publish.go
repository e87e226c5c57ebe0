package packet

// PUBLISH fixed header flags.
const (
	publishRetain   = 0x01
	publishQoSShift = 1
	publishDup      = 0x08
)

// decodePublish decodes a PUBLISH body. checkFixedHeader has already rejected
// QoS 3 and DUP with QoS 0. The payload aliases the body and is nil when
// empty.
//
// The topic name is checked only as a UTF-8 string. Wildcards in it, and an
// empty topic name in 3.1 and 3.1.1, are left to the router, which owns the
// topic rules. The one topic rule checked here is that a 5.0 PUBLISH with an
// empty topic name must carry a topic alias, because it depends on the
// properties.
//
// It decodes into p, or into a new Publish when p is nil.
func decodePublish(d *decoder, b0 byte, version byte, p *Publish) (*Publish, error) {
	if p == nil {
		p = new(Publish)
	}
	*p = Publish{
		Dup:    b0&publishDup != 0,
		QoS:    b0 >> publishQoSShift & 0x03,
		Retain: b0&publishRetain != 0,
	}

	var err error
	if p.Topic, err = d.readString("topic name"); err != nil {
		return nil, err
	}
	if p.QoS > 0 {
		if p.PacketID, err = d.readPacketID(TypePublish); err != nil {
			return nil, err
		}
	}
	if version == Version5 {
		if err := decodeProperties(d, TypePublish, &p.Properties); err != nil {
			return nil, err
		}
		if p.Topic == "" && !p.Properties.HasTopicAlias {
			return nil, Errorf(ReasonProtocolError, "PUBLISH with an empty topic name and no topic alias")
		}
	}
	p.Payload = d.rest()
	return p, nil
}

// Encode appends the PUBLISH for version to dst. Properties are written only
// for 5.0. The payload is appended last and copied once.
func (p *Publish) Encode(dst []byte, version byte) ([]byte, error) {
	if err := checkVersion(TypePublish, version); err != nil {
		return dst, err
	}

	e := newEncoder(dst)
	e.checkQoS("QoS", p.QoS)
	flags := (p.QoS & 0x03) << publishQoSShift
	if p.Dup {
		flags |= publishDup
	}
	if p.Retain {
		flags |= publishRetain
	}
	mark := e.header(TypePublish, flags)
	e.string("topic name", p.Topic)
	if p.QoS > 0 {
		e.uint16(p.PacketID)
	}
	if version == Version5 {
		e.properties(TypePublish, &p.Properties)
	}
	return e.finish(TypePublish, mark, p.Payload)
}
