package node

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/storage"
)

// message is one published application message. It is immutable once routed,
// so many sessions share one *message; per-subscriber fields (QoS after
// downgrade, packet id, RETAIN on delivery) live in delivery.
type message struct {
	id        uint64 // storage.Store.NextID; identifies the body on disk
	topic     string
	payload   []byte
	qos       byte
	retain    bool
	props     *packet.Properties // forwarded publish properties, without topic alias and subscription ids; nil if none
	expiresAt time.Time          // zero: never
	publisher string             // client id of the publisher, for No Local

	// Set for a message that another node forwarded: its origin, unique in
	// the cluster, and the share groups this node is to serve.
	fromPeer    bool
	originSite  string
	originID    uint64
	shareGroups []string
	declinedBy  []string // site ids that had no member for its share groups
	durableOnly bool     // deliver to persistent sessions only

	// retainedClock is set in a cluster on a retained write of this node,
	// which routeRemote then stages for every other node.
	retainedClock *storage.RetainedClock

	// stored is set by the goroutine that routes the message, before any
	// session sees it, once the body is part of a storage batch.
	stored bool
}

// expired reports whether the message expiry interval has passed.
func (m *message) expired(now time.Time) bool {
	return !m.expiresAt.IsZero() && !now.Before(m.expiresAt)
}

// remainingExpiry returns the Message Expiry Interval to forward: the time left,
// rounded up to whole seconds [MQTT-3.3.2-6].
func (m *message) remainingExpiry(now time.Time) uint32 {
	left := m.expiresAt.Sub(now)
	if left <= 0 {
		return 0
	}
	return uint32((left + time.Second - 1) / time.Second)
}

// properties returns the properties the message carries to subscribers.
func (m *message) properties() packet.Properties {
	if m.props == nil {
		return packet.Properties{}
	}
	return *m.props
}

// size is the memory a queued message is charged for.
func (m *message) size() int64 {
	return int64(len(m.topic) + len(m.payload) + 64)
}

// newMessageFromPublish builds a message from a received PUBLISH whose topic
// alias has been resolved.
func newMessageFromPublish(p *packet.Publish, publisher string, now time.Time) *message {
	m := &message{
		topic:     p.Topic,
		payload:   p.Payload,
		qos:       p.QoS,
		retain:    p.Retain,
		props:     forwardedProperties(&p.Properties),
		publisher: publisher,
	}
	if p.Properties.HasMessageExpiry {
		m.expiresAt = now.Add(time.Duration(p.Properties.MessageExpiry) * time.Second)
	}
	return m
}

// forwardedProperties keeps the PUBLISH properties that travel with the message
// to subscribers [MQTT-3.3.2-4] [MQTT-3.3.2-17] [MQTT-3.3.2-20]. The topic alias
// and subscription identifiers belong to one connection and are dropped. It
// returns nil when no property travels, which keeps most messages small.
func forwardedProperties(p *packet.Properties) *packet.Properties {
	if !hasForwardedProperties(p) {
		return nil
	}
	return &packet.Properties{
		PayloadFormat:   p.PayloadFormat,
		ContentType:     p.ContentType,
		ResponseTopic:   p.ResponseTopic,
		CorrelationData: p.CorrelationData,
		UserProperties:  p.UserProperties,
	}
}

// record converts the message to its storage form.
func (m *message) record() *storage.Message {
	rec := new(storage.Message)
	m.fillRecord(rec)
	return rec
}

// fillRecord sets rec to the storage form of m. Unlike record it lets the
// caller keep rec on its stack, as the publish path does.
func (m *message) fillRecord(rec *storage.Message) {
	*rec = storage.Message{
		ID:          m.id,
		Topic:       m.topic,
		Payload:     m.payload,
		QoS:         m.qos,
		Retain:      m.retain,
		PublisherID: m.publisher,
	}
	if m.props != nil {
		rec.Properties = packet.AppendPublishProperties(nil, m.props)
	}
	if !m.expiresAt.IsZero() {
		rec.ExpiresAt = m.expiresAt.UnixNano()
	}
	if m.fromPeer {
		rec.OriginSite, rec.OriginID = m.originSite, m.originID
	}
}

