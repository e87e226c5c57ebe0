package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name  string
		live  uint64
		floor uint64
		base  int
		want  int
	}{
		{name: "small heap reaches the floor", live: 8 * mib, floor: 64 * mib, base: 100, want: 700},
		{name: "heap at the floor keeps base", live: 64 * mib, floor: 64 * mib, base: 100, want: 100},
		{name: "large heap keeps base", live: 1024 * mib, floor: 64 * mib, base: 100, want: 100},
		{name: "never below a higher base", live: 32 * mib, floor: 64 * mib, base: 300, want: 300},
		{name: "tiny heap is capped", live: 1 * mib, floor: 64 * mib, base: 100, want: maxPercent},
		{name: "unknown live heap keeps base", live: 0, floor: 64 * mib, base: 100, want: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PercentFor(tc.live, tc.floor, tc.base); got != tc.want {
				t.Errorf("PercentFor(%d, %d, %d) = %d, want %d", tc.live, tc.floor, tc.base, got, tc.want)
			}
		})
	}
}

// currentPercent reads the process's GC percent without changing it.
func currentPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// TestFloor_RaisesPercentAfterCollection starts a floor far above this test
// binary's live heap, runs collections and checks that the percent rose,
// then that Stop restores it.
func TestFloor_RaisesPercentAfterCollection(t *testing.T) {
	base := currentPercent()
	f := Start(1 << 30)
	if f == nil {
		t.Fatal("Start returned nil with the collector on")
	}

	deadline := time.Now().Add(5 * time.Second)
	for currentPercent() <= base && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // cleanups run on their own goroutine
	}
	if got := currentPercent(); got <= base {
		t.Fatalf("GC percent %d after collections, want above the base %d", got, base)
	}
	if got := f.Percent(); got != currentPercent() {
		t.Errorf("Percent() = %d, process percent %d", got, currentPercent())
	}

	f.Stop()
	if got := currentPercent(); got != base {
		t.Errorf("GC percent %d after Stop, want the base %d", got, base)
	}
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	if got := currentPercent(); got != base {
		t.Errorf("GC percent %d after a collection following Stop, want %d", got, base)
	}
}

func TestStart_ZeroFloorChangesNothing(t *testing.T) {
	base := currentPercent()
	if f := Start(0); f != nil {
		f.Stop()
		t.Fatal("Start(0) returned a Floor, want nil")
	}
	if got := currentPercent(); got != base {
		t.Errorf("GC percent %d, want %d", got, base)
	}
}
