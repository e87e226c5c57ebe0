package packet

// Property identifiers of MQTT 5.0, section 2.2.2.2.
const (
	propPayloadFormat        = 0x01
	propMessageExpiry        = 0x02
	propContentType          = 0x03
	propResponseTopic        = 0x08
	propCorrelationData      = 0x09
	propSubscriptionID       = 0x0B
	propSessionExpiry        = 0x11
	propAssignedClientID     = 0x12
	propServerKeepAlive      = 0x13
	propAuthMethod           = 0x15
	propAuthData             = 0x16
	propRequestProblemInfo   = 0x17
	propWillDelay            = 0x18
	propRequestResponseInfo  = 0x19
	propResponseInfo         = 0x1A
	propServerReference      = 0x1C
	propReasonString         = 0x1F
	propReceiveMaximum       = 0x21
	propTopicAliasMaximum    = 0x22
	propTopicAlias           = 0x23
	propMaximumQoS           = 0x24
	propRetainAvailable      = 0x25
	propUserProperty         = 0x26
	propMaximumPacketSize    = 0x27
	propWildcardSubAvailable = 0x28
	propSubIDAvailable       = 0x29
	propSharedSubAvailable   = 0x2A
)

// typeWill is the property context of the will properties in a CONNECT
// payload. Type 0 is reserved on the wire, so it cannot clash with a packet.
const typeWill Type = 0

// allowedProperties has, for each packet type (and typeWill), one bit per
// property identifier that the type may carry, after the table in section
// 2.2.2.2 of MQTT 5.0. Identifiers are below 64 so one uint64 suffices.
var allowedProperties = buildAllowedProperties()

func buildAllowedProperties() [16]uint64 {
	var m [16]uint64
	allow := func(id int, types ...Type) {
		for _, t := range types {
			m[t] |= 1 << id
		}
	}
	allow(propPayloadFormat, TypePublish, typeWill)
	allow(propMessageExpiry, TypePublish, typeWill)
	allow(propContentType, TypePublish, typeWill)
	allow(propResponseTopic, TypePublish, typeWill)
	allow(propCorrelationData, TypePublish, typeWill)

	allow(propSubscriptionID, TypePublish, TypeSubscribe)
	allow(propSessionExpiry, TypeConnect, TypeConnack, TypeDisconnect)
	allow(propAssignedClientID, TypeConnack)
	allow(propServerKeepAlive, TypeConnack)
	allow(propAuthMethod, TypeConnect, TypeConnack, TypeAuth)
	allow(propAuthData, TypeConnect, TypeConnack, TypeAuth)

	allow(propRequestProblemInfo, TypeConnect)
	allow(propWillDelay, typeWill)
	allow(propRequestResponseInfo, TypeConnect)
	allow(propResponseInfo, TypeConnack)
	allow(propServerReference, TypeConnack, TypeDisconnect)
	allow(propReasonString, TypeConnack, TypePuback, TypePubrec, TypePubrel, TypePubcomp,
		TypeSuback, TypeUnsuback, TypeDisconnect, TypeAuth)

	allow(propReceiveMaximum, TypeConnect, TypeConnack)
	allow(propTopicAliasMaximum, TypeConnect, TypeConnack)
	allow(propTopicAlias, TypePublish)
	allow(propMaximumQoS, TypeConnack)
	allow(propRetainAvailable, TypeConnack)
	allow(propUserProperty, TypeConnect, TypeConnack, TypePublish, typeWill, TypePuback,
		TypePubrec, TypePubrel, TypePubcomp, TypeSubscribe, TypeSuback, TypeUnsubscribe,
		TypeUnsuback, TypeDisconnect, TypeAuth)

	allow(propMaximumPacketSize, TypeConnect, TypeConnack)
	allow(propWildcardSubAvailable, TypeConnack)
	allow(propSubIDAvailable, TypeConnack)
	allow(propSharedSubAvailable, TypeConnack)
	return m
}

// contextName names a property context in error messages.
func contextName(ctx Type) string {
	if ctx == typeWill {
		return "will properties"
	}
	return ctx.String()
}

// DecodePublishProperties decodes a PUBLISH property block, as it appears in a
// PUBLISH packet: a variable byte integer length followed by the properties.
// b must hold exactly that block; trailing bytes are malformed. The same rules
// as in Read apply. CorrelationData aliases b, and strings are copies.
func DecodePublishProperties(b []byte) (Properties, error) {
	var p Properties
	d := decoder{buf: b}
	if err := decodeProperties(&d, TypePublish, &p); err != nil {
		return Properties{}, err
	}
	if n := d.remaining(); n != 0 {
		return Properties{}, Errorf(ReasonMalformedPacket, "%d bytes after the property block", n)
	}
	return p, nil
}