func hasForwardedProperties(p *packet.Properties) bool {
	return p.PayloadFormat != 0 || p.ContentType != "" || p.ResponseTopic != "" ||
		len(p.CorrelationData) > 0 || len(p.UserProperties) > 0
}

// messageFromRecord rebuilds a message read from storage.
func messageFromRecord(rec *storage.Message) (*message, error) {
	m := &message{
		id:        rec.ID,
		topic:     rec.Topic,
		payload:   rec.Payload,
		qos:       rec.QoS,
		retain:    rec.Retain,
		publisher: rec.PublisherID,
		stored:    true,
	}
	if rec.OriginSite != "" {
		// Forwarded by another node: its origin survives the restart, so
		// a session that moves recognises the message.
		m.fromPeer, m.originSite, m.originID = true, rec.OriginSite, rec.OriginID
	}
	if len(rec.Properties) > 0 {
		props, err := packet.DecodePublishProperties(rec.Properties)
		if err != nil {
			return nil, fmt.Errorf("decode properties of message %d: %w", rec.ID, err)
		}
		m.props = forwardedProperties(&props)
	}
	if rec.ExpiresAt != 0 {
		m.expiresAt = time.Unix(0, rec.ExpiresAt)
	}
	return m, nil
}

// encodeWill stores a will for a session record: a flags byte (bit 0: the
// client came through a loopback-only listener), the client's user name
// (2-byte length and bytes), the Will Delay Interval (4 bytes), then the
// PUBLISH packet (MQTT 5.0 form) that carries the will, so the codec that
// already checks every field also reads it back. The user name lets the node
// check the will against the rules when it fires after a restart.
func encodeWill(w *willMsg) ([]byte, error) {
	var flags byte
	if w.loopback() {
		flags |= 1
	}
	if len(w.username) > 65535 {
		return nil, fmt.Errorf("encode will: user name of %d bytes is too long", len(w.username))
	}
	buf := []byte{flags}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(w.username)))
	buf = append(buf, w.username...)
	buf = binary.BigEndian.AppendUint32(buf, w.Properties.WillDelay)
	pub := &packet.Publish{
		QoS:     w.QoS,
		Retain:  w.Retain,
		Topic:   w.Topic,
		Payload: w.Payload,
	}
	if props := forwardedProperties(&w.Properties); props != nil {
		pub.Properties = *props
	}
	if w.Properties.HasMessageExpiry {
		pub.Properties.HasMessageExpiry = true
		pub.Properties.MessageExpiry = w.Properties.MessageExpiry
	}
	if w.QoS > 0 {
		pub.PacketID = 1
	}
	return pub.Encode(buf, packet.Version5)
}

// decodeWill reverses encodeWill. The will's access is resolved when it fires.
func decodeWill(b []byte) (*willMsg, error) {
	if len(b) < 3 {
		return nil, fmt.Errorf("decode will: %d bytes is too short", len(b))
	}
	flags := b[0]
	n := int(binary.BigEndian.Uint16(b[1:]))
	b = b[3:]
	if len(b) < n+4 {
		return nil, fmt.Errorf("decode will: truncated after the flags")
	}
	username := string(b[:n])
	delay := binary.BigEndian.Uint32(b[n:])
	p, err := packet.Read(bufio.NewReader(bytes.NewReader(b[n+4:])), packet.Version5, packet.DefaultMaxPacketSize)
	if err != nil {
		return nil, fmt.Errorf("decode will: %w", err)
	}
	pub, ok := p.(*packet.Publish)
	if !ok {
		return nil, fmt.Errorf("decode will: unexpected packet type %d", p.Type())
	}
	w := &packet.Will{Topic: pub.Topic, Payload: pub.Payload, QoS: pub.QoS, Retain: pub.Retain, Properties: pub.Properties}
	w.Properties.WillDelay = delay
	return &willMsg{Will: w, username: username, restoredLoopback: flags&1 != 0}, nil
}

// servesGroup reports whether a forwarded message is to be delivered to the
// shared group with this key here.
func (m *message) servesGroup(key string) bool {
	for _, k := range m.shareGroups {
		if k == key {
			return true
		}
	}
	return false
}
