package packet

// Protocol names carried in CONNECT.
const (
	protocolNameMQTT   = "MQTT"   // 3.1.1 and 5.0
	protocolNameMQIsdp = "MQIsdp" // 3.1
)

// Connect flag bits, section 3.1.2.3 of MQTT 3.1.1 and 5.0.
const (
	connectReserved     = 0x01
	connectCleanStart   = 0x02
	connectWill         = 0x04
	connectWillQoSShift = 3
	connectWillRetain   = 0x20
	connectPassword     = 0x40
	connectUsername     = 0x80
)

// decodeConnect decodes a CONNECT body. The protocol level in the packet
// decides the version of the rest of the decoding.
//
// Once the protocol name and level are read, an error comes back together with
// the partly decoded *Connect, so that the node can reply in the client's
// version: a 3.1.1 server must send CONNACK with return code 1 for an unsupported
// level [MQTT-3.1.2-2], and a 5.0 server may send CONNACK with the reason code
// before it closes the connection. Fields after the failing one are zero.
func decodeConnect(d *decoder) (*Connect, error) {
	name, err := d.readString("protocol name")
	if err != nil {
		return nil, err
	}
	level, err := d.readByte("protocol level")
	if err != nil {
		return nil, err
	}
	c := &Connect{ProtocolName: name, ProtocolVersion: level}
	if err := checkProtocol(name, level); err != nil {
		return c, err
	}
	return c, decodeConnectRest(d, c)
}

// checkProtocol checks the protocol name and level. A known name with a level
// it does not go with is an unsupported version rather than a protocol error.
// A client that gets CONNACK return code 1 for it can retry with a lower level.
func checkProtocol(name string, level byte) error {
	switch name {
	case protocolNameMQTT:
		if level == Version311 || level == Version5 {
			return nil
		}
	case protocolNameMQIsdp:
		if level == Version31 {
			return nil
		}
	default:
		return Errorf(ReasonProtocolError, "protocol name %.16q, expected \"MQTT\" or \"MQIsdp\" [MQTT-3.1.2-1]", name)
	}
	return Errorf(ReasonUnsupportedProtocolVersion, "protocol level %d with protocol name %q [MQTT-3.1.2-2]", level, name)
}

// decodeConnectRest decodes the CONNECT fields after the protocol level.
func decodeConnectRest(d *decoder, c *Connect) error {
	v5 := c.ProtocolVersion == Version5
	flags, err := d.readByte("connect flags")
	if err != nil {
		return err
	}
	if flags&connectReserved != 0 {
		return Errorf(ReasonMalformedPacket, "reserved connect flag is set [MQTT-3.1.2-3]")
	}
	hasWill := flags&connectWill != 0
	willQoS := flags >> connectWillQoSShift & 0x03
	willRetain := flags&connectWillRetain != 0
	if !hasWill && (willQoS != 0 || willRetain) {
		return Errorf(ReasonMalformedPacket, "will QoS or will retain set without the will flag [MQTT-3.1.2-11] [MQTT-3.1.2-13]")
	}
	if willQoS == 3 {
		return Errorf(ReasonMalformedPacket, "will QoS 3 [MQTT-3.1.2-14]")
	}
	c.CleanStart = flags&connectCleanStart != 0
	c.UsernameFlag = flags&connectUsername != 0
	c.PasswordFlag = flags&connectPassword != 0

	// 5.0 allows a password without a user name. 3.1.1 does not
	// [MQTT-3.1.2-22], and the same rule is applied to 3.1, whose clients
	// never send one.
	if !v5 && c.PasswordFlag && !c.UsernameFlag {
		return Errorf(ReasonMalformedPacket, "password flag set without the user name flag [MQTT-3.1.2-22]")
	}

	if c.KeepAlive, err = d.readUint16("keep alive"); err != nil {
		return err
	}
	if v5 {
		if err := decodeProperties(d, TypeConnect, &c.Properties); err != nil {
			return err
		}
	}
	if c.ClientID, err = d.readString("client identifier"); err != nil {
		return err
	}

	if hasWill {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if v5 {
			if err := decodeProperties(d, typeWill, &w.Properties); err != nil {
				return err
			}
		}
		if w.Topic, err = d.readString("will topic"); err != nil {
			return err
		}
		if w.Payload, err = d.readBinary("will payload"); err != nil {
			return err
		}
		c.Will = w
	}

	if c.UsernameFlag {
		if c.Username, err = d.readString("user name"); err != nil {
			return err
		}
	}
	if c.PasswordFlag {
		if c.Password, err = d.readBinary("password"); err != nil {
			return err
		}
	}
	if err := d.end(TypeConnect); err != nil {
		return err
	}

	if v5 && len(c.Properties.AuthData) > 0 && c.Properties.AuthMethod == "" {
		return Errorf(ReasonProtocolError, "authentication data without an authentication method")
	}
	return nil
}

