// Package gctune keeps the garbage collector from running many times a
// second while a broker's live heap is small.
//
// The Go collector starts a cycle when the heap has grown by GOGC percent
// (100 by default) over the live heap of the last cycle. Take a broker with
// a few megabytes of sessions and routes that moves hundreds of thousands
// of messages a second. It allocates that much in milliseconds, so it
// collects tens of times a second, and the collector took a fifth of the
// CPU in the saturating benchmarks. Floor raises the percent after
// collections so that the next one starts no earlier than at a chosen heap
// size. A large live heap keeps the base percent, so the floor costs about
// its own size in memory, and GOMEMLIMIT, when set, still bounds the heap.
package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// maxPercent caps the percent that Floor sets, so that a nearly empty heap
// right after start-up does not get an extreme value.
const maxPercent = 1000

// Floor adjusts the GC percent after collections, from its start until
// Stop. At most one Floor should run in a process, because the percent is
// process-wide.
type Floor struct {
	floor uint64 // heap goal in bytes below which no cycle starts
	base  int    // the percent before Start (GOGC), kept for large heaps

	mu      sync.Mutex
	stopped bool
	percent int // the percent set last
}

// sentinel is allocated for one GC cycle: its cleanup runs once a
// collection has found it unreachable. It is larger than the tiny
// allocator's 16-byte blocks, which could keep it alive with a neighbour.
type sentinel struct {
	_ [32]byte
}

// Start begins adjusting the GC percent so that the heap goal stays at
// least floor bytes. It returns nil, and changes nothing, when floor is 0 or
// the collector is off (GOGC=off).
func Start(floor uint64) *Floor {
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if floor == 0 || base < 0 {
		return nil
	}

	f := &Floor{floor: floor, base: base, percent: base}
	f.adjust()
	f.arm()
	return f
}

// Stop ends the adjustment and restores the percent Start found.
func (f *Floor) Stop() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	debug.SetGCPercent(f.base)
	f.percent = f.base
}

// Percent returns the GC percent that Floor set last.
func (f *Floor) Percent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.percent
}

// arm allocates a sentinel whose cleanup adjusts the percent after the next
// collection and arms the next one.
func (f *Floor) arm() {
	s := new(sentinel)
	runtime.AddCleanup(s, func(f *Floor) {
		if f.adjust() {
			f.arm()
		}
	}, f)
}

// adjust sets the percent for the live heap of the last collection. It
// returns false once the Floor is stopped.
func (f *Floor) adjust() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}

	want := PercentFor(liveHeap(), f.floor, f.base)
	if want != f.percent {
		debug.SetGCPercent(want)
		f.percent = want
	}
	return true
}

// PercentFor returns the GC percent that puts the heap goal,
// live × (1 + percent/100), at floor bytes or more: never below base, and
// at most maxPercent.
func PercentFor(live, floor uint64, base int) int {
	if live == 0 || live >= floor {
		return base
	}
	want := int(floor*100/live) - 100
	return min(max(want, base), maxPercent)
}

// liveHeap returns the heap bytes that the last collection found live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
