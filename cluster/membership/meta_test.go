package membership

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMeta_RoundTrip(t *testing.T) {
	cases := []struct {
		name   string
		siteID string
		meta   Meta
	}{
		{"typical", "0123456789abcdef0123456789abcdef", Meta{PeerAddr: "starling-0.starling.svc:7947", MQTTAddr: "10.0.0.5:1883", BootIncarnation: 42}},
		{"empty-addresses", "s", Meta{}},
		{"max-incarnation", "site_ID-1", Meta{BootIncarnation: ^uint64(0)}},
		{"ipv6", "x", Meta{PeerAddr: "[fd00::1]:7947", MQTTAddr: "[fd00::1]:1883"}},
		{"longest", strings.Repeat("s", maxSiteIDLen), Meta{PeerAddr: strings.Repeat("p", 200), MQTTAddr: strings.Repeat("m", 200), BootIncarnation: 1 << 40}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeMeta(tc.siteID, tc.meta)
			if len(b) > memberlist.MetaMaxSize {
				t.Fatalf("encoded %d bytes, more than %d", len(b), memberlist.MetaMaxSize)
			}
			siteID, meta, err := decodeMeta(b)
			if err != nil {
				t.Fatalf("decodeMeta: %v", err)
			}
			if siteID != tc.siteID {
				t.Errorf("site id = %q, want %q", siteID, tc.siteID)
			}
			if meta != tc.meta {
				t.Errorf("meta = %+v, want %+v", meta, tc.meta)
			}
		})
	}
}

func TestMeta_DecodeNewerVersionIgnoresAppendedFields(t *testing.T) {
	b := encodeMeta("site", Meta{PeerAddr: "p:1", MQTTAddr: "m:2", BootIncarnation: 3})
	b[0] = metaVersion + 1
	b = append(b, 0x01, 0x02, 0x03)
	siteID, meta, err := decodeMeta(b)
	if err != nil {
		t.Fatalf("decodeMeta: %v", err)
	}
	if siteID != "site" || meta.PeerAddr != "p:1" || meta.MQTTAddr != "m:2" || meta.BootIncarnation != 3 {
		t.Errorf("decoded %q %+v, want the version 1 fields", siteID, meta)
	}
}

func TestMeta_DecodeRejectsInvalid(t *testing.T) {
	valid := encodeMeta("site", Meta{PeerAddr: "p:1", MQTTAddr: "m:2", BootIncarnation: 3})
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version-0", append([]byte{0}, valid[1:]...)},
		{"truncated-site-id", valid[:3]},
		{"missing-incarnation", valid[:len(valid)-1]},
		{"trailing-bytes", append(append([]byte(nil), valid...), 0)},
		{"length-past-end", []byte{1, 10, 'a'}},
		{"length-over-limit", []byte{1, 0x80, 0x02}},
		{"overlong-varint", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"empty-site-id", encodeMeta("", Meta{})},
		{"site-id-with-space", encodeMeta("a b", Meta{})},
		{"invalid-utf8", []byte{1, 1, 's', 1, 0xff, 0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeMeta(tc.b)
			if !errors.Is(err, ErrInvalidMeta) {
				t.Errorf("decodeMeta(%x) = %v, want ErrInvalidMeta", tc.b, err)
			}
		})
	}
}

// FuzzDecodeMeta checks that metadata from the network never panics the
// decoder, and that whatever decodes encodes back to a value that decodes
// to the same fields.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta("0123456789abcdef0123456789abcdef", Meta{PeerAddr: "starling-0.starling:7947", MQTTAddr: "10.0.0.5:1883", BootIncarnation: 7}))
	f.Add(encodeMeta("s", Meta{}))
	f.Add([]byte{})
	f.Add([]byte{2, 1, 's', 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		siteID, meta, err := decodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidMeta) {
				t.Fatalf("decodeMeta error %v does not wrap ErrInvalidMeta", err)
			}
			return
		}
		siteID2, meta2, err := decodeMeta(encodeMeta(siteID, meta))
		if err != nil {
			t.Fatalf("re-decoding %q %+v: %v", siteID, meta, err)
		}
		if siteID2 != siteID || meta2 != meta {
			t.Fatalf("round trip changed %q %+v into %q %+v", siteID, meta, siteID2, meta2)
		}
	})
}