// AppendPublishProperties appends the property block of a PUBLISH for p to
// dst: its length, then the properties allowed in a PUBLISH in ascending
// identifier order. DecodePublishProperties reads the result back.
//
// NOTE: the function has no error result, so it leaves out a property it
// cannot encode: a string or binary value over 65,535 bytes, or a subscription
// identifier of 0 or over 268,435,455. If the whole block would exceed
// 268,435,455 bytes, it writes an empty block. Properties decoded from a packet
// never hit these cases, and Publish.Encode reports them as errors.
func AppendPublishProperties(dst []byte, p *Properties) []byte {
	e := newEncoder(dst)
	e.properties(TypePublish, p)
	return e.buf
}

// decodeProperties reads a property block for context ctx into p. Besides
// the rules of each property it checks:
//   - the property length fits in the body, else the packet is malformed;
//   - each identifier is allowed for ctx, else the packet is malformed, as
//     section 2.2.2.2 of MQTT 5.0 requires;
//   - no property other than User Property, and Subscription Identifier in a
//     PUBLISH, appears twice, else it is a protocol error.
func decodeProperties(d *decoder, ctx Type, p *Properties) error {
	n, err := d.readVarInt("property length")
	if err != nil {
		return err
	}
	if int64(n) > int64(d.remaining()) {
		return Errorf(ReasonMalformedPacket, "property length %d exceeds the %d remaining bytes of %s", n, d.remaining(), contextName(ctx))
	}
	pd := decoder{buf: d.buf[d.off : d.off+int(n)]}
	d.off += int(n)

	var seen uint64
	for pd.remaining() > 0 {
		id, err := pd.readVarInt("property identifier")
		if err != nil {
			return err
		}
		if id >= 64 || allowedProperties[ctx]&(1<<id) == 0 {
			return Errorf(ReasonMalformedPacket, "property 0x%02X is not allowed in %s", id, contextName(ctx))
		}
		repeatable := id == propUserProperty || (id == propSubscriptionID && ctx == TypePublish)
		if seen&(1<<id) != 0 && !repeatable {
			return Errorf(ReasonProtocolError, "property 0x%02X appears twice in %s", id, contextName(ctx))
		}
		seen |= 1 << id
		if err := decodeProperty(&pd, byte(id), p); err != nil {
			return err
		}
	}
	return nil
}

