package packet

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// The fuzz targets below take their seeds from the golden captures and the
// rejection table, plus the corpus under testdata/fuzz/<FuzzName>. Run one
// with, for example:
//
//	go test -fuzz='^FuzzReadV5$' -fuzztime=20s ./node/packet/

func FuzzReadV0(f *testing.F)   { fuzzRead(f, 0) }
func FuzzReadV31(f *testing.F)  { fuzzRead(f, Version31) }
func FuzzReadV311(f *testing.F) { fuzzRead(f, Version311) }
func FuzzReadV5(f *testing.F)   { fuzzRead(f, Version5) }

// fuzzRead checks that Read never panics, that a rejection is an *Error or an
// EOF, and that every accepted packet survives encode and decode unchanged.
func fuzzRead(f *testing.F, version byte) {
	for _, c := range loadCaptures(f) {
		if c.version == version {
			f.Add(c.data)
		}
	}
	for _, tc := range rejectCases {
		if tc.version == version {
			f.Add(tc.data)
		}
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		p, err := Read(r, version, 1<<16)
		checkReadInto(t, data, version, p, err)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error neither *Error nor EOF: %v", err)
			}
			if c, ok := p.(*Connect); p != nil && (!ok || c == nil) {
				t.Fatalf("packet %#v returned with error %v", p, err)
			}
			return
		}

		ev := encodeVersion(p, version)
		enc, err := p.Encode(nil, ev)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", p, err)
		}
		again, err := readAll(t, enc, version)
		if err != nil {
			t.Fatalf("re-encoded % x does not decode: %v\nfirst decode %#v", enc, err, p)
		}
		if !reflect.DeepEqual(p, again) {
			t.Fatalf("round trip changed the packet\nfirst  %#v\nsecond %#v", p, again)
		}
		enc2, err := again.Encode(nil, ev)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("second encoding differs: % x vs % x (%v)", enc, enc2, err)
		}
	})
}

// checkReadInto checks that ReadInto, given a Publish left over from another
// packet, decodes data as Read did (p, err), and returns that Publish for a
// PUBLISH.
func checkReadInto(t *testing.T, data []byte, version byte, p Packet, err error) {
	t.Helper()
	reused := &Publish{
		Topic: "left/over", Payload: []byte("old"), QoS: 2, PacketID: 9, Dup: true,
		Properties: Properties{HasTopicAlias: true, TopicAlias: 3, UserProperties: []UserProperty{{Key: "k", Value: "v"}}},
	}
	got, gotErr := ReadInto(bufio.NewReader(bytes.NewReader(data)), version, 1<<16, reused)
	if (err == nil) != (gotErr == nil) {
		t.Fatalf("Read error %v, ReadInto error %v", err, gotErr)
	}
	if err != nil {
		return
	}
	if !reflect.DeepEqual(p, got) {
		t.Fatalf("ReadInto decoded another packet\nRead     %#v\nReadInto %#v", p, got)
	}
	if pub, ok := got.(*Publish); ok && pub != reused {
		t.Fatal("ReadInto returned a new Publish instead of the one given")
	}
}

// FuzzDecodePublishProperties checks the helper the node uses for stored
// publish properties: no panic, and a stable round trip.
func FuzzDecodePublishProperties(f *testing.F) {
	f.Add([]byte{0})
	for _, name := range []string{"v5-publish-qos1-all-properties", "v5-publish-alias-only"} {
		p := golden[name].(*Publish).Properties
		f.Add(AppendPublishProperties(nil, &p))
	}
	f.Add(hx("06 23 00 01 23 00 02"))
	f.Add(hx("08 0b 80 01 0b ff ff ff 7f"))

	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePublishProperties(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error is not *Error: %v", err)
			}
			return
		}
		enc := AppendPublishProperties(nil, &p)
		again, err := DecodePublishProperties(enc)
		if err != nil {
			t.Fatalf("re-encoded % x does not decode: %v", enc, err)
		}
		if !reflect.DeepEqual(p, again) {
			t.Fatalf("round trip changed the properties\nfirst  %#v\nsecond %#v", p, again)
		}
	})
}

// FuzzVarInt checks that the two variable byte integer decoders agree and
// that a decoded value encodes minimally to a form that decodes to it.
func FuzzVarInt(f *testing.F) {
	for _, seed := range []string{"00", "7f", "80 01", "ff 7f", "80 80 01", "ff ff ff 7f", "80 00", "ff ff ff ff 01", "80"} {
		f.Add(hx(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		v, n, err := decodeVarInt(data)
		rv, rn, rerr := readRemainingLength(bufio.NewReader(bytes.NewReader(data)))
		if (err == nil) != (rerr == nil) || (err == nil && (v != rv || n != rn)) {
			t.Fatalf("decoders disagree on % x: %d,%d,%v vs %d,%d,%v", data, v, n, err, rv, rn, rerr)
		}
		if err != nil {
			return
		}
		if n < 1 || n > maxVarIntLen || v > MaxRemainingLength {
			t.Fatalf("decodeVarInt(% x) = %d using %d bytes", data, v, n)
		}

		enc := appendVarInt(nil, v)
		if len(enc) != varIntLen(v) || len(enc) > n {
			t.Fatalf("encoding of %d is % x, longer than the input or varIntLen", v, enc)
		}
		back, m, err := decodeVarInt(enc)
		if err != nil || back != v || m != len(enc) {
			t.Fatalf("decodeVarInt(% x) = %d, %d, %v; want %d", enc, back, m, err, v)
		}
		var put [maxVarIntLen]byte
		if k := putVarInt(put[:], v); !bytes.Equal(put[:k], enc) {
			t.Fatalf("putVarInt(%d) = % x, appendVarInt % x", v, put[:k], enc)
		}
	})
}
