package packet

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// hx decodes hex with optional spaces.
func hx(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// str returns s as a length-prefixed MQTT string.
func str(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

// frame builds a packet from the first header byte and body parts, computing
// the remaining length.
func frame(b0 byte, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	return append(appendVarInt([]byte{b0}, uint32(len(body))), body...)
}

// props builds a property block from raw property bytes.
func props(parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	return append(appendVarInt(nil, uint32(len(body))), body...)
}

// connect5 builds a 5.0 CONNECT with the given flags, properties and payload.
func connect5(flags byte, properties []byte, payload ...[]byte) []byte {
	return frame(0x10, str("MQTT"), []byte{5, flags, 0, 60}, properties, bytes.Join(payload, nil))
}

// connect4 builds a 3.1.1 CONNECT with the given flags and payload.
func connect4(flags byte, payload ...[]byte) []byte {
	return frame(0x10, str("MQTT"), []byte{4, flags, 0, 60}, bytes.Join(payload, nil))
}

func publish5(properties []byte) []byte {
	return frame(0x32, str("t"), hx("00 01"), properties, []byte("p"))
}

type rejectCase struct {
	name    string
	version byte
	data    []byte
	want    ReasonCode
}

var rejectCases = []rejectCase{
	// Connection state and fixed header.
	{"pingreq-before-connect", 0, hx("c0 00"), ReasonProtocolError},           // [MQTT-3.1.0-1]
	{"publish-before-connect", 0, frame(0x30, str("t")), ReasonProtocolError}, // [MQTT-3.1.0-1]
	{"second-connect", 4, connect4(0x02, str("c")), ReasonProtocolError},      // [MQTT-3.1.0-2]
	{"reserved-type-0", 4, hx("00 00"), ReasonMalformedPacket},
	{"auth-in-311", 4, hx("f0 00"), ReasonMalformedPacket},
	{"auth-in-31", 3, hx("f0 00"), ReasonMalformedPacket},
	{"publish-qos3", 4, frame(0x36, str("t"), hx("00 01")), ReasonMalformedPacket}, // [MQTT-3.3.1-4]
	{"publish-qos3-v5", 5, frame(0x36, str("t"), hx("00 01 00")), ReasonMalformedPacket},
	{"publish-dup-qos0", 4, frame(0x38, str("t")), ReasonMalformedPacket}, // [MQTT-3.3.1-2]
	{"pubrel-flags-0000", 4, hx("60 02 00 01"), ReasonMalformedPacket},    // [MQTT-3.6.1-1]
	{"pubrel-flags-1010-311", 4, hx("6a 02 00 01"), ReasonMalformedPacket},
	{"subscribe-flags-0000", 5, frame(0x80, hx("00 01 00"), str("a"), []byte{0}), ReasonMalformedPacket}, // [MQTT-3.8.1-1]
	{"unsubscribe-flags-0011", 4, frame(0xA3, hx("00 01"), str("a")), ReasonMalformedPacket},             // [MQTT-3.10.1-1]
	{"puback-flags-0001", 4, hx("41 02 00 01"), ReasonMalformedPacket},
	{"pingreq-flags-0001", 4, hx("c1 00"), ReasonMalformedPacket},
	{"disconnect-flags-1000", 5, hx("e8 00"), ReasonMalformedPacket},
	{"connect-flags-0001", 0, append([]byte{0x11}, connect4(0x02, str("c"))[1:]...), ReasonMalformedPacket},
	{"remaining-length-5-bytes", 4, hx("30 80 80 80 80 01"), ReasonMalformedPacket},
	{"remaining-length-4-bytes-continued", 4, hx("30 ff ff ff ff 7f"), ReasonMalformedPacket},

	// Trailing bytes after the last field.
	{"pingreq-with-body", 4, hx("c0 01 00"), ReasonMalformedPacket},
	{"pingresp-with-body", 5, hx("d0 01 00"), ReasonMalformedPacket},
	{"puback-311-long", 4, hx("40 03 00 01 00"), ReasonMalformedPacket},
	{"puback-311-short", 4, hx("40 01 00"), ReasonMalformedPacket},
	{"puback-v5-after-properties", 5, hx("40 05 00 01 00 00 ff"), ReasonMalformedPacket},
	{"unsuback-311-long", 4, hx("b0 03 00 01 00"), ReasonMalformedPacket},
	{"disconnect-311-body", 4, hx("e0 01 00"), ReasonMalformedPacket},
	{"disconnect-v5-after-properties", 5, hx("e0 03 00 00 ff"), ReasonMalformedPacket},
	{"connect-trailing-byte", 0, connect4(0x02, str("c"), []byte{0}), ReasonMalformedPacket},
	{"connack-311-trailing", 4, hx("20 03 00 00 00"), ReasonMalformedPacket},

	// UTF-8 strings [MQTT-1.5.4-1] [MQTT-1.5.4-2].
	{"topic-invalid-byte", 4, frame(0x30, hx("00 01 ff")), ReasonMalformedPacket},
	{"topic-u0000", 4, frame(0x30, hx("00 03 61 00 62")), ReasonMalformedPacket},
	{"topic-surrogate", 4, frame(0x30, hx("00 03 ed a0 80")), ReasonMalformedPacket},
	{"topic-overlong", 4, frame(0x30, hx("00 02 c0 80")), ReasonMalformedPacket},
	{"topic-truncated-sequence", 4, frame(0x30, hx("00 02 e2 82")), ReasonMalformedPacket},
	{"client-id-surrogate", 0, connect4(0x02, hx("00 03 ed bf bf")), ReasonMalformedPacket},
	{"filter-u0000", 4, frame(0x82, hx("00 01 00 01 00 00")), ReasonMalformedPacket},
	{"user-property-invalid", 5, publish5(props(hx("26 00 01 ff 00 00"))), ReasonMalformedPacket},
	{"string-longer-than-body", 4, frame(0x30, hx("00 09 61")), ReasonMalformedPacket},
	{"string-length-truncated", 4, hx("30 01 00"), ReasonMalformedPacket},

	// PUBLISH.
	{"publish-packet-id-0", 4, frame(0x32, str("t"), hx("00 00")), ReasonProtocolError}, // [MQTT-2.3.1-1]
	{"publish-packet-id-missing", 4, frame(0x32, str("t"), hx("00")), ReasonMalformedPacket},
	{"publish-v5-empty-topic-no-alias", 5, frame(0x30, str(""), props()), ReasonProtocolError},
	{"publish-v5-missing-properties", 5, frame(0x30, str("t")), ReasonMalformedPacket},

	// CONNECT.
	{"connect-reserved-flag", 0, connect4(0x03, str("c")), ReasonMalformedPacket},                           // [MQTT-3.1.2-3]
	{"connect-will-qos-without-will", 0, connect4(0x0A, str("c")), ReasonMalformedPacket},                   // [MQTT-3.1.2-11]
	{"connect-will-retain-without-will", 0, connect4(0x22, str("c")), ReasonMalformedPacket},                // [MQTT-3.1.2-13]
	{"connect-will-qos3", 0, connect4(0x1E, str("c"), str("w"), str("m")), ReasonMalformedPacket},           // [MQTT-3.1.2-14]
	{"connect-password-without-username-311", 0, connect4(0x42, str("c"), str("p")), ReasonMalformedPacket}, // [MQTT-3.1.2-22]
	{"connect-password-without-username-31", 0, frame(0x10, str("MQIsdp"), []byte{3, 0x42, 0, 60}, str("c"), str("p")), ReasonMalformedPacket},
	{"connect-unknown-protocol-name", 0, frame(0x10, str("MQTX"), []byte{4, 2, 0, 60}, str("c")), ReasonProtocolError}, // [MQTT-3.1.2-1]
	{"connect-level-6", 0, frame(0x10, str("MQTT"), []byte{6, 2, 0, 60}, str("c")), ReasonUnsupportedProtocolVersion},  // [MQTT-3.1.2-2]
	{"connect-mqtt-level-3", 0, frame(0x10, str("MQTT"), []byte{3, 2, 0, 60}, str("c")), ReasonUnsupportedProtocolVersion},
	{"connect-mqisdp-level-4", 0, frame(0x10, str("MQIsdp"), []byte{4, 2, 0, 60}, str("c")), ReasonUnsupportedProtocolVersion},
	{"connect-bridge-bit-level", 0, frame(0x10, str("MQTT"), []byte{0x84, 2, 0, 60}, str("c")), ReasonUnsupportedProtocolVersion},
	{"connect-missing-client-id", 0, connect4(0x02), ReasonMalformedPacket},
	{"connect-missing-will-payload", 0, connect4(0x06, str("c"), str("w")), ReasonMalformedPacket},
	{"connect-missing-password", 0, connect4(0xC2, str("c"), str("u")), ReasonMalformedPacket},
	{"connect-truncated-protocol-name", 0, hx("10 03 00 04 4d"), ReasonMalformedPacket},
	{"connect-v5-auth-data-without-method", 0, connect5(0x02, props(hx("16 00 01 aa")), str("c")), ReasonProtocolError},
	{"connect-v5-property-length-too-long", 0, connect5(0x02, hx("7f 11 00 00 00 01"), str("c")), ReasonMalformedPacket},

	// Properties.
	{"property-not-allowed-in-publish", 5, publish5(props(hx("11 00 00 00 01"))), ReasonMalformedPacket},
	{"property-unknown-id", 5, publish5(props(hx("7f 00"))), ReasonMalformedPacket},
	{"property-id-above-63", 5, publish5(props(hx("80 01 00"))), ReasonMalformedPacket},
	{"property-id-5-byte-varint", 5, publish5(props(hx("80 80 80 80 01"))), ReasonMalformedPacket},
	{"property-duplicate-payload-format", 5, publish5(props(hx("01 01 01 00"))), ReasonProtocolError},
	{"property-duplicate-content-type", 5, publish5(props(hx("03 00 01 61 03 00 01 62"))), ReasonProtocolError},
	{"property-duplicate-subscription-id-in-subscribe", 5, frame(0x82, hx("00 01"), props(hx("0b 01 0b 02")), str("a"), []byte{0}), ReasonProtocolError},
	{"property-duplicate-will-delay", 0, connect5(0x06, props(), str("c"), props(hx("18 00 00 00 01 18 00 00 00 02")), str("w"), str("m")), ReasonProtocolError},
	{"property-duplicate-receive-maximum", 0, connect5(0x02, props(hx("21 00 01 21 00 02")), str("c")), ReasonProtocolError},
	{"property-subscription-id-0", 5, frame(0x82, hx("00 01"), props(hx("0b 00")), str("a"), []byte{0}), ReasonProtocolError},
	{"property-subscription-id-0-publish", 5, publish5(props(hx("0b 00"))), ReasonProtocolError},
	{"property-receive-maximum-0", 0, connect5(0x02, props(hx("21 00 00")), str("c")), ReasonProtocolError},
	{"property-maximum-packet-size-0", 0, connect5(0x02, props(hx("27 00 00 00 00")), str("c")), ReasonProtocolError},
	{"property-topic-alias-0", 5, publish5(props(hx("23 00 00"))), ReasonProtocolError},
	{"property-payload-format-2", 5, publish5(props(hx("01 02"))), ReasonProtocolError},
	{"property-request-problem-info-2", 0, connect5(0x02, props(hx("17 02")), str("c")), ReasonProtocolError},
	{"property-request-response-info-2", 0, connect5(0x02, props(hx("19 02")), str("c")), ReasonProtocolError},
	{"property-maximum-qos-2", 5, frame(0x20, hx("00 00"), props(hx("24 02"))), ReasonProtocolError},
	{"property-retain-available-2", 5, frame(0x20, hx("00 00"), props(hx("25 02"))), ReasonProtocolError},
	{"property-wildcard-available-2", 5, frame(0x20, hx("00 00"), props(hx("28 02"))), ReasonProtocolError},
	{"property-value-truncated", 5, publish5(props(hx("02 00 00"))), ReasonMalformedPacket},
	{"property-length-truncated", 5, frame(0x30, str("t"), hx("80")), ReasonMalformedPacket},
	{"property-length-exceeds-body", 5, frame(0x30, str("t"), hx("05 01 01")), ReasonMalformedPacket},
	{"property-topic-alias-in-will", 0, connect5(0x06, props(), str("c"), props(hx("23 00 01")), str("w"), str("m")), ReasonMalformedPacket},
	{"property-will-delay-in-connect", 0, connect5(0x02, props(hx("18 00 00 00 01")), str("c")), ReasonMalformedPacket},
	{"property-reason-string-in-subscribe", 5, frame(0x82, hx("00 01"), props(hx("1f 00 01 61")), str("a"), []byte{0}), ReasonMalformedPacket},
	{"property-topic-alias-in-disconnect", 5, frame(0xE0, []byte{0}, props(hx("23 00 01"))), ReasonMalformedPacket},

	// SUBSCRIBE.
	{"subscribe-311-options-bit-2", 4, frame(0x82, hx("00 01"), str("a"), []byte{0x04}), ReasonMalformedPacket}, // [MQTT-3-8.3-4]
	{"subscribe-311-options-bit-7", 4, frame(0x82, hx("00 01"), str("a"), []byte{0x80}), ReasonMalformedPacket},
	{"subscribe-311-qos3", 4, frame(0x82, hx("00 01"), str("a"), []byte{0x03}), ReasonMalformedPacket},
	{"subscribe-31-qos3", 3, frame(0x82, hx("00 01"), str("a"), []byte{0x03}), ReasonMalformedPacket},
	{"subscribe-v5-reserved-bit-6", 5, frame(0x82, hx("00 01 00"), str("a"), []byte{0x40}), ReasonMalformedPacket}, // [MQTT-3.8.3-5]
	{"subscribe-v5-reserved-bit-7", 5, frame(0x82, hx("00 01 00"), str("a"), []byte{0x80}), ReasonMalformedPacket},
	{"subscribe-v5-retain-handling-3", 5, frame(0x82, hx("00 01 00"), str("a"), []byte{0x30}), ReasonProtocolError},
	{"subscribe-v5-qos3", 5, frame(0x82, hx("00 01 00"), str("a"), []byte{0x03}), ReasonProtocolError},
	{"subscribe-311-empty", 4, frame(0x82, hx("00 01")), ReasonProtocolError}, // [MQTT-3.8.3-3]
	{"subscribe-v5-empty", 5, frame(0x82, hx("00 01 00")), ReasonProtocolError},
	{"subscribe-packet-id-0", 4, frame(0x82, hx("00 00"), str("a"), []byte{0}), ReasonProtocolError},
	{"subscribe-missing-options", 4, frame(0x82, hx("00 01"), str("a")), ReasonMalformedPacket},
	{"subscribe-second-missing-options", 4, frame(0x82, hx("00 01"), str("a"), []byte{0}, str("b")), ReasonMalformedPacket},

	// UNSUBSCRIBE.
	{"unsubscribe-311-empty", 4, frame(0xA2, hx("00 01")), ReasonProtocolError}, // [MQTT-3.10.3-2]
	{"unsubscribe-v5-empty", 5, frame(0xA2, hx("00 01 00")), ReasonProtocolError},
	{"unsubscribe-packet-id-0", 4, frame(0xA2, hx("00 00"), str("a")), ReasonProtocolError},
	{"unsubscribe-filter-truncated", 4, frame(0xA2, hx("00 01 00 05 61")), ReasonMalformedPacket},

	// SUBACK and UNSUBACK.
	{"suback-311-code-3", 4, hx("90 03 00 01 03"), ReasonProtocolError}, // [MQTT-3.9.3-2]
	{"suback-311-code-81", 4, hx("90 03 00 01 81"), ReasonProtocolError},
	{"suback-v5-code-04", 5, hx("90 04 00 01 00 04"), ReasonProtocolError},
	{"suback-311-empty", 4, hx("90 02 00 01"), ReasonProtocolError},
	{"suback-v5-empty", 5, hx("90 03 00 01 00"), ReasonProtocolError},
	{"unsuback-v5-code-10", 5, hx("b0 04 00 01 00 10"), ReasonProtocolError},
	{"unsuback-v5-empty", 5, hx("b0 03 00 01 00"), ReasonProtocolError},
	{"unsuback-packet-id-0", 4, hx("b0 02 00 00"), ReasonProtocolError},

	// PUBACK, PUBREC, PUBREL, PUBCOMP.
	{"puback-packet-id-0", 4, hx("40 02 00 00"), ReasonProtocolError},
	{"pubcomp-v5-packet-id-0", 5, hx("70 02 00 00"), ReasonProtocolError},
	{"puback-v5-code-01", 5, hx("40 03 00 01 01"), ReasonProtocolError},
	{"pubrec-v5-code-92", 5, hx("50 03 00 01 92"), ReasonProtocolError},
	{"pubrel-v5-code-10", 5, hx("62 03 00 01 10"), ReasonProtocolError},
	{"pubcomp-v5-code-80", 5, hx("70 03 00 01 80"), ReasonProtocolError},
	{"puback-v5-property-not-allowed", 5, hx("40 06 00 01 00 02 01 01"), ReasonMalformedPacket},

	// CONNACK.
	{"connack-311-reserved-flags", 4, hx("20 02 02 00"), ReasonMalformedPacket}, // [MQTT-3.2.2-1]
	{"connack-v5-reserved-flags", 5, hx("20 03 80 00 00"), ReasonMalformedPacket},
	{"connack-311-code-6", 4, hx("20 02 00 06"), ReasonProtocolError},
	{"connack-311-session-present-refused", 4, hx("20 02 01 05"), ReasonProtocolError}, // [MQTT-3.2.2-4]
	{"connack-v5-session-present-refused", 5, hx("20 03 01 87 00"), ReasonProtocolError},
	{"connack-v5-code-04", 5, hx("20 03 00 04 00"), ReasonProtocolError},
	{"connack-v5-missing-properties", 5, hx("20 02 00 00"), ReasonMalformedPacket},
	{"connack-truncated", 4, hx("20 01 00"), ReasonMalformedPacket},

	// DISCONNECT and AUTH.
	{"disconnect-v5-code-01", 5, hx("e0 01 01"), ReasonProtocolError},
	{"disconnect-v5-code-18", 5, hx("e0 01 18"), ReasonProtocolError},
	{"auth-v5-code-04", 5, hx("f0 01 04"), ReasonProtocolError},
	{"auth-v5-code-00-property-not-allowed", 5, hx("f0 04 00 02 01 01"), ReasonMalformedPacket},
}

// TestRead_Reject checks that every rule violation is an *Error with the
// expected reason code.
func TestRead_Reject(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range rejectCases {
		t.Run(tc.name, func(t *testing.T) {
			if names[tc.name] {
				t.Fatal("case name used twice")
			}
			names[tc.name] = true

			p, err := readAll(t, tc.data, tc.version)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Read(% x) = %v, %v; want *Error", tc.data, p, err)
			}
			if e.Code != tc.want {
				t.Errorf("reason 0x%02X (%s), want 0x%02X", byte(e.Code), e.Reason, byte(tc.want))
			}
			if _, isConnect := p.(*Connect); p != nil && !isConnect {
				t.Errorf("Read returned packet %#v with the error", p)
			}
		})
	}
}

// TestRead_Accept checks inputs at the edges of the rules that must pass.
func TestRead_Accept(t *testing.T) {
	cases := []struct {
		name    string
		version byte
		data    []byte
	}{
		{"topic-control-characters", 4, frame(0x30, hx("00 04 01 1f 7f 61"))},
		{"topic-c1-control", 4, frame(0x30, hx("00 02 c2 80"))},
		{"topic-noncharacter-uffff", 4, frame(0x30, hx("00 03 ef bf bf"))},
		{"topic-supplementary-plane", 4, frame(0x30, hx("00 04 f0 9f 98 80"))},
		{"remaining-length-non-minimal", 4, hx("c0 80 00")},
		{"remaining-length-non-minimal-4-bytes", 4, hx("30 85 80 80 00 00 03 61 2f 62")},
		{"subscribe-31-dup-flag", 3, frame(0x8A, hx("00 01"), str("a"), []byte{1})},
		{"pubrel-31-dup-flag", 3, hx("6a 02 00 01")},
		{"connack-31-reserved-byte-set", 3, hx("20 02 ff 00")},
		{"disconnect-v5-reason-only", 5, hx("e0 01 8e")},
		{"auth-v5-reason-only", 5, hx("f0 01 18")},
		{"puback-v5-empty-properties", 5, hx("40 04 00 01 00 00")},
		{"publish-v5-repeated-subscription-ids", 5, publish5(props(hx("0b 01 0b 01")))},
		{"publish-311-empty-topic", 4, frame(0x30, str(""))},
		{"connect-v5-password-without-username", 0, connect5(0x42, props(), str("c"), str("p"))},
		{"connect-v5-will-empty-properties", 0, connect5(0x06, props(), str("c"), props(), str("w"), str(""))},
		{"property-empty-correlation-data", 5, publish5(props(hx("09 00 00")))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := readAll(t, tc.data, tc.version); err != nil {
				t.Fatalf("Read(% x): %v", tc.data, err)
			}
		})
	}
}