// decodeProperty reads the value of property id into p.
func decodeProperty(d *decoder, id byte, p *Properties) error {
	var err error
	switch id {
	case propPayloadFormat:
		p.PayloadFormat, err = readFlagProperty(d, "payload format indicator")
	case propMessageExpiry:
		p.MessageExpiry, err = d.readUint32("message expiry interval")
		p.HasMessageExpiry = true
	case propContentType:
		p.ContentType, err = d.readString("content type")
	case propResponseTopic:
		p.ResponseTopic, err = d.readString("response topic")
	case propCorrelationData:
		p.CorrelationData, err = d.readBinary("correlation data")
	case propSubscriptionID:
		var v uint32
		v, err = d.readVarInt("subscription identifier")
		if err == nil && v == 0 {
			return Errorf(ReasonProtocolError, "subscription identifier is 0, expected 1 to 268,435,455")
		}
		p.SubscriptionIDs = append(p.SubscriptionIDs, v)
	case propSessionExpiry:
		p.SessionExpiry, err = d.readUint32("session expiry interval")
		p.HasSessionExpiry = true
	case propAssignedClientID:
		p.AssignedClientID, err = d.readString("assigned client identifier")
	case propServerKeepAlive:
		p.ServerKeepAlive, err = d.readUint16("server keep alive")
		p.HasServerKeepAlive = true
	case propAuthMethod:
		p.AuthMethod, err = d.readString("authentication method")
	case propAuthData:
		p.AuthData, err = d.readBinary("authentication data")
	case propRequestProblemInfo:
		p.RequestProblemInfo, err = readFlagProperty(d, "request problem information")
		p.HasRequestProblemInfo = true
	case propWillDelay:
		p.WillDelay, err = d.readUint32("will delay interval")
	case propRequestResponseInfo:
		p.RequestResponseInfo, err = readFlagProperty(d, "request response information")
	case propResponseInfo:
		p.ResponseInfo, err = d.readString("response information")
	case propServerReference:
		p.ServerReference, err = d.readString("server reference")
	case propReasonString:
		p.ReasonString, err = d.readString("reason string")
	case propReceiveMaximum:
		p.ReceiveMaximum, err = readNonZeroUint16(d, "receive maximum")
		p.HasReceiveMaximum = true
	case propTopicAliasMaximum:
		p.TopicAliasMaximum, err = d.readUint16("topic alias maximum")
	case propTopicAlias:
		p.TopicAlias, err = readNonZeroUint16(d, "topic alias")
		p.HasTopicAlias = true
	case propMaximumQoS:
		p.MaximumQoS, err = readFlagProperty(d, "maximum QoS")
		p.HasMaximumQoS = true
	case propRetainAvailable:
		p.RetainAvailable, err = readFlagProperty(d, "retain available")
		p.HasRetainAvailable = true
	case propUserProperty:
		var kv UserProperty
		if kv.Key, err = d.readString("user property name"); err != nil {
			return err
		}
		if kv.Value, err = d.readString("user property value"); err != nil {
			return err
		}
		p.UserProperties = append(p.UserProperties, kv)
	case propMaximumPacketSize:
		p.MaximumPacketSize, err = d.readUint32("maximum packet size")
		if err == nil && p.MaximumPacketSize == 0 {
			return Errorf(ReasonProtocolError, "maximum packet size 0")
		}
		p.HasMaximumPacketSize = true
	case propWildcardSubAvailable:
		p.WildcardSubAvailable, err = readFlagProperty(d, "wildcard subscription available")
		p.HasWildcardSubAvail = true
	case propSubIDAvailable:
		p.SubIDAvailable, err = readFlagProperty(d, "subscription identifiers available")
		p.HasSubIDAvailable = true
	case propSharedSubAvailable:
		p.SharedSubAvailable, err = readFlagProperty(d, "shared subscription available")
		p.HasSharedSubAvailable = true
	}
	return err
}

// readFlagProperty reads a one-byte property whose only valid values are 0
// and 1. Any other value is a protocol error in every such property of MQTT
// 5.0, Maximum QoS included (absent means 2, so 2 is never sent).
func readFlagProperty(d *decoder, field string) (byte, error) {
	b, err := d.readByte(field)
	if err != nil {
		return 0, err
	}
	if b > 1 {
		return 0, Errorf(ReasonProtocolError, "%s is %d, expected 0 or 1", field, b)
	}
	return b, nil
}

// readNonZeroUint16 reads a two-byte property for which 0 is a protocol error:
// Receive Maximum and Topic Alias.
func readNonZeroUint16(d *decoder, field string) (uint16, error) {
	v, err := d.readUint16(field)
	if err != nil {
		return 0, err
	}
	if v == 0 {
		return 0, Errorf(ReasonProtocolError, "%s is 0", field)
	}
	return v, nil
}

