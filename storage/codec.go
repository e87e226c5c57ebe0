package storage

import (
	"encoding/binary"
	"math"
)

// recordVersion is the first byte of every value this package writes. A
// decoder rejects any other version with ErrCorrupt, so a future encoding
// must bump it and keep decoding the old one.
const recordVersion byte = 1

// Flag bits of the flags byte shared by messages, queue and inflight entries.
// The low two bits carry the QoS.
const (
	flagQoSMask  byte = 0x03
	flagRetain   byte = 0x04
	flagReleased byte = 0x08 // inflight entries only
	flagOrigin   byte = 0x10 // messages only: the origin follows the payload
)

// Flag bits of a session's and of a subscription's flags byte.
const (
	flagHasWill           byte = 0x01 // session
	flagHasOwner          byte = 0x02 // session
	flagNoLocal           byte = 0x01 // subscription
	flagRetainAsPublished byte = 0x02 // subscription
)

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendSubIDs(dst []byte, ids []uint32) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, id := range ids {
		dst = binary.AppendUvarint(dst, uint64(id))
	}
	return dst
}

func qosFlags(qos byte, retain bool) byte {
	f := qos & flagQoSMask
	if retain {
		f |= flagRetain
	}
	return f
}

// decoder reads one value. The first failure is kept in err, and every later
// read returns a zero value, so callers check err once at the end.
type decoder struct {
	b      []byte
	record string // record name for error messages
	err    error
}

func newDecoder(b []byte, record string) decoder {
	d := decoder{b: b, record: record}
	v := d.byte()
	if d.err == nil && v != recordVersion {
		d.err = corruptf("%s has unknown record version %d", record, v)
	}
	return d
}

