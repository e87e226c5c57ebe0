package packet

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestReasonCode_V3ConnackCode(t *testing.T) {
	cases := []struct {
		code ReasonCode
		want byte
	}{
		{ReasonSuccess, 0},
		{ReasonUnsupportedProtocolVersion, 1},
		{ReasonClientIDNotValid, 2},
		{ReasonServerUnavailable, 3},
		{ReasonServerBusy, 3},
		{ReasonServerShuttingDown, 3},
		{ReasonUseAnotherServer, 3},
		{ReasonServerMoved, 3},
		{ReasonConnectionRateExceeded, 3},
		{ReasonBadUsernameOrPassword, 4},
		{ReasonNotAuthorized, 5},
		{ReasonBanned, 5},
		{ReasonBadAuthenticationMethod, 5},
		{ReasonUnspecifiedError, 3},
		{ReasonMalformedPacket, 3},
		{ReasonQuotaExceeded, 3},
	}
	for _, tc := range cases {
		if got := tc.code.V3ConnackCode(); got != tc.want {
			t.Errorf("0x%02X.V3ConnackCode() = %d, want %d", byte(tc.code), got, tc.want)
		}
	}

	// Every 3.1.1 return code decodes to a reason code that maps back to it.
	for code := range byte(6) {
		rc, ok := reasonFromV3Connack(code)
		if !ok || rc.V3ConnackCode() != code {
			t.Errorf("return code %d decodes to 0x%02X, %v", code, byte(rc), ok)
		}
	}
}

func TestSuback_EncodeV3Codes(t *testing.T) {
	s := &Suback{PacketID: 1, ReasonCodes: []ReasonCode{
		ReasonSuccess, ReasonGrantedQoS1, ReasonGrantedQoS2, ReasonNotAuthorized,
		ReasonQuotaExceeded, ReasonWildcardSubsNotSupported, ReasonCode(0x03),
	}}
	got, err := s.Encode(nil, Version311)
	if err != nil {
		t.Fatal(err)
	}
	if want := hx("90 09 00 01 00 01 02 80 80 80 80"); !bytes.Equal(got, want) {
		t.Errorf("encoded % x, want % x", got, want)
	}
}

// TestEncode_V3DropsProperties checks that 3.1 and 3.1.1 packets carry no
// reason codes or properties, whatever the struct holds.
func TestEncode_V3DropsProperties(t *testing.T) {
	props := Properties{ReasonString: "r", UserProperties: []UserProperty{{"k", "v"}}, TopicAlias: 4, HasTopicAlias: true}
	cases := []struct {
		name string
		p    Packet
		want []byte
	}{
		{"publish", &Publish{Topic: "t", Properties: props, Payload: []byte("x")}, hx("30 04 00 01 74 78")},
		{"puback", &Puback{PacketID: 1, ReasonCode: ReasonQuotaExceeded, Properties: props}, hx("40 02 00 01")},
		{"pubrel", &Pubrel{PacketID: 1, ReasonCode: ReasonPacketIDNotFound}, hx("62 02 00 01")},
		{"unsuback", &Unsuback{PacketID: 1, ReasonCodes: []ReasonCode{ReasonSuccess}, Properties: props}, hx("b0 02 00 01")},
		{"disconnect", &Disconnect{ReasonCode: ReasonServerShuttingDown, Properties: props}, hx("e0 00")},
		{"connack", &Connack{SessionPresent: true, Properties: props}, hx("20 02 01 00")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.Encode(nil, Version311)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("encoded % x, want % x", got, tc.want)
			}
		})
	}
}

// TestEncode_DropsDisallowedProperties checks that a property the packet type
// does not allow is left out rather than written.
func TestEncode_DropsDisallowedProperties(t *testing.T) {
	p := &Puback{PacketID: 1, Properties: Properties{
		SessionExpiry: 10, HasSessionExpiry: true, TopicAlias: 1, HasTopicAlias: true,
		ContentType: "x", SubscriptionIDs: []uint32{1},
	}}
	got, err := p.Encode(nil, Version5)
	if err != nil {
		t.Fatal(err)
	}
	if want := hx("40 02 00 01"); !bytes.Equal(got, want) {
		t.Errorf("encoded % x, want the short form % x", got, want)
	}
}

