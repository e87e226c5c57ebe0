package storage

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Shared custody: a QoS 1 message published on this node and forwarded to
// another node for a shared-subscription group stays here, keyed by its
// message id, until that node reports that it reached its end there (a
// member acknowledged it, or it was dropped). Should that node die first,
// this node offers the message to another node with members of the group.
// Storage treats the message as opaque bytes (an encoded
// clusterpb.ForwardMessage) and keeps beside it the site id of the node
// that holds it and when it was put there.

// CustodyEntry is one message in shared custody.
type CustodyEntry struct {
	MessageID uint64
	Site      string    // the site id of the node the message was forwarded to
	Since     time.Time // when it was forwarded there, to the millisecond
	Message   []byte    // encoded clusterpb.ForwardMessage
}

func appendCustodyKey(dst []byte, messageID uint64) []byte {
	dst = append(dst, kindCustody)
	return binary.BigEndian.AppendUint64(dst, messageID)
}

// PutCustody records that the message with id messageID, encoded as msg,
// was forwarded to the node with site id site at since. Putting an id again
// replaces its entry: the message moved to another node.
func (b *Batch) PutCustody(messageID uint64, site string, since time.Time, msg []byte) {
	if !validSiteID(site) {
		b.invalid("site id %q is empty or contains U+0000", site)
		return
	}
	b.key = appendCustodyKey(b.key[:0], messageID)
	b.val = append(b.val[:0], recordVersion)
	b.val = binary.AppendUvarint(b.val, uint64(since.UnixMilli()))
	b.val = binary.AppendUvarint(b.val, uint64(len(site)))
	b.val = append(b.val, site...)
	b.val = append(b.val, msg...)
	b.set(b.key, b.val)
}

// DeleteCustody ends the custody of the message with id messageID.
func (b *Batch) DeleteCustody(messageID uint64) {
	b.key = appendCustodyKey(b.key[:0], messageID)
	b.delete(b.key)
}

// DeleteCustody ends the custody of the messages with the given ids, in one
// write that does not wait for an fsync. A delete lost in a crash only lets
// a message be offered to a second node if its first one dies, which QoS 1
// allows.
func (s *Store) DeleteCustody(ids []uint64) error {
	if len(ids) == 0 {
		return nil
	}
	b := s.NewBatch()
	defer b.Close()
	for _, id := range ids {
		b.DeleteCustody(id)
	}
	if err := b.CommitNoSync(); err != nil {
		return fmt.Errorf("storage: delete %d custody entries: %w", len(ids), err)
	}
	return nil
}

// Custody calls fn for every message in shared custody, ordered by message
// id. The entry passed to fn, its Message included, is fn's to keep. Custody
// stops at the first error from fn or from decoding, and returns it.
func (s *Store) Custody(fn func(CustodyEntry) error) error {
	lower, upper := kindBounds(kindCustody)
	return s.load(lower, upper, func(key, value []byte) error {
		e, err := decodeCustody(key, value)
		if err != nil {
			return err
		}
		return fn(e)
	})
}

func decodeCustody(key, value []byte) (CustodyEntry, error) {
	if len(key) != 9 {
		return CustodyEntry{}, corruptf("custody key %x is not 9 bytes", key)
	}
	e := CustodyEntry{MessageID: binary.BigEndian.Uint64(key[1:])}
	if len(value) == 0 || value[0] != recordVersion {
		return e, corruptf("custody value of message %d does not start with record version %d", e.MessageID, recordVersion)
	}
	rest := value[1:]
	ms, n := binary.Uvarint(rest)
	if n <= 0 {
		return e, corruptf("custody value of message %d has no valid time", e.MessageID)
	}
	rest = rest[n:]
	siteLen, n := binary.Uvarint(rest)
	if n <= 0 || uint64(len(rest)-n) < siteLen {
		return e, corruptf("custody value of message %d has no valid site id", e.MessageID)
	}
	rest = rest[n:]
	e.Since = time.UnixMilli(int64(ms))
	e.Site = string(rest[:siteLen])
	e.Message = append([]byte(nil), rest[siteLen:]...)
	return e, nil
}