// TestRead_ConnectVersionError checks that a CONNECT with an unsupported
// level comes back with its name and level, so the node can reply with
// CONNACK return code 1 [MQTT-3.1.2-2].
func TestRead_ConnectVersionError(t *testing.T) {
	cases := []struct {
		name     string
		data     []byte
		wantName string
		wantVer  byte
		want     ReasonCode
	}{
		{"level-6", frame(0x10, str("MQTT"), []byte{6, 2, 0, 60}, str("c")), "MQTT", 6, ReasonUnsupportedProtocolVersion},
		{"unknown-name", frame(0x10, str("MQTT-SN"), []byte{4, 2, 0, 60}, str("c")), "MQTT-SN", 4, ReasonProtocolError},
		{"v5-bad-property", connect5(0x02, props(hx("21 00 00")), str("c")), "MQTT", 5, ReasonProtocolError},
		{"v311-reserved-flag", connect4(0x01, str("c")), "MQTT", 4, ReasonMalformedPacket},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := readAll(t, tc.data, 0)
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.want {
				t.Fatalf("error %v, want reason 0x%02X", err, byte(tc.want))
			}
			c, ok := p.(*Connect)
			if !ok || c == nil {
				t.Fatalf("packet %#v, want the partial *Connect", p)
			}
			if c.ProtocolName != tc.wantName || c.ProtocolVersion != tc.wantVer {
				t.Errorf("protocol %q level %d, want %q level %d", c.ProtocolName, c.ProtocolVersion, tc.wantName, tc.wantVer)
			}
		})
	}
}

