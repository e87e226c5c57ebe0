package bench

import "testing"

func TestStream_Classify(t *testing.T) {
	tests := []struct {
		name string
		seqs []uint32
		want deliveryCounts
	}{
		{"in-order", []uint32{0, 1, 2, 3}, deliveryCounts{unique: 4}},
		{"gap-is-not-disorder", []uint32{0, 1, 5, 6}, deliveryCounts{unique: 4}},
		{"first-not-zero", []uint32{7, 8}, deliveryCounts{unique: 2}},
		{"duplicate-of-highest", []uint32{0, 1, 1}, deliveryCounts{unique: 2, duplicates: 1}},
		{"duplicate-of-older", []uint32{0, 1, 2, 0}, deliveryCounts{unique: 3, duplicates: 1}},
		{"late-fills-gap", []uint32{0, 2, 1}, deliveryCounts{unique: 3, outOfOrder: 1}},
		{"late-then-duplicate", []uint32{0, 2, 1, 1}, deliveryCounts{unique: 3, outOfOrder: 1, duplicates: 1}},
		{"swap-pairs", []uint32{1, 0, 3, 2}, deliveryCounts{unique: 4, outOfOrder: 2}},
		{"too-old", []uint32{0, reorderWindow + 5, 1}, deliveryCounts{unique: 3, outOfOrder: 1}},
		{"edge-of-window", []uint32{0, reorderWindow - 1, 0}, deliveryCounts{unique: 2, duplicates: 1}},
		{"jump-clears-window", []uint32{0, 3 * reorderWindow, 3*reorderWindow - 1}, deliveryCounts{unique: 3, outOfOrder: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s stream
			var got deliveryCounts
			for _, seq := range tt.seqs {
				got.add(s.record(seq))
			}
			if got != tt.want {
				t.Errorf("sequence %v: counts %+v, expected %+v", tt.seqs, got, tt.want)
			}
		})
	}
}

func TestStream_WrapsBitPositions(t *testing.T) {
	// After the window has moved by more than its size, a bit position that
	// held an old number must read as not seen for the new number.
	var s stream
	for seq := uint32(0); seq < 3*reorderWindow; seq += 2 {
		if d := s.record(seq); d != deliveryInOrder {
			t.Fatalf("seq %d classified %d, expected in order", seq, d)
		}
	}
	// Odd numbers inside the window were never delivered: late, not duplicate.
	seq := uint32(3*reorderWindow - 3)
	if d := s.record(seq); d != deliveryLate {
		t.Errorf("seq %d classified %d, expected late", seq, d)
	}
	if d := s.record(seq); d != deliveryDuplicate {
		t.Errorf("seq %d again classified %d, expected duplicate", seq, d)
	}
}

func TestStream_RecordAllocatesNothing(t *testing.T) {
	s := new(stream)
	var seq uint32
	allocs := testing.AllocsPerRun(1000, func() {
		s.record(seq)
		seq++
	})
	if allocs != 0 {
		t.Errorf("record allocated %v times per call", allocs)
	}
}
