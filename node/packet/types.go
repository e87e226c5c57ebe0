package packet

// Type is the MQTT control packet type, the high four bits of the fixed header.
type Type byte

// Control packet types of MQTT 3.1, 3.1.1 and 5.0. AUTH exists only in 5.0.
const (
	TypeConnect     Type = 1
	TypeConnack     Type = 2
	TypePublish     Type = 3
	TypePuback      Type = 4
	TypePubrec      Type = 5
	TypePubrel      Type = 6
	TypePubcomp     Type = 7
	TypeSubscribe   Type = 8
	TypeSuback      Type = 9
	TypeUnsubscribe Type = 10
	TypeUnsuback    Type = 11
	TypePingreq     Type = 12
	TypePingresp    Type = 13
	TypeDisconnect  Type = 14
	TypeAuth        Type = 15
)

// Protocol levels carried in CONNECT.
const (
	Version31  byte = 3 // MQTT 3.1, protocol name "MQIsdp"
	Version311 byte = 4 // MQTT 3.1.1, protocol name "MQTT"
	Version5   byte = 5 // MQTT 5.0, protocol name "MQTT"
)

// Packet is one decoded MQTT control packet.
type Packet interface {
	// Type returns the control packet type.
	Type() Type

	// Encode appends the wire form of the packet for the protocol version to dst.
	// It fails when a field cannot be represented, for example a string longer
	// than 65,535 bytes or a remaining length above 268,435,455 bytes.
	Encode(dst []byte, version byte) ([]byte, error)
}

// UserProperty is one MQTT 5.0 user property. Order and duplicates are kept.
type UserProperty struct {
	Key   string
	Value string
}

// Properties holds the MQTT 5.0 properties of any packet. Only the properties
// that the spec allows for a packet type are encoded or accepted by the decoder.
//
// A property whose absence differs from its zero value has a Has flag; the
// encoder writes it only when the flag is set, and the decoder sets the flag when
// the property is present. Strings and byte slices are absent when empty.
type Properties struct {
	PayloadFormat         byte // 0 unspecified bytes, 1 UTF-8; absent means 0
	MessageExpiry         uint32
	HasMessageExpiry      bool
	ContentType           string
	ResponseTopic         string
	CorrelationData       []byte
	SubscriptionIDs       []uint32 // several in PUBLISH, at most one in SUBSCRIBE
	SessionExpiry         uint32   // seconds
	HasSessionExpiry      bool
	AssignedClientID      string
	ServerKeepAlive       uint16
	HasServerKeepAlive    bool
	AuthMethod            string
	AuthData              []byte
	RequestProblemInfo    byte // absent means 1
	HasRequestProblemInfo bool
	WillDelay             uint32 // seconds
	RequestResponseInfo   byte
	ResponseInfo          string
	ServerReference       string
	ReasonString          string
	ReceiveMaximum        uint16 // absent means 65,535; zero is a protocol error
	HasReceiveMaximum     bool
	TopicAliasMaximum     uint16
	TopicAlias            uint16
	HasTopicAlias         bool
	MaximumQoS            byte // absent means 2
	HasMaximumQoS         bool
	RetainAvailable       byte // absent means 1
	HasRetainAvailable    bool
	UserProperties        []UserProperty
	MaximumPacketSize     uint32 // absent means no limit; zero is a protocol error
	HasMaximumPacketSize  bool
	WildcardSubAvailable  byte // absent means 1
	HasWildcardSubAvail   bool
	SubIDAvailable        byte // absent means 1
	HasSubIDAvailable     bool
	SharedSubAvailable    byte // absent means 1
	HasSharedSubAvailable bool
}

// Will is the will message of a CONNECT.
type Will struct {
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	Properties Properties // will properties (MQTT 5.0)
}

// Connect is the CONNECT packet. The decoder reads the protocol version from the
// packet itself, so it needs no negotiated version.
type Connect struct {
	ProtocolName    string // "MQTT", or "MQIsdp" for 3.1
	ProtocolVersion byte   // Version31, Version311 or Version5
	CleanStart      bool   // clean session in 3.1 and 3.1.1
	KeepAlive       uint16 // seconds
	ClientID        string
	Will            *Will // nil when the will flag is 0
	UsernameFlag    bool
	Username        string
	PasswordFlag    bool
	Password        []byte
	Properties      Properties
}

// Connack is the CONNACK packet. For 3.1 and 3.1.1 the encoder maps ReasonCode
// to the 3.1.1 return code (see ReasonCode.V3ConnackCode).
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties
}

// Publish is the PUBLISH packet. PacketID is zero for QoS 0. Payload may alias
// the buffer the packet was read into: the decoder allocates a new buffer for
// every packet, so a decoded Publish owns its bytes.
type Publish struct {
	Dup        bool
	QoS        byte
	Retain     bool
	Topic      string // empty in MQTT 5.0 when a topic alias stands for it
	PacketID   uint16
	Properties Properties
	Payload    []byte
}

// Puback is the PUBACK packet (QoS 1 acknowledgement).
type Puback struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Pubrec is the PUBREC packet (QoS 2, step 1).
type Pubrec struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Pubrel is the PUBREL packet (QoS 2, step 2). Its fixed header flags are 0010.
type Pubrel struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Pubcomp is the PUBCOMP packet (QoS 2, step 3).
type Pubcomp struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Subscription is one topic filter of a SUBSCRIBE with its options.
// NoLocal, RetainAsPublished and RetainHandling exist only in MQTT 5.0.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte // 0 send retained, 1 only for a new subscription, 2 never
}

// Subscribe is the SUBSCRIBE packet. Its fixed header flags are 0010.
type Subscribe struct {
	PacketID      uint16
	Properties    Properties
	Subscriptions []Subscription
}

// Suback is the SUBACK packet: one reason code per subscription, in order. In
// 3.1.1 the codes are the granted QoS (0, 1, 2) or 0x80 for failure.
type Suback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Unsubscribe is the UNSUBSCRIBE packet. Its fixed header flags are 0010.
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties
	Filters    []string
}

// Unsuback is the UNSUBACK packet. ReasonCodes exist only in MQTT 5.0.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Pingreq is the PINGREQ packet.
type Pingreq struct{}

// Pingresp is the PINGRESP packet.
type Pingresp struct{}

// Disconnect is the DISCONNECT packet. In 3.1 and 3.1.1 it has no body.
type Disconnect struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Auth is the AUTH packet of MQTT 5.0 enhanced authentication.
type Auth struct {
	ReasonCode ReasonCode
	Properties Properties
}

func (*Connect) Type() Type     { return TypeConnect }
func (*Connack) Type() Type     { return TypeConnack }
func (*Publish) Type() Type     { return TypePublish }
func (*Puback) Type() Type      { return TypePuback }
func (*Pubrec) Type() Type      { return TypePubrec }
func (*Pubrel) Type() Type      { return TypePubrel }
func (*Pubcomp) Type() Type     { return TypePubcomp }
func (*Subscribe) Type() Type   { return TypeSubscribe }
func (*Suback) Type() Type      { return TypeSuback }
func (*Unsubscribe) Type() Type { return TypeUnsubscribe }
func (*Unsuback) Type() Type    { return TypeUnsuback }
func (*Pingreq) Type() Type     { return TypePingreq }
func (*Pingresp) Type() Type    { return TypePingresp }
func (*Disconnect) Type() Type  { return TypeDisconnect }
func (*Auth) Type() Type        { return TypeAuth }