func (d *decoder) fail(reason string) {
	if d.err == nil {
		d.err = corruptf("%s: %s", d.record, reason)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("invalid varint")
		return 0
	}
	if v > max {
		d.fail("integer out of range")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("invalid varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a length-prefixed field without copying it.
func (d *decoder) bytes() []byte {
	n := d.uvarint(math.MaxInt32)
	if d.err != nil {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.fail("truncated field")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// clonedBytes returns a copy of a length-prefixed field, or nil when empty.
func (d *decoder) clonedBytes() []byte {
	v := d.bytes()
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *decoder) subIDs() []uint32 {
	// Each id takes at least one byte, which bounds the allocation on
	// corrupt input.
	n := d.uvarint(uint64(len(d.b)))
	if d.err != nil || n == 0 {
		return nil
	}
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(d.uvarint(math.MaxUint32))
	}
	return ids
}

func (d *decoder) qos(flags byte, allowed byte) (byte, bool) {
	if flags&^allowed != 0 {
		d.fail("unknown flag bits")
	}
	qos := flags & flagQoSMask
	if qos > 2 {
		d.fail("QoS greater than 2")
	}
	return qos, flags&flagRetain != 0
}

// finish returns the first decoding error, or ErrCorrupt when bytes remain.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

// appendMessage appends the value of a message body or retained message.
// Layout: version, flags, uvarint ID, varint ExpiresAt, then the
// length-prefixed Topic, PublisherID, Properties and Payload.
func appendMessage(dst []byte, m *Message) []byte {
	flags := qosFlags(m.QoS, m.Retain)
	if m.OriginSite != "" {
		flags |= flagOrigin
	}
	dst = append(dst, recordVersion, flags)
	dst = binary.AppendUvarint(dst, m.ID)
	dst = binary.AppendVarint(dst, m.ExpiresAt)
	dst = appendString(dst, m.Topic)
	dst = appendString(dst, m.PublisherID)
	dst = appendBytes(dst, m.Properties)
	dst = appendBytes(dst, m.Payload)
	if m.OriginSite != "" {
		dst = appendString(dst, m.OriginSite)
		dst = binary.AppendUvarint(dst, m.OriginID)
	}
	return dst
}

// decodeMessage decodes b into m. m shares no memory with b.
func decodeMessage(b []byte, m *Message) error {
	d := newDecoder(b, "message")
	flags := d.byte()
	m.QoS, m.Retain = d.qos(flags&^flagOrigin, flagQoSMask|flagRetain)
	m.ID = d.uvarint(math.MaxUint64)
	m.ExpiresAt = d.varint()
	m.Topic = string(d.bytes())
	m.PublisherID = string(d.bytes())
	m.Properties = d.clonedBytes()
	m.Payload = d.clonedBytes()
	m.OriginSite, m.OriginID = "", 0
	if flags&flagOrigin != 0 {
		m.OriginSite = string(d.bytes())
		m.OriginID = d.uvarint(math.MaxUint64)
		if m.OriginSite == "" {
			d.fail("empty origin site")
		}
	}
	return d.finish()
}

// appendSession appends a session value. Layout: version, flags,
// ProtocolVersion, uvarint ExpiryInterval, varint DisconnectedAt, uvarint
// NextPacketID, length-prefixed ClientID, then the length-prefixed Will when
// flagHasWill is set, then the length-prefixed Owner, which flagHasOwner
// marks (records written before owners were stored lack both).
func appendSession(dst []byte, s *Session) []byte {
	var flags byte
	if s.Will != nil {
		flags |= flagHasWill
	}
	flags |= flagHasOwner
	dst = append(dst, recordVersion, flags, s.ProtocolVersion)
	dst = binary.AppendUvarint(dst, uint64(s.ExpiryInterval))
	dst = binary.AppendVarint(dst, s.DisconnectedAt)
	dst = binary.AppendUvarint(dst, uint64(s.NextPacketID))
	dst = appendString(dst, s.ClientID)
	if s.Will != nil {
		dst = appendBytes(dst, s.Will)
	}
	return appendString(dst, s.Owner)
}

func decodeSession(b []byte, s *Session) error {
	d := newDecoder(b, "session")
	flags := d.byte()
	if flags&^(flagHasWill|flagHasOwner) != 0 {
		d.fail("unknown flag bits")
	}
	s.ProtocolVersion = d.byte()
	s.ExpiryInterval = uint32(d.uvarint(math.MaxUint32))
	s.DisconnectedAt = d.varint()
	s.NextPacketID = uint16(d.uvarint(math.MaxUint16))
	s.ClientID = string(d.bytes())
	s.Will = nil
	if flags&flagHasWill != 0 {
		s.Will = append([]byte{}, d.bytes()...)
	}
	s.Owner, s.OwnerKnown = "", flags&flagHasOwner != 0
	if s.OwnerKnown {
		s.Owner = string(d.bytes())
	}
	return d.finish()
}

// appendSubscription appends a subscription value. ClientID and Filter are
// in the key. Layout: version, QoS, flags, RetainHandling, uvarint SubID.
func appendSubscription(dst []byte, s *Subscription) []byte {
	var flags byte
	if s.NoLocal {
		flags |= flagNoLocal
	}
	if s.RetainAsPublished {
		flags |= flagRetainAsPublished
	}
	dst = append(dst, recordVersion, s.QoS, flags, s.RetainHandling)
	return binary.AppendUvarint(dst, uint64(s.SubID))
}

// decodeSubscription decodes the value fields of s and leaves ClientID and
// Filter unchanged.
func decodeSubscription(b []byte, s *Subscription) error {
	d := newDecoder(b, "subscription")
	s.QoS = d.byte()
	flags := d.byte()
	s.RetainHandling = d.byte()
	s.SubID = uint32(d.uvarint(math.MaxUint32))
	if s.QoS > 2 {
		d.fail("QoS greater than 2")
	}
	if flags&^(flagNoLocal|flagRetainAsPublished) != 0 {
		d.fail("unknown flag bits")
	}
	if s.RetainHandling > 2 {
		d.fail("retain handling greater than 2")
	}
	s.NoLocal = flags&flagNoLocal != 0
	s.RetainAsPublished = flags&flagRetainAsPublished != 0
	return d.finish()
}

// appendQueueEntry appends a queue entry value. Seq is in the key. Layout:
// version, flags, uvarint MessageID, SubIDs as a uvarint count of uvarints.
func appendQueueEntry(dst []byte, e *QueueEntry) []byte {
	dst = append(dst, recordVersion, qosFlags(e.QoS, e.Retain))
	dst = binary.AppendUvarint(dst, e.MessageID)
	return appendSubIDs(dst, e.SubIDs)
}

// decodeQueueEntry decodes the value fields of e and leaves Seq unchanged.
func decodeQueueEntry(b []byte, e *QueueEntry) error {
	d := newDecoder(b, "queue entry")
	e.QoS, e.Retain = d.qos(d.byte(), flagQoSMask|flagRetain)
	e.MessageID = d.uvarint(math.MaxUint64)
	e.SubIDs = d.subIDs()
	return d.finish()
}

// appendInflightEntry appends an inflight entry value. PacketID is in the
// key. Layout: version, flags, uvarint Seq, uvarint MessageID, SubIDs as a
// uvarint count of uvarints.
func appendInflightEntry(dst []byte, e *InflightEntry) []byte {
	flags := qosFlags(e.QoS, e.Retain)
	if e.Released {
		flags |= flagReleased
	}
	dst = append(dst, recordVersion, flags)
	dst = binary.AppendUvarint(dst, e.Seq)
	dst = binary.AppendUvarint(dst, e.MessageID)
	return appendSubIDs(dst, e.SubIDs)
}

// decodeInflightEntry decodes the value fields of e and leaves PacketID
// unchanged.
func decodeInflightEntry(b []byte, e *InflightEntry) error {
	d := newDecoder(b, "inflight entry")
	flags := d.byte()
	e.QoS, e.Retain = d.qos(flags, flagQoSMask|flagRetain|flagReleased)
	e.Released = flags&flagReleased != 0
	e.Seq = d.uvarint(math.MaxUint64)
	e.MessageID = d.uvarint(math.MaxUint64)
	e.SubIDs = d.subIDs()
	return d.finish()
}

// inboundValue is the value of an inbound QoS 2 record: the key carries all
// the data.
var inboundValue = []byte{recordVersion}

func decodeInbound(b []byte) error {
	d := newDecoder(b, "inbound QoS 2 record")
	return d.finish()
}

// appendUvarintValue appends a versioned meta value holding one integer.
func appendUvarintValue(dst []byte, v uint64) []byte {
	dst = append(dst, recordVersion)
	return binary.AppendUvarint(dst, v)
}

func decodeUvarintValue(b []byte, record string) (uint64, error) {
	d := newDecoder(b, record)
	v := d.uvarint(math.MaxUint64)
	return v, d.finish()
}
