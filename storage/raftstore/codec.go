package raftstore

import (
	"encoding/binary"
	"math/bits"
	"time"

	"github.com/hashicorp/raft"
)

// logVersion is the first byte of every encoded log entry. A decoder that
// meets a higher version returns ErrCorrupt instead of guessing.
const logVersion = 1

// flagAppendedAt marks an entry whose AppendedAt is not the zero time.
const flagAppendedAt = 1 << 0

// knownFlags are the flag bits that version 1 defines. Any other bit makes
// the entry corrupt.
const knownFlags = flagAppendedAt

// appendLog appends the version 1 encoding of l to dst:
//
//	version     byte, 1
//	flags       byte, bit 0 set when AppendedAt is not zero
//	index       uvarint
//	term        uvarint
//	type        byte (raft.LogType)
//	data        uvarint length, then the bytes
//	extensions  uvarint length, then the bytes
//	appendedAt  only with flag bit 0: varint Unix seconds, uvarint nanoseconds
//
// The index duplicates the key so that GetLog can tell a value stored under
// the wrong key from a good one. AppendedAt loses its monotonic clock
// reading and its location, which raft does not use.
func appendLog(dst []byte, l *raft.Log) []byte {
	var flags byte
	if !l.AppendedAt.IsZero() {
		flags |= flagAppendedAt
	}
	dst = append(dst, logVersion, flags)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	if flags&flagAppendedAt != 0 {
		dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
		dst = binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond()))
	}
	return dst
}

// encodedLogLen returns the exact length that appendLog adds for l, so that
// StoreLogs can reserve the value in the batch and encode into it in place.
func encodedLogLen(l *raft.Log) int {
	n := 2 + uvarintLen(l.Index) + uvarintLen(l.Term) + 1
	n += uvarintLen(uint64(len(l.Data))) + len(l.Data)
	n += uvarintLen(uint64(len(l.Extensions))) + len(l.Extensions)
	if !l.AppendedAt.IsZero() {
		n += varintLen(l.AppendedAt.Unix()) + uvarintLen(uint64(l.AppendedAt.Nanosecond()))
	}
	return n
}

// decodeLog decodes the encoding of appendLog into l, overwriting every
// field. Data and Extensions are copied out of src, so src may be reused
// afterwards. An empty Data or Extensions decodes as nil. Any malformed
// input, including trailing bytes, returns an error marked ErrCorrupt.
func decodeLog(src []byte, l *raft.Log) error {
	d := decoder{buf: src}
	version := d.byte("version")
	if d.err == nil && version != logVersion {
		return corruptf("log entry version %d, want %d", version, logVersion)
	}
	flags := d.byte("flags")
	if d.err == nil && flags&^knownFlags != 0 {
		return corruptf("log entry flags 0x%02x contain unknown bits", flags)
	}
	index := d.uvarint("index")
	term := d.uvarint("term")
	typ := d.byte("type")
	data := d.bytes("data")
	ext := d.bytes("extensions")
	var appendedAt time.Time
	if flags&flagAppendedAt != 0 {
		appendedAt = d.time()
	}
	if d.err != nil {
		return d.err
	}
	if len(d.buf) != 0 {
		return corruptf("log entry has %d trailing bytes", len(d.buf))
	}

	// One allocation holds both byte fields. The full slice expressions cap
	// Data, so that appending to it cannot overwrite Extensions.
	var dataCopy, extCopy []byte
	if n := len(data) + len(ext); n > 0 {
		buf := make([]byte, n)
		copy(buf, data)
		copy(buf[len(data):], ext)
		if len(data) > 0 {
			dataCopy = buf[:len(data):len(data)]
		}
		if len(ext) > 0 {
			extCopy = buf[len(data):]
		}
	}
	*l = raft.Log{
		Index:      index,
		Term:       term,
		Type:       raft.LogType(typ),
		Data:       dataCopy,
		Extensions: extCopy,
		AppendedAt: appendedAt,
	}
	return nil
}

// decoder reads fields from buf and records the first failure in err. After
// a failure every read returns a zero value, so a caller checks err once.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) == 0 {
		d.err = corruptf("log entry truncated before %s", field)
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = corruptf("log entry has a truncated or overlong %s varint", field)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.err = corruptf("log entry has a truncated or overlong %s varint", field)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// bytes returns a length-prefixed field as a sub-slice of buf.
func (d *decoder) bytes(field string) []byte {
	if d.err != nil {
		return nil
	}
	n, size := binary.Uvarint(d.buf)
	if size <= 0 {
		d.err = corruptf("log entry has a truncated or overlong %s length varint", field)
		return nil
	}
	d.buf = d.buf[size:]
	if n > uint64(len(d.buf)) {
		d.err = corruptf("log entry %s length %d exceeds the %d remaining bytes", field, n, len(d.buf))
		return nil
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}

// time reads Unix seconds as a varint and nanoseconds as a uvarint.
func (d *decoder) time() time.Time {
	sec := d.varint("appended at seconds")
	nsec := d.uvarint("appended at nanoseconds")
	if d.err != nil {
		return time.Time{}
	}
	if nsec >= uint64(time.Second) {
		d.err = corruptf("log entry appended at nanoseconds %d out of range", nsec)
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec))
}

// uvarintLen returns the length of the uvarint encoding of v.
func uvarintLen(v uint64) int {
	return (bits.Len64(v|1) + 6) / 7
}

// varintLen returns the length of the varint (zig-zag) encoding of v.
func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}