func TestConnect_EncodeVersion(t *testing.T) {
	c := &Connect{ProtocolName: "ignored", ProtocolVersion: Version5, ClientID: "c"}
	for _, tc := range []struct {
		version byte
		want    []byte
	}{
		{0, frame(0x10, str("MQTT"), []byte{5, 0, 0, 0, 0}, str("c"))},
		{Version311, frame(0x10, str("MQTT"), []byte{4, 0, 0, 0}, str("c"))},
		{Version31, frame(0x10, str("MQIsdp"), []byte{3, 0, 0, 0}, str("c"))},
	} {
		got, err := c.Encode(nil, tc.version)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("version %d: encoded % x, want % x", tc.version, got, tc.want)
		}
	}
}

func TestEncode_Errors(t *testing.T) {
	long := strings.Repeat("a", 65536)
	cases := []struct {
		name    string
		p       Packet
		version byte
	}{
		{"unknown-version", &Pingreq{}, 6},
		{"version-0", &Puback{PacketID: 1}, 0},
		{"auth-in-311", &Auth{}, Version311},
		{"publish-qos3", &Publish{Topic: "t", QoS: 3, PacketID: 1}, Version311},
		{"publish-long-topic", &Publish{Topic: long}, Version311},
		{"publish-long-content-type", &Publish{Topic: "t", Properties: Properties{ContentType: long}}, Version5},
		{"publish-long-user-property", &Publish{Topic: "t", Properties: Properties{UserProperties: []UserProperty{{long, "v"}}}}, Version5},
		{"publish-subscription-id-0", &Publish{Topic: "t", Properties: Properties{SubscriptionIDs: []uint32{0}}}, Version5},
		{"publish-subscription-id-too-big", &Publish{Topic: "t", Properties: Properties{SubscriptionIDs: []uint32{MaxRemainingLength + 1}}}, Version5},
		{"connect-long-client-id", &Connect{ClientID: long}, Version311},
		{"connect-long-password", &Connect{ClientID: "c", UsernameFlag: true, PasswordFlag: true, Password: []byte(long)}, Version311},
		{"connect-will-qos3", &Connect{ClientID: "c", Will: &Will{Topic: "w", QoS: 3}}, Version311},
		{"subscribe-qos3", &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 3}}}, Version5},
		{"subscribe-retain-handling-3", &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", RetainHandling: 3}}}, Version5},
		{"unsubscribe-long-filter", &Unsubscribe{PacketID: 1, Filters: []string{long}}, Version5},
		{"disconnect-long-reason", &Disconnect{Properties: Properties{ReasonString: long}}, Version5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := tc.p.Encode(dst, tc.version)
			if !errors.Is(err, ErrNotEncodable) {
				t.Fatalf("error %v, want ErrNotEncodable", err)
			}
			if string(got) != "keep" {
				t.Errorf("dst after a failed Encode is %q, want it unchanged", got)
			}
		})
	}
}

// TestEncoder_RemainingLengthLimit checks the limit without allocating a
// 256 MiB payload: the payload length is passed as the extra count.
func TestEncoder_RemainingLengthLimit(t *testing.T) {
	e := newEncoder(nil)
	mark := e.header(TypePublish, 0)
	e.string("topic name", "t")
	if !e.fillLength(mark, MaxRemainingLength-3) {
		t.Error("remaining length of exactly MaxRemainingLength rejected")
	}
	if want := hx("30 ff ff ff 7f 00 01 74"); !bytes.Equal(e.buf, want) {
		t.Errorf("header % x, want % x", e.buf, want)
	}

	e = newEncoder(nil)
	mark = e.header(TypePublish, 0)
	e.string("topic name", "t")
	if e.fillLength(mark, MaxRemainingLength-2) {
		t.Error("remaining length of MaxRemainingLength+1 accepted")
	}
}

