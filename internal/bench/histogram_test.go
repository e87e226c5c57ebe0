package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistogram_SmallValuesExact(t *testing.T) {
	var h histogram
	for v := int64(1); v <= 100; v++ {
		h.record(v)
	}
	tests := []struct {
		q    float64
		want int64
	}{
		{0, 1},
		{0.01, 1},
		{0.5, 50},
		{0.99, 99},
		{0.999, 100},
		{1, 100},
	}
	for _, tt := range tests {
		if got := h.quantile(tt.q); got != tt.want {
			t.Errorf("quantile(%v) = %d, expected %d", tt.q, got, tt.want)
		}
	}
	if h.max != 100 {
		t.Errorf("max %d, expected 100", h.max)
	}
	if m := h.mean(); m != 50.5 {
		t.Errorf("mean %v, expected 50.5", m)
	}
}

func TestHistogram_RelativeError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram
	values := make([]int64, 100000)
	for i := range values {
		// Log-uniform from 1 µs to 1 s.
		v := int64(1e3 * math.Pow(10, rng.Float64()*6))
		values[i] = v
		h.record(v)
	}
	slices.Sort(values)

	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := values[int(q*float64(len(values)))-1]
		got := h.quantile(q)
		if got < exact {
			t.Errorf("quantile(%v) = %d, below the exact %d", q, got, exact)
		}
		if float64(got-exact) > float64(exact)/histSubCount {
			t.Errorf("quantile(%v) = %d, more than 1/%d above the exact %d", q, got, histSubCount, exact)
		}
	}
}

func TestHistogram_BucketBounds(t *testing.T) {
	// Every value maps to a bucket whose upper bound is >= the value and
	// within 1/histSubCount of it, and buckets are ordered.
	values := []int64{0, 1, 127, 128, 255, 256, 257, 1000, 1 << 20, 1<<30 + 12345, 1<<36 - 1}
	for _, v := range values {
		i := bucketIndex(v)
		upper := bucketUpper(i)
		if upper < v {
			t.Errorf("value %d: bucket %d upper bound %d is below it", v, i, upper)
		}
		if float64(upper-v) > float64(v)/histSubCount {
			t.Errorf("value %d: bucket %d upper bound %d is too far above it", v, i, upper)
		}
		if i > 0 && bucketUpper(i-1) >= v {
			t.Errorf("value %d: previous bucket %d already reaches %d", v, i-1, bucketUpper(i-1))
		}
	}
}

func TestHistogram_HugeValueKeepsMax(t *testing.T) {
	var h histogram
	h.record(1 << 40)
	if i := bucketIndex(1 << 40); i != histBuckets-1 {
		t.Errorf("2^40 ns in bucket %d, expected the last one (%d)", i, histBuckets-1)
	}
	if got := h.quantile(1); got != 1<<40 {
		t.Errorf("quantile(1) = %d, expected the exact max %d", got, int64(1<<40))
	}
}

func TestHistogram_NegativeCountsAsZero(t *testing.T) {
	var h histogram
	h.record(-5)
	if h.counts[0] != 1 || h.max != 0 {
		t.Errorf("negative value recorded in bucket counts %v / max %d, expected bucket 0", h.counts[:2], h.max)
	}
}

func TestHistogram_Merge(t *testing.T) {
	var a, b histogram
	for v := int64(1); v <= 50; v++ {
		a.record(v)
	}
	for v := int64(51); v <= 100; v++ {
		b.record(v)
	}
	a.merge(&b)
	if a.total != 100 {
		t.Errorf("total %d, expected 100", a.total)
	}
	if got := a.quantile(0.5); got != 50 {
		t.Errorf("median %d, expected 50", got)
	}
	if a.max != 100 {
		t.Errorf("max %d, expected 100", a.max)
	}
}

func TestHistogram_Empty(t *testing.T) {
	var h histogram
	if got := h.quantile(0.99); got != 0 {
		t.Errorf("quantile of an empty histogram = %d, expected 0", got)
	}
	if got := h.mean(); got != 0 {
		t.Errorf("mean of an empty histogram = %v, expected 0", got)
	}
}

func TestHistogram_RecordAllocatesNothing(t *testing.T) {
	h := new(histogram)
	allocs := testing.AllocsPerRun(1000, func() { h.record(123456) })
	if allocs != 0 {
		t.Errorf("record allocated %v times per call", allocs)
	}
}
