package bench

import (
	"math"
	"math/bits"
)

// The histogram keeps every value below 2^histPrecision exactly and splits
// each higher power-of-two range into 2^histPrecision equal buckets, so a
// recorded value is off by less than 1/128 (0.8%) of itself. Values of
// 2^histMaxExp ns (about 69 s) and more share the last bucket, but the exact
// maximum is kept separately.
const (
	histPrecision = 7
	histSubCount  = 1 << histPrecision
	histMaxExp    = 36
	histBuckets   = (histMaxExp-histPrecision)*histSubCount + histSubCount
)

// histogram counts latencies in nanoseconds. Recording allocates nothing, and
// the zero value is ready to use. A histogram is not safe for concurrent use:
// each subscriber owns one and the run merges them after the subscribers stop.
type histogram struct {
	counts [histBuckets]uint64
	total  uint64
	sum    float64 // nanoseconds, for the mean
	max    int64
}

// bucketIndex maps v >= 0 to its bucket. For v >= 2^histPrecision with
// highest set bit k, the bucket is (k-histPrecision) ranges up, and inside
// that range v's top histPrecision+1 bits select it.
func bucketIndex(v int64) int {
	if v < histSubCount {
		return int(v)
	}
	k := bits.Len64(uint64(v)) - 1
	if k >= histMaxExp {
		return histBuckets - 1
	}
	shift := k - histPrecision
	return shift*histSubCount + int(v>>shift)
}

// bucketUpper returns the largest value that maps to bucket i.
func bucketUpper(i int) int64 {
	if i < 2*histSubCount {
		return int64(i)
	}
	shift := i/histSubCount - 1
	mantissa := int64(i%histSubCount + histSubCount)
	return (mantissa+1)<<shift - 1
}

// record adds one latency. A negative value, which only a broken clock could
// produce, is counted as 0.
func (h *histogram) record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketIndex(v)]++
	h.total++
	h.sum += float64(v)
	if v > h.max {
		h.max = v
	}
}

// merge adds every count of o to h.
func (h *histogram) merge(o *histogram) {
	for i, n := range o.counts {
		h.counts[i] += n
	}
	h.total += o.total
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the smallest recorded value v such that at least a share
// q of all values are <= v, rounded up to its bucket's upper bound but never
// above the maximum. It returns 0 for an empty histogram.
func (h *histogram) quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	rank = min(rank, h.total)

	var seen uint64
	for i, n := range h.counts {
		seen += n
		if seen >= rank {
			if i == histBuckets-1 {
				return h.max // the last bucket has no upper bound
			}
			return min(bucketUpper(i), h.max)
		}
	}
	return h.max
}

func (h *histogram) mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}
