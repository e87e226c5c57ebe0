package packet

import (
	"bufio"
	"bytes"
	"testing"
)

func TestVarInt_Boundaries(t *testing.T) {
	cases := []struct {
		value uint32
		enc   []byte
	}{
		{0, hx("00")},
		{127, hx("7f")},
		{128, hx("80 01")},
		{16383, hx("ff 7f")},
		{16384, hx("80 80 01")},
		{2097151, hx("ff ff 7f")},
		{2097152, hx("80 80 80 01")},
		{MaxRemainingLength, hx("ff ff ff 7f")},
	}
	for _, tc := range cases {
		if got := appendVarInt(nil, tc.value); !bytes.Equal(got, tc.enc) {
			t.Errorf("appendVarInt(%d) = % x, want % x", tc.value, got, tc.enc)
		}
		if n := varIntLen(tc.value); n != len(tc.enc) {
			t.Errorf("varIntLen(%d) = %d, want %d", tc.value, n, len(tc.enc))
		}
		v, n, err := decodeVarInt(tc.enc)
		if err != nil || v != tc.value || n != len(tc.enc) {
			t.Errorf("decodeVarInt(% x) = %d, %d, %v", tc.enc, v, n, err)
		}
		v, n, err = readRemainingLength(bufio.NewReader(bytes.NewReader(tc.enc)))
		if err != nil || v != tc.value || n != len(tc.enc) {
			t.Errorf("readRemainingLength(% x) = %d, %d, %v", tc.enc, v, n, err)
		}
	}
}

func TestVarInt_Reject(t *testing.T) {
	for _, enc := range [][]byte{nil, hx("80"), hx("ff ff ff"), hx("80 80 80 80 00"), hx("ff ff ff ff 7f")} {
		if _, _, err := decodeVarInt(enc); err == nil {
			t.Errorf("decodeVarInt(% x) accepted", enc)
		}
	}
}
