package storage

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// retainedRecordVersion is the first byte of a retained value written with
// a clock. A retained value that starts with recordVersion is the older
// form, a bare message, and loads with the zero clock, so a store written
// before clocks existed keeps working.
const retainedRecordVersion byte = 2

// flagTombstone marks a retained record that deletes its topic.
const flagTombstone byte = 0x01

// RetainedClock is the hybrid logical clock reading of a retained write.
// The zero value is older than every reading a node takes.
type RetainedClock struct {
	WallMS  int64  // unix milliseconds
	Logical uint32 // orders writes within one WallMS
	SiteID  string // site id of the node that took the reading; the tie-break
}

// IsZero reports whether c is the zero clock.
func (c RetainedClock) IsZero() bool { return c.WallMS == 0 && c.Logical == 0 && c.SiteID == "" }

// Compare returns -1, 0 or +1 as c is older than, equal to or newer than o,
// ordered by WallMS, then Logical, then SiteID.
func (c RetainedClock) Compare(o RetainedClock) int {
	if r := cmp.Compare(c.WallMS, o.WallMS); r != 0 {
		return r
	}
	if r := cmp.Compare(c.Logical, o.Logical); r != 0 {
		return r
	}
	return strings.Compare(c.SiteID, o.SiteID)
}

// RetainedRecord is the retained value of one topic with the clock of the
// write that set it. A tombstone records a delete, so that an older write
// that arrives later from another node does not bring the message back;
// its Message holds only the Topic.
type RetainedRecord struct {
	Message
	Clock     RetainedClock
	Tombstone bool
}

// PutRetainedRecord writes r as the retained record of r.Topic, replacing
// the previous one. Unlike PutRetained it keeps the clock, and it stores a
// tombstone instead of deleting the key.
func (b *Batch) PutRetainedRecord(r *RetainedRecord) {
	if !r.Tombstone && !b.checkQoS("retained message", r.QoS) {
		return
	}
	b.key = appendRetainedKey(b.key[:0], r.Topic)
	b.val = appendRetainedRecord(b.val[:0], r)
	b.set(b.key, b.val)
}

// RetainedRecords calls fn for every retained record, tombstones included,
// ordered by topic. Records written by PutRetained load with the zero
// clock.
func (s *Store) RetainedRecords(fn func(*RetainedRecord) error) error {
	lower, upper := kindBounds(kindRetained)
	return s.load(lower, upper, func(key, value []byte) error {
		r := new(RetainedRecord)
		if err := decodeRetainedRecord(value, r); err != nil {
			return fmt.Errorf("storage: load retained message %q: %w", key[1:], err)
		}
		return fn(r)
	})
}

// appendRetainedRecord appends a retained value. Layout: version 2, flags,
// varint WallMS, uvarint Logical, length-prefixed SiteID, then for a
// message that is not a tombstone the message value of appendMessage.
func appendRetainedRecord(dst []byte, r *RetainedRecord) []byte {
	var flags byte
	if r.Tombstone {
		flags |= flagTombstone
	}
	dst = append(dst, retainedRecordVersion, flags)
	dst = binary.AppendVarint(dst, r.Clock.WallMS)
	dst = binary.AppendUvarint(dst, uint64(r.Clock.Logical))
	dst = appendString(dst, r.Clock.SiteID)
	if r.Tombstone {
		return appendString(dst, r.Topic)
	}
	return appendMessage(dst, &r.Message)
}

// decodeRetainedRecord decodes either form of a retained value into r.
func decodeRetainedRecord(b []byte, r *RetainedRecord) error {
	*r = RetainedRecord{}
	if len(b) > 0 && b[0] == recordVersion {
		return decodeMessage(b, &r.Message)
	}
	d := decoder{b: b, record: "retained message"}
	if v := d.byte(); d.err == nil && v != retainedRecordVersion {
		d.fail(fmt.Sprintf("unknown record version %d", v))
	}
	flags := d.byte()
	if flags&^flagTombstone != 0 {
		d.fail("unknown flag bits")
	}
	r.Clock.WallMS = d.varint()
	r.Clock.Logical = uint32(d.uvarint(math.MaxUint32))
	r.Clock.SiteID = string(d.bytes())
	if d.err != nil {
		return d.err
	}
	if flags&flagTombstone != 0 {
		r.Tombstone = true
		r.Topic = string(d.bytes())
		return d.finish()
	}
	return decodeMessage(d.b, &r.Message)
}

// retainedSyncPrefix starts the keys that record, per peer site id, when
// this node last completed a retained sync with that peer.
var retainedSyncPrefix = []byte{kindMeta, 'r', 's', 'y', 'n', 'c', 0}

// PutRetainedSync records that a retained sync with the node of site id
// site completed at atMS, in unix milliseconds.
func (b *Batch) PutRetainedSync(site string, atMS int64) {
	b.key = append(append(b.key[:0], retainedSyncPrefix...), site...)
	b.val = binary.AppendVarint(b.val[:0], atMS)
	b.set(b.key, b.val)
}

// RetainedSyncs returns the times, in unix milliseconds by peer site id,
// that PutRetainedSync recorded.
func (s *Store) RetainedSyncs() (map[string]int64, error) {
	upper := append([]byte(nil), retainedSyncPrefix...)
	upper[len(upper)-1]++
	out := make(map[string]int64)
	err := s.load(retainedSyncPrefix, upper, func(key, value []byte) error {
		at, n := binary.Varint(value)
		if n <= 0 {
			return corruptf("retained sync time of %q is not a varint", key[len(retainedSyncPrefix):])
		}
		out[string(key[len(retainedSyncPrefix):])] = at
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: load retained sync times: %w", err)
	}
	return out, nil
}
