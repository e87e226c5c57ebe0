package cluster

import (
	"testing"
	"time"

	"github.com/starling-mqtt/starling/storage"
)

// fakeWall is a settable wall clock for hlc tests.
type fakeWall struct{ ms int64 }

func (w *fakeWall) now() time.Time { return time.UnixMilli(w.ms) }

func TestHLC_NowIsMonotonic(t *testing.T) {
	w := &fakeWall{ms: 1000}
	h := newHLC("a", 5*time.Second, w.now)
	prev := h.Now()
	for i := 0; i < 100; i++ {
		if i == 50 {
			w.ms = 900 // the wall clock steps back
		}
		if i%10 == 0 && i != 50 {
			w.ms += 1
		}
		got := h.Now()
		if got.Compare(prev) <= 0 {
			t.Fatalf("reading %d = %+v, not after %+v", i, got, prev)
		}
		prev = got
	}
}

func TestHLC_ObserveMovesPastRemote(t *testing.T) {
	w := &fakeWall{ms: 1000}
	h := newHLC("a", 5*time.Second, w.now)
	remote := storage.RetainedClock{WallMS: 3000, Logical: 4, SiteID: "b"}
	if h.Observe(remote) {
		t.Fatal("Observe clamped a reading 2 s ahead, within the 5 s skew")
	}
	got := h.Now()
	if got.WallMS != 3000 || got.Logical <= 4 {
		t.Errorf("Now after Observe = %+v, want wall 3000 and logical above 4", got)
	}
}

func TestHLC_ObserveClampsFarAhead(t *testing.T) {
	w := &fakeWall{ms: 1000}
	h := newHLC("a", 5*time.Second, w.now)
	if !h.Observe(storage.RetainedClock{WallMS: 1000 + 60_000, SiteID: "b"}) {
		t.Fatal("Observe did not report a reading 60 s ahead as clamped")
	}
	got := h.Now()
	if got.WallMS > 1000+5000 {
		t.Errorf("Now after a clamped Observe = %+v, want wall at most %d", got, 1000+5000)
	}
	if got.WallMS < 1000+5000 {
		t.Errorf("Now after a clamped Observe = %+v, want wall moved to the skew limit %d", got, 1000+5000)
	}
}

func TestHLC_ObserveOlderOnlyTicks(t *testing.T) {
	w := &fakeWall{ms: 5000}
	h := newHLC("a", 5*time.Second, w.now)
	first := h.Now()
	h.Observe(storage.RetainedClock{WallMS: 10, Logical: 99, SiteID: "b"})
	got := h.Now()
	if got.WallMS != first.WallMS || got.Compare(first) <= 0 {
		t.Errorf("Now = %+v after observing an old reading, want after %+v in the same ms", got, first)
	}
}

func TestHLC_TieBreakBySite(t *testing.T) {
	w := &fakeWall{ms: 1000}
	a := newHLC("site-a", 5*time.Second, w.now).Now()
	b := newHLC("site-b", 5*time.Second, w.now).Now()
	if a.WallMS != b.WallMS || a.Logical != b.Logical {
		t.Fatalf("readings %+v and %+v differ before the site id", a, b)
	}
	if a.Compare(b) >= 0 {
		t.Errorf("%+v.Compare(%+v) >= 0, want site-a before site-b", a, b)
	}
}

func TestHLC_LogicalOverflowAdvancesWall(t *testing.T) {
	w := &fakeWall{ms: 1000}
	h := newHLC("a", 5*time.Second, w.now)
	h.Observe(storage.RetainedClock{WallMS: 1000, Logical: ^uint32(0), SiteID: "b"})
	got := h.Now()
	if got.WallMS != 1001 {
		t.Errorf("Now = %+v after the counter ran out, want wall 1001", got)
	}
}