// properties appends the property block of p for context ctx: a length, then
// each property that ctx allows and p holds, in ascending identifier order.
// A property p holds but ctx does not allow is left out without error, so a
// caller may pass the properties of one packet on to another type.
func (e *encoder) properties(ctx Type, p *Properties) {
	mark := e.reserveLength()
	allowed := allowedProperties[ctx]
	has := func(id int) bool { return allowed&(1<<id) != 0 }

	if has(propPayloadFormat) && p.PayloadFormat != 0 {
		e.byte(propPayloadFormat)
		e.byte(p.PayloadFormat)
	}
	if has(propMessageExpiry) && p.HasMessageExpiry {
		e.byte(propMessageExpiry)
		e.uint32(p.MessageExpiry)
	}
	if has(propContentType) {
		e.stringProperty(propContentType, "content type", p.ContentType)
	}
	if has(propResponseTopic) {
		e.stringProperty(propResponseTopic, "response topic", p.ResponseTopic)
	}
	if has(propCorrelationData) {
		e.binaryProperty(propCorrelationData, "correlation data", p.CorrelationData)
	}
	if has(propSubscriptionID) {
		for _, id := range p.SubscriptionIDs {
			if id == 0 || id > MaxRemainingLength {
				e.fail("subscription identifier %d is not in 1..%d", id, MaxRemainingLength)
				continue
			}
			e.byte(propSubscriptionID)
			e.buf = appendVarInt(e.buf, id)
		}
	}
	if has(propSessionExpiry) && p.HasSessionExpiry {
		e.byte(propSessionExpiry)
		e.uint32(p.SessionExpiry)
	}
	if has(propAssignedClientID) {
		e.stringProperty(propAssignedClientID, "assigned client identifier", p.AssignedClientID)
	}
	if has(propServerKeepAlive) && p.HasServerKeepAlive {
		e.byte(propServerKeepAlive)
		e.uint16(p.ServerKeepAlive)
	}
	if has(propAuthMethod) {
		e.stringProperty(propAuthMethod, "authentication method", p.AuthMethod)
	}
	if has(propAuthData) {
		e.binaryProperty(propAuthData, "authentication data", p.AuthData)
	}
	if has(propRequestProblemInfo) && p.HasRequestProblemInfo {
		e.byte(propRequestProblemInfo)
		e.byte(p.RequestProblemInfo)
	}
	if has(propWillDelay) && p.WillDelay != 0 {
		e.byte(propWillDelay)
		e.uint32(p.WillDelay)
	}
	if has(propRequestResponseInfo) && p.RequestResponseInfo != 0 {
		e.byte(propRequestResponseInfo)
		e.byte(p.RequestResponseInfo)
	}
	if has(propResponseInfo) {
		e.stringProperty(propResponseInfo, "response information", p.ResponseInfo)
	}
	if has(propServerReference) {
		e.stringProperty(propServerReference, "server reference", p.ServerReference)
	}
	if has(propReasonString) {
		e.stringProperty(propReasonString, "reason string", p.ReasonString)
	}
	if has(propReceiveMaximum) && p.HasReceiveMaximum {
		e.byte(propReceiveMaximum)
		e.uint16(p.ReceiveMaximum)
	}
	if has(propTopicAliasMaximum) && p.TopicAliasMaximum != 0 {
		e.byte(propTopicAliasMaximum)
		e.uint16(p.TopicAliasMaximum)
	}
	if has(propTopicAlias) && p.HasTopicAlias {
		e.byte(propTopicAlias)
		e.uint16(p.TopicAlias)
	}
	if has(propMaximumQoS) && p.HasMaximumQoS {
		e.byte(propMaximumQoS)
		e.byte(p.MaximumQoS)
	}
	if has(propRetainAvailable) && p.HasRetainAvailable {
		e.byte(propRetainAvailable)
		e.byte(p.RetainAvailable)
	}
	if has(propUserProperty) {
		for _, kv := range p.UserProperties {
			if len(kv.Key) > maxFieldLength || len(kv.Value) > maxFieldLength {
				e.fail("user property %.32q longer than %d bytes", kv.Key, maxFieldLength)
				continue
			}
			e.byte(propUserProperty)
			e.string("", kv.Key)
			e.string("", kv.Value)
		}
	}
	if has(propMaximumPacketSize) && p.HasMaximumPacketSize {
		e.byte(propMaximumPacketSize)
		e.uint32(p.MaximumPacketSize)
	}
	if has(propWildcardSubAvailable) && p.HasWildcardSubAvail {
		e.byte(propWildcardSubAvailable)
		e.byte(p.WildcardSubAvailable)
	}
	if has(propSubIDAvailable) && p.HasSubIDAvailable {
		e.byte(propSubIDAvailable)
		e.byte(p.SubIDAvailable)
	}
	if has(propSharedSubAvailable) && p.HasSharedSubAvailable {
		e.byte(propSharedSubAvailable)
		e.byte(p.SharedSubAvailable)
	}

	if !e.fillLength(mark, 0) {
		e.fail("%s longer than %d bytes", contextName(ctx), MaxRemainingLength)
		e.buf = append(e.buf[:mark], 0)
	}
}

// stringProperty appends a string property unless s is empty, which the
// Properties type treats as absent. A value too long to encode is left out and
// recorded as the encoder's error.
func (e *encoder) stringProperty(id byte, field, s string) {
	if s == "" {
		return
	}
	if len(s) > maxFieldLength {
		e.fail("%s of %d bytes exceeds %d", field, len(s), maxFieldLength)
		return
	}
	e.byte(id)
	e.string(field, s)
}

// binaryProperty is stringProperty for binary data.
func (e *encoder) binaryProperty(id byte, field string, b []byte) {
	if len(b) == 0 {
		return
	}
	if len(b) > maxFieldLength {
		e.fail("%s of %d bytes exceeds %d", field, len(b), maxFieldLength)
		return
	}
	e.byte(id)
	e.binary(field, b)
}