// TestEncode_NoAllocs checks that encoding into a buffer with room does not
// allocate.
func TestEncode_NoAllocs(t *testing.T) {
	packets := []struct {
		p       Packet
		version byte
	}{
		{&Publish{Topic: "a/b/c", QoS: 1, PacketID: 7, Payload: make([]byte, 64)}, Version311},
		{benchPublish5(), Version5},
		{&Puback{PacketID: 1}, Version5},
		{&Suback{PacketID: 1, ReasonCodes: []ReasonCode{0, 1}}, Version311},
		{benchConnect(), Version5},
	}
	buf := make([]byte, 0, 4096)
	for _, tc := range packets {
		allocs := testing.AllocsPerRun(100, func() {
			var err error
			if buf, err = tc.p.Encode(buf[:0], tc.version); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%v: %.0f allocations per Encode, want 0", tc.p.Type(), allocs)
		}
	}
}

func TestPublishProperties_RoundTrip(t *testing.T) {
	p := golden["v5-publish-qos1-all-properties"].(*Publish).Properties
	block := AppendPublishProperties([]byte("prefix"), &p)
	if !bytes.HasPrefix(block, []byte("prefix")) {
		t.Fatalf("prefix lost: % x", block)
	}
	got, err := DecodePublishProperties(block[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("decoded %#v, want %#v", got, p)
	}

	// The block is the one inside the encoded PUBLISH.
	pkt, err := (&Publish{Topic: "t", Properties: p}).Encode(nil, Version5)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(pkt, block[len("prefix"):]) {
		t.Errorf("PUBLISH % x does not contain the block", pkt)
	}
}

func TestPublishProperties_Empty(t *testing.T) {
	if got := AppendPublishProperties(nil, &Properties{}); !bytes.Equal(got, []byte{0}) {
		t.Errorf("empty block % x, want 00", got)
	}
	p, err := DecodePublishProperties([]byte{0})
	if err != nil || !reflect.DeepEqual(p, Properties{}) {
		t.Errorf("DecodePublishProperties(00) = %#v, %v", p, err)
	}
}

// TestPublishProperties_OnlyPublish checks that properties a PUBLISH cannot
// carry are left out of the block and rejected when decoding one.
func TestPublishProperties_OnlyPublish(t *testing.T) {
	p := Properties{SessionExpiry: 5, HasSessionExpiry: true, ReasonString: "r", ContentType: "c"}
	if got, want := AppendPublishProperties(nil, &p), hx("04 03 00 01 63"); !bytes.Equal(got, want) {
		t.Errorf("block % x, want % x", got, want)
	}
	_, err := DecodePublishProperties(hx("05 11 00 00 00 05"))
	var e *Error
	if !errors.As(err, &e) || e.Code != ReasonMalformedPacket {
		t.Errorf("session expiry in a PUBLISH block: %v, want ReasonMalformedPacket", err)
	}
}

func TestPublishProperties_SkipsUnencodable(t *testing.T) {
	p := Properties{ContentType: strings.Repeat("x", 65536), ResponseTopic: "r"}
	got := AppendPublishProperties(nil, &p)
	if want := hx("04 08 00 01 72"); !bytes.Equal(got, want) {
		t.Errorf("block % x, want only the response topic % x", got, want)
	}
}

func TestDecodePublishProperties_Reject(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		want ReasonCode
	}{
		{"empty-input", nil, ReasonMalformedPacket},
		{"trailing-byte", hx("00 00"), ReasonMalformedPacket},
		{"length-exceeds-input", hx("03 01 01"), ReasonMalformedPacket},
		{"duplicate-topic-alias", hx("06 23 00 01 23 00 02"), ReasonProtocolError},
		{"topic-alias-0", hx("03 23 00 00"), ReasonProtocolError},
		{"invalid-utf8", hx("04 03 00 01 ff"), ReasonMalformedPacket},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodePublishProperties(tc.data)
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.want {
				t.Fatalf("error %v, want reason 0x%02X", err, byte(tc.want))
			}
		})
	}
}

func TestValidUTF8(t *testing.T) {
	cases := []struct {
		name string
		s    string
		ok   bool
	}{
		{"empty", "", true},
		{"ascii", "a/b/c", true},
		{"control-characters", "\x01\x1f\x7f", true},
		{"c1-control", "\u0080\u009f", true},
		{"noncharacter", "\uffff\ufdd0", true},
		{"supplementary", "\U0001F600", true},
		{"u0000", "a\x00b", false},
		{"surrogate-high", "\xed\xa0\x80", false},
		{"surrogate-low", "\xed\xbf\xbf", false},
		{"overlong", "\xc0\xaf", false},
		{"truncated", "\xe2\x82", false},
		{"invalid-byte", "\xff", false},
		{"above-u10ffff", "\xf4\x90\x80\x80", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidUTF8(tc.s)
			if tc.ok {
				if err != nil {
					t.Errorf("ValidUTF8(%q) = %v, want nil", tc.s, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != ReasonMalformedPacket {
				t.Errorf("ValidUTF8(%q) = %v, want ReasonMalformedPacket", tc.s, err)
			}
		})
	}
}

func TestType_String(t *testing.T) {
	if got := TypePubrel.String(); got != "PUBREL" {
		t.Errorf("TypePubrel.String() = %q", got)
	}
	if got := Type(16).String(); got != "Type(16)" {
		t.Errorf("Type(16).String() = %q", got)
	}
}
