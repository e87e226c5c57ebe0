package packet

import (
	"errors"
	"fmt"
)

// ErrNotEncodable is wrapped by every error of an Encode method: a field holds
// a value that the wire format cannot carry.
var ErrNotEncodable = errors.New("packet: field cannot be encoded")

// maxFieldLength is the longest UTF-8 string or binary field, set by its
// two-byte length prefix.
const maxFieldLength = 65535

// encoder appends the fields of one packet to buf. The first failure is kept in
// err and later steps keep appending, so that the Encode methods read as a flat
// list of fields and check err once in finish.
type encoder struct {
	buf   []byte
	start int // len(buf) before the packet, restored when encoding fails
	err   error
}

func newEncoder(dst []byte) encoder {
	return encoder{buf: dst, start: len(dst)}
}

func (e *encoder) fail(format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf("%w: %s", ErrNotEncodable, fmt.Sprintf(format, args...))
	}
}

// header appends the first fixed header byte and room for the remaining
// length. It returns the offset of that room for finish.
func (e *encoder) header(t Type, flags byte) int {
	e.buf = append(e.buf, byte(t)<<4|flags)
	return e.reserveLength()
}

// reserveLength appends room for the longest variable byte integer, to be
// filled by fillLength once the length of what follows is known. Writing the
// fields first and then moving them down by up to three bytes avoids a second
// pass over every packet type to compute its size in advance.
func (e *encoder) reserveLength() int {
	mark := len(e.buf)
	e.buf = append(e.buf, 0, 0, 0, 0)
	return mark
}

// fillLength writes at mark the number of bytes appended after the reserved
// room plus extra bytes that the caller appends next, then removes the unused
// part of the room. It reports false when the length exceeds
// MaxRemainingLength.
func (e *encoder) fillLength(mark, extra int) bool {
	n := len(e.buf) - mark - maxVarIntLen + extra
	if n > MaxRemainingLength {
		return false
	}
	used := putVarInt(e.buf[mark:], uint32(n))
	if used < maxVarIntLen {
		copy(e.buf[mark+used:], e.buf[mark+maxVarIntLen:])
		e.buf = e.buf[:len(e.buf)-(maxVarIntLen-used)]
	}
	return true
}

// finish fills in the remaining length of the packet started at mark, appends
// payload, and returns the result. On failure it returns the caller's dst with
// its original length, and the error.
func (e *encoder) finish(t Type, mark int, payload []byte) ([]byte, error) {
	if e.err == nil && !e.fillLength(mark, len(payload)) {
		e.fail("%v remaining length exceeds %d bytes", t, MaxRemainingLength)
	}
	if e.err != nil {
		return e.buf[:e.start], e.err
	}
	return append(e.buf, payload...), nil
}

func (e *encoder) byte(b byte) {
	e.buf = append(e.buf, b)
}

func (e *encoder) uint16(v uint16) {
	e.buf = append(e.buf, byte(v>>8), byte(v))
}

func (e *encoder) uint32(v uint32) {
	e.buf = append(e.buf, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// string appends a UTF-8 encoded string. It does not check the UTF-8 rules:
// strings that the node builds itself go through ValidUTF8 first.
func (e *encoder) string(field, s string) {
	if len(s) > maxFieldLength {
		e.fail("%s of %d bytes exceeds %d", field, len(s), maxFieldLength)
		return
	}
	e.uint16(uint16(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) binary(field string, b []byte) {
	if len(b) > maxFieldLength {
		e.fail("%s of %d bytes exceeds %d", field, len(b), maxFieldLength)
		return
	}
	e.uint16(uint16(len(b)))
	e.buf = append(e.buf, b...)
}

// checkVersion rejects a protocol version that Encode cannot write.
func checkVersion(t Type, version byte) error {
	switch version {
	case Version31, Version311, Version5:
		return nil
	}
	return fmt.Errorf("%w: %v for unknown protocol version %d", ErrNotEncodable, t, version)
}

// checkQoS rejects a QoS that does not fit the two bits the wire gives it.
func (e *encoder) checkQoS(field string, qos byte) {
	if qos > 2 {
		e.fail("%s %d is not 0, 1 or 2", field, qos)
	}
}
