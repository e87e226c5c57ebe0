package packet

import (
	"bytes"
	"testing"
)

// TestSuccessAck_EncodesLikeFullType checks that SuccessAck writes the same
// bytes as the full acknowledgement types with code 0x00, in both versions.
func TestSuccessAck_EncodesLikeFullType(t *testing.T) {
	for _, version := range []byte{Version311, Version5} {
		for _, tc := range []struct {
			full Packet
			ack  SuccessAck
		}{
			{&Puback{PacketID: 7}, SuccessAck{Kind: TypePuback, PacketID: 7}},
			{&Pubrec{PacketID: 300}, SuccessAck{Kind: TypePubrec, PacketID: 300}},
			{&Pubrel{PacketID: 65535}, SuccessAck{Kind: TypePubrel, PacketID: 65535}},
			{&Pubcomp{PacketID: 1}, SuccessAck{Kind: TypePubcomp, PacketID: 1}},
		} {
			want, err := tc.full.Encode(nil, version)
			if err != nil {
				t.Fatalf("%v v%d: full type: %v", tc.ack.Kind, version, err)
			}
			got, err := tc.ack.Encode(nil, version)
			if err != nil {
				t.Fatalf("%v v%d: SuccessAck: %v", tc.ack.Kind, version, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%v v%d: SuccessAck % x, full type % x", tc.ack.Kind, version, got, want)
			}
			if tc.ack.Type() != tc.full.Type() {
				t.Errorf("%v: Type() = %v, want %v", tc.ack.Kind, tc.ack.Type(), tc.full.Type())
			}
		}
	}
}

// TestSuccessAck_OtherTypeFails checks that a SuccessAck of a type that is
// not an acknowledgement is not encoded.
func TestSuccessAck_OtherTypeFails(t *testing.T) {
	if _, err := (SuccessAck{Kind: TypeConnack, PacketID: 1}).Encode(nil, Version311); err == nil {
		t.Fatal("SuccessAck of CONNACK encoded, want an error")
	}
}

// TestSuccessAck_NoAllocation checks that encoding a SuccessAck into a
// buffer with room allocates nothing.
func TestSuccessAck_NoAllocation(t *testing.T) {
	buf := make([]byte, 0, 16)
	a := SuccessAck{Kind: TypePuback, PacketID: 9}
	if n := testing.AllocsPerRun(100, func() { buf, _ = a.Encode(buf[:0], Version5) }); n != 0 {
		t.Errorf("Encode allocated %v times per run, want 0", n)
	}
}
