package packet

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// ValidUTF8 checks s against the rules for an MQTT UTF-8 encoded string and
// returns an *Error with ReasonMalformedPacket when s breaks one of them:
//
//   - s must be well-formed UTF-8 [MQTT-1.5.3-1] [MQTT-1.5.4-1];
//   - s must not encode a surrogate, U+D800 to U+DFFF (same rules);
//   - s must not contain U+0000 [MQTT-1.5.3-2] [MQTT-1.5.4-2].
//
// Control characters (U+0001 to U+001F, U+007F to U+009F) and non-characters
// are allowed: the spec lets a receiver reject them, and this server does not.
// The length limit of 65,535 bytes is checked by the encoder, not here.
func ValidUTF8(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return Errorf(ReasonMalformedPacket, "string contains U+0000")
	}
	// utf8.ValidString also rejects encoded surrogates, which Go treats as
	// ill-formed like the spec does.
	if !utf8.ValidString(s) {
		return Errorf(ReasonMalformedPacket, "string is not well-formed UTF-8")
	}
	return nil
}

// validUTF8 is ValidUTF8 for bytes still in the read buffer, so that the
// decoder converts a field to a string only after it passed.
func validUTF8(b []byte) bool {
	return bytes.IndexByte(b, 0) < 0 && utf8.Valid(b)
}