// TestRead_ConnectTruncatedName checks that no *Connect comes back when even
// the protocol name could not be read.
func TestRead_ConnectTruncatedName(t *testing.T) {
	p, err := readAll(t, hx("10 03 00 04 4d"), 0)
	if err == nil || p != nil {
		t.Fatalf("Read = %#v, %v; want nil and an error", p, err)
	}
}

// trapReader fails the test when it is read, standing in for a body that
// must never be requested.
type trapReader struct{ t *testing.T }

func (r trapReader) Read([]byte) (int, error) {
	r.t.Error("the body was read")
	return 0, io.EOF
}

// TestRead_TooLarge checks that an oversized remaining length is rejected
// from the fixed header alone: the body is never read and no buffer of its
// size is allocated.
func TestRead_TooLarge(t *testing.T) {
	header := hx("30 ff ff ff 7f") // PUBLISH with remaining length 268,435,455

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		r := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(header), trapReader{t}), 16)
		_, err := Read(r, Version311, 1<<20)
		var e *Error
		if !errors.As(err, &e) || e.Code != ReasonPacketTooLarge {
			t.Fatalf("Read error %v, want ReasonPacketTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("rejecting 10 oversized packets allocated %d bytes", grew)
	}
}

// TestRead_MaxSizeBoundary checks that maxSize counts the fixed header.
func TestRead_MaxSizeBoundary(t *testing.T) {
	pkt := frame(0x30, str("t"), []byte("payload")) // 2 + 10 bytes
	for _, tc := range []struct {
		maxSize uint32
		ok      bool
	}{{12, true}, {11, false}, {0, true}} {
		_, err := Read(bufio.NewReader(bytes.NewReader(pkt)), Version311, tc.maxSize)
		if (err == nil) != tc.ok {
			t.Errorf("maxSize %d: error %v, want ok=%v", tc.maxSize, err, tc.ok)
		}
	}
}

