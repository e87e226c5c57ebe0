package storage

// Message is a stored PUBLISH: a body referenced by queue and inflight
// entries, or a retained message stored whole under its topic.
type Message struct {
	ID          uint64 // node-unique, from Store.NextID
	Topic       string
	Payload     []byte // empty and nil payloads both load as nil
	QoS         byte   // 0, 1 or 2
	Retain      bool
	Properties  []byte // encoded MQTT 5.0 publish properties, opaque here; loads as nil when empty
	ExpiresAt   int64  // unix nanoseconds; 0 = never
	PublisherID string // client id of the publisher, for no-local after a restart; may be ""
	// OriginSite and OriginID name a message that another node forwarded:
	// the site id of the node it was published on and its id there. A
	// session that moves between nodes recognises its messages by them.
	// OriginSite is "" for a message published on this node.
	OriginSite string
	OriginID   uint64
}

// Session is the persistent part of an MQTT session.
type Session struct {
	ClientID        string
	ProtocolVersion byte   // 3, 4 or 5 as sent in CONNECT; not checked here
	ExpiryInterval  uint32 // seconds; 0xFFFFFFFF = never
	DisconnectedAt  int64  // unix nanoseconds; 0 while connected
	NextPacketID    uint16
	Will            []byte // encoded will, opaque here; nil = none, and a non-nil empty will stays non-nil
	// Owner is the user name the session's client authenticated as; ""
	// for an anonymous client. A client of another user never resumes it.
	// OwnerKnown is false for a record written before owners were stored,
	// and Put always stores the owner.
	Owner      string
	OwnerKnown bool
}

// Subscription is one topic filter of one client.
type Subscription struct {
	ClientID          string
	Filter            string // full filter as subscribed, including any "$share/{group}/" prefix
	QoS               byte   // maximum QoS, 0 to 2
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte   // 0 to 2
	SubID             uint32 // subscription identifier; 0 = none
}

// QueueEntry is a message waiting for an offline or busy session.
type QueueEntry struct {
	Seq       uint64 // from Store.NextID; orders the queue and is part of the key
	MessageID uint64
	QoS       byte // delivery QoS after downgrade
	Retain    bool
	SubIDs    []uint32 // loads as nil when empty
}

// InflightEntry is an outbound QoS 1 or 2 PUBLISH that was sent but not
// completed.
type InflightEntry struct {
	PacketID  uint16 // part of the key
	Seq       uint64 // send order, from Store.NextID
	MessageID uint64
	QoS       byte
	Retain    bool
	SubIDs    []uint32 // loads as nil when empty
	Released  bool     // QoS 2: PUBREC received, PUBREL sent
}
