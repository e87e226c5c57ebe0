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
	props     packet.Properties // forwarded publish properties, without topic alias and subscription ids
	expiresAt time.Time         // zero: never
	publisher string            // client id of the publisher, for No Local

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
// to subscribers [MQTT-3.3.2-4] [MQTT-3.3.2-17] [MQTT-3.3.2-20]; the topic alias
// and subscription identifiers belong to one connection and are dropped.
func forwardedProperties(p *packet.Properties) packet.Properties {
	return packet.Properties{
		PayloadFormat:   p.PayloadFormat,
		ContentType:     p.ContentType,
		ResponseTopic:   p.ResponseTopic,
		CorrelationData: p.CorrelationData,
		UserProperties:  p.UserProperties,
	}
}

// record converts the message to its storage form.
func (m *message) record() *storage.Message {
	rec := &storage.Message{
		ID:          m.id,
		Topic:       m.topic,
		Payload:     m.payload,
		QoS:         m.qos,
		Retain:      m.retain,
		PublisherID: m.publisher,
	}
	if hasForwardedProperties(&m.props) {
		rec.Properties = packet.AppendPublishProperties(nil, &m.props)
	}
	if !m.expiresAt.IsZero() {
		rec.ExpiresAt = m.expiresAt.UnixNano()
	}
	return rec
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
	if len(rec.Properties) > 0 {
		props, err := packet.DecodePublishProperties(rec.Properties)
		if err != nil {
			return nil, fmt.Errorf("decode properties of message %d: %w", rec.ID, err)
		}
		m.props = props
	}
	if rec.ExpiresAt != 0 {
		m.expiresAt = time.Unix(0, rec.ExpiresAt)
	}
	return m, nil
}

// encodeWill stores a will as its Will Delay Interval followed by the PUBLISH
// packet (MQTT 5.0 form) that carries it, so the codec that already checks every
// field also reads it back.
func encodeWill(w *packet.Will) ([]byte, error) {
	buf := binary.BigEndian.AppendUint32(nil, w.Properties.WillDelay)
	pub := &packet.Publish{
		QoS:        w.QoS,
		Retain:     w.Retain,
		Topic:      w.Topic,
		Payload:    w.Payload,
		Properties: forwardedProperties(&w.Properties),
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

// decodeWill reverses encodeWill.
func decodeWill(b []byte) (*packet.Will, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("decode will: %d bytes is too short", len(b))
	}
	delay := binary.BigEndian.Uint32(b)
	p, err := packet.Read(bufio.NewReader(bytes.NewReader(b[4:])), packet.Version5, packet.DefaultMaxPacketSize)
	if err != nil {
		return nil, fmt.Errorf("decode will: %w", err)
	}
	pub, ok := p.(*packet.Publish)
	if !ok {
		return nil, fmt.Errorf("decode will: unexpected packet type %d", p.Type())
	}
	w := &packet.Will{Topic: pub.Topic, Payload: pub.Payload, QoS: pub.QoS, Retain: pub.Retain, Properties: pub.Properties}
	w.Properties.WillDelay = delay
	return w, nil
}