// Encode appends the CONNECT for version to dst. A version of 0 means
// c.ProtocolVersion. The protocol name follows the version ("MQIsdp" for 3.1,
// "MQTT" otherwise) and c.ProtocolName is ignored, so the output is always a
// CONNECT that Read accepts as far as the protocol goes.
func (c *Connect) Encode(dst []byte, version byte) ([]byte, error) {
	if version == 0 {
		version = c.ProtocolVersion
	}
	if err := checkVersion(TypeConnect, version); err != nil {
		return dst, err
	}

	e := newEncoder(dst)
	mark := e.header(TypeConnect, 0)
	if version == Version31 {
		e.string("", protocolNameMQIsdp)
	} else {
		e.string("", protocolNameMQTT)
	}
	e.byte(version)
	e.byte(c.flags(&e))
	e.uint16(c.KeepAlive)
	if version == Version5 {
		e.properties(TypeConnect, &c.Properties)
	}
	e.string("client identifier", c.ClientID)
	if c.Will != nil {
		if version == Version5 {
			e.properties(typeWill, &c.Will.Properties)
		}
		e.string("will topic", c.Will.Topic)
		e.binary("will payload", c.Will.Payload)
	}
	if c.UsernameFlag {
		e.string("user name", c.Username)
	}
	if c.PasswordFlag {
		e.binary("password", c.Password)
	}
	return e.finish(TypeConnect, mark, nil)
}

// flags returns the connect flags byte for c.
func (c *Connect) flags(e *encoder) byte {
	var f byte
	if c.CleanStart {
		f |= connectCleanStart
	}
	if c.Will != nil {
		e.checkQoS("will QoS", c.Will.QoS)
		f |= connectWill | (c.Will.QoS&0x03)<<connectWillQoSShift
		if c.Will.Retain {
			f |= connectWillRetain
		}
	}
	if c.UsernameFlag {
		f |= connectUsername
	}
	if c.PasswordFlag {
		f |= connectPassword
	}
	return f
}

// decodeConnack decodes a CONNACK body.
func decodeConnack(d *decoder, version byte) (*Connack, error) {
	flags, err := d.readByte("connect acknowledge flags")
	if err != nil {
		return nil, err
	}
	code, err := d.readByte("connect reason code")
	if err != nil {
		return nil, err
	}

	c := &Connack{}
	// In 3.1 the first byte is reserved with no rule, and there is no
	// session present flag.
	if version != Version31 {
		if flags&0xFE != 0 {
			return nil, Errorf(ReasonMalformedPacket, "reserved CONNACK flags are set [MQTT-3.2.2-1]")
		}
		c.SessionPresent = flags&0x01 != 0
	}

	if version == Version5 {
		c.ReasonCode = ReasonCode(code)
		if !validReason(TypeConnack, c.ReasonCode) {
			return nil, Errorf(ReasonProtocolError, "reason code 0x%02X is not valid in CONNACK", code)
		}
		if err := decodeProperties(d, TypeConnack, &c.Properties); err != nil {
			return nil, err
		}
	} else {
		rc, ok := reasonFromV3Connack(code)
		if !ok {
			return nil, Errorf(ReasonProtocolError, "CONNACK return code %d is reserved", code)
		}
		c.ReasonCode = rc
	}
	if c.SessionPresent && c.ReasonCode != ReasonSuccess {
		return nil, Errorf(ReasonProtocolError, "CONNACK with session present and reason code 0x%02X [MQTT-3.2.2-4]", code)
	}
	return c, d.end(TypeConnack)
}

// Encode appends the CONNACK for version to dst. In 3.1 and 3.1.1 the reason
// code is written as ReasonCode.V3ConnackCode returns it and properties are
// left out. In 3.1 the session present flag does not exist and is not written.
func (c *Connack) Encode(dst []byte, version byte) ([]byte, error) {
	if err := checkVersion(TypeConnack, version); err != nil {
		return dst, err
	}

	e := newEncoder(dst)
	mark := e.header(TypeConnack, 0)
	if c.SessionPresent && version != Version31 {
		e.byte(0x01)
	} else {
		e.byte(0)
	}
	if version == Version5 {
		e.byte(byte(c.ReasonCode))
		e.properties(TypeConnack, &c.Properties)
	} else {
		e.byte(c.ReasonCode.V3ConnackCode())
	}
	return e.finish(TypeConnack, mark, nil)
}
