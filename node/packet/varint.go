package packet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// MaxRemainingLength is the largest value a variable byte integer can carry in
// four bytes, and so the largest remaining length of a packet.
const MaxRemainingLength = 268435455

// maxVarIntLen is the number of bytes of the longest variable byte integer.
const maxVarIntLen = 4

// readRemainingLength reads the variable byte integer that follows the first
// byte of the fixed header. It returns the value and the number of bytes read.
//
// A non-minimal encoding (for example 0x80 0x00 for zero) is accepted as long as
// it fits in four bytes. MQTT 5.0 obliges the sender to use the minimum
// [MQTT-1.5.5-1] but sets no rule for the receiver, and 3.1.1 has neither.
// A fifth byte, or a fourth byte with the continuation bit, is malformed.
func readRemainingLength(r *bufio.Reader) (uint32, int, error) {
	var value uint32
	for i := range maxVarIntLen {
		b, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, i, fmt.Errorf("packet: read remaining length: %w", err)
		}
		value |= uint32(b&0x7F) << (7 * i)
		if b&0x80 == 0 {
			return value, i + 1, nil
		}
	}
	return 0, maxVarIntLen, Errorf(ReasonMalformedPacket, "remaining length longer than %d bytes", maxVarIntLen)
}

// decodeVarInt decodes the variable byte integer at the start of b. It returns
// the value and the number of bytes used. Non-minimal encodings of up to four
// bytes are accepted, as in readRemainingLength.
func decodeVarInt(b []byte) (uint32, int, error) {
	var value uint32
	for i := range maxVarIntLen {
		if i >= len(b) {
			return 0, 0, Errorf(ReasonMalformedPacket, "variable byte integer truncated after %d bytes", i)
		}
		value |= uint32(b[i]&0x7F) << (7 * i)
		if b[i]&0x80 == 0 {
			return value, i + 1, nil
		}
	}
	return 0, 0, Errorf(ReasonMalformedPacket, "variable byte integer longer than %d bytes", maxVarIntLen)
}

// varIntLen returns the number of bytes of the minimal encoding of v, which
// must not exceed MaxRemainingLength.
func varIntLen(v uint32) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	default:
		return 4
	}
}

// appendVarInt appends the minimal encoding of v, which must not exceed
// MaxRemainingLength.
func appendVarInt(dst []byte, v uint32) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// putVarInt writes the minimal encoding of v at the start of b and returns the
// number of bytes written. b must have room for varIntLen(v) bytes.
func putVarInt(b []byte, v uint32) int {
	i := 0
	for v >= 0x80 {
		b[i] = byte(v) | 0x80
		v >>= 7
		i++
	}
	b[i] = byte(v)
	return i + 1
}
