package bench

import (
	"math"
	"testing"
)

func TestStamp_RoundTrip(t *testing.T) {
	tests := []stamp{
		{},
		{sentAt: 1, sequence: 2, publisher: 3, runTag: 4},
		{sentAt: math.MaxInt64, sequence: math.MaxUint32, publisher: math.MaxUint32, runTag: math.MaxUint32},
	}
	for _, want := range tests {
		b := newPayload(64)
		putStamp(b, want)
		got, ok := readStamp(b)
		if !ok {
			t.Fatalf("readStamp rejected a %d-byte payload", len(b))
		}
		if got != want {
			t.Errorf("stamp %+v read back as %+v", want, got)
		}
	}
}

func TestStamp_ShortPayload(t *testing.T) {
	if _, ok := readStamp(make([]byte, HeaderSize-1)); ok {
		t.Errorf("readStamp accepted a %d-byte payload", HeaderSize-1)
	}
	if _, ok := readStamp(make([]byte, HeaderSize)); !ok {
		t.Errorf("readStamp rejected a %d-byte payload", HeaderSize)
	}
}

func TestStamp_KeepsFiller(t *testing.T) {
	b := newPayload(40)
	before := string(b[HeaderSize:])
	putStamp(b, stamp{sentAt: -1, sequence: 9})
	if string(b[HeaderSize:]) != before {
		t.Errorf("putStamp changed bytes after the header")
	}
}