// TestRead_EOF checks the I/O errors that pass through Read.
func TestRead_EOF(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"in-remaining-length", hx("30 80"), io.ErrUnexpectedEOF},
		{"before-body", hx("30 05"), io.ErrUnexpectedEOF},
		{"in-body", hx("30 05 00 01"), io.ErrUnexpectedEOF},
		{"in-large-body", append(hx("30 80 80 08"), make([]byte, 100000)...), io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bufio.NewReader(bytes.NewReader(tc.data)), Version311, 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			var e *Error
			if errors.As(err, &e) {
				t.Errorf("I/O error came back as *Error %v", e)
			}
		})
	}
}

// TestRead_LargeBody checks a body above bodyChunk, which is read in growing
// steps.
func TestRead_LargeBody(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 50000)
	pkt, err := (&Publish{Topic: "big", Payload: payload}).Encode(nil, Version311)
	if err != nil {
		t.Fatal(err)
	}
	p, err := readAll(t, pkt, Version311)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.(*Publish); got.Topic != "big" || !bytes.Equal(got.Payload, payload) {
		t.Errorf("decoded topic %q and %d payload bytes", got.Topic, len(got.Payload))
	}
}

// TestRead_Sequence checks that consecutive packets on one reader decode in
// order.
func TestRead_Sequence(t *testing.T) {
	var stream []byte
	stream = append(stream, connect4(0x02, str("c"))...)
	stream = append(stream, hx("c0 00")...)
	stream = append(stream, frame(0x30, str("t"), []byte("x"))...)
	stream = append(stream, hx("e0 00")...)

	r := bufio.NewReader(bytes.NewReader(stream))
	version := byte(0)
	for _, want := range []Type{TypeConnect, TypePingreq, TypePublish, TypeDisconnect} {
		p, err := Read(r, version, 0)
		if err != nil {
			t.Fatalf("reading %v: %v", want, err)
		}
		if p.Type() != want {
			t.Fatalf("got %v, want %v", p.Type(), want)
		}
		version = Version311
	}
	if _, err := Read(r, version, 0); !errors.Is(err, io.EOF) {
		t.Errorf("after the last packet: %v, want io.EOF", err)
	}
}

// TestRead_UnknownVersion checks that a caller bug is reported, not decoded.
func TestRead_UnknownVersion(t *testing.T) {
	_, err := Read(bufio.NewReader(bytes.NewReader(hx("c0 00"))), 6, 0)
	var e *Error
	if err == nil || errors.As(err, &e) {
		t.Fatalf("error %v, want a plain error", err)
	}
}

// TestRead_PayloadIsolation checks that appending to a decoded field does not
// overwrite the next field in the shared body buffer.
func TestRead_PayloadIsolation(t *testing.T) {
	data := connect4(0xC6, str("c"), str("w"), str("will"), str("user"), str("pass"))
	p, err := readAll(t, data, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := p.(*Connect)
	_ = append(c.Will.Payload, "XXXX"...)
	if c.Username != "user" || string(c.Password) != "pass" {
		t.Errorf("append to the will payload changed later fields: %q %q", c.Username, c.Password)
	}
}
