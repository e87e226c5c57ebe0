package cluster

import (
	"math"
	"sync"
	"time"

	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage"
)

// hlc is a hybrid logical clock (Kulkarni et al., "Logical Physical Clocks
// and Consistent Snapshots in Globally Distributed Databases", 2014): a
// reading is the larger of the wall clock and the latest reading seen, in
// milliseconds, with a counter for readings within one millisecond. Its
// readings order the retained writes of the cluster; the site id breaks
// ties. It is safe for concurrent use.
type hlc struct {
	site    string
	maxSkew time.Duration    // how far a remote reading may pull the clock ahead of the wall clock
	now     func() time.Time // the wall clock; time.Now outside tests

	mu      sync.Mutex
	wall    int64  // unix ms of the latest reading; guarded by mu
	logical uint32 // counter within wall; guarded by mu
}

func newHLC(site string, maxSkew time.Duration, now func() time.Time) *hlc {
	if now == nil {
		now = time.Now
	}
	return &hlc{site: site, maxSkew: maxSkew, now: now}
}

// Now returns a reading later than every reading it returned or observed
// before.
func (h *hlc) Now() storage.RetainedClock {
	pt := h.now().UnixMilli()
	h.mu.Lock()
	defer h.mu.Unlock()
	if pt > h.wall {
		h.wall, h.logical = pt, 0
	} else {
		h.tickLocked()
	}
	return storage.RetainedClock{WallMS: h.wall, Logical: h.logical, SiteID: h.site}
}

// Observe moves the clock past a reading of another node, so that the
// next local write orders after it. A reading more than maxSkew ahead of
// the wall clock moves the clock only to wall clock plus maxSkew; Observe
// then reports clamped. The remote write keeps its own reading: every node
// must compare the same values.
func (h *hlc) Observe(r storage.RetainedClock) (clamped bool) {
	pt := h.now().UnixMilli()
	limit := pt + h.maxSkew.Milliseconds()
	rw, rl := r.WallMS, r.Logical
	if rw > limit {
		rw, rl, clamped = limit, 0, true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case rw > h.wall && rw >= pt:
		h.wall, h.logical = rw, rl
		h.tickLocked()
	case pt > h.wall && pt > rw:
		h.wall, h.logical = pt, 0
	case rw == h.wall:
		h.logical = max(h.logical, rl)
		h.tickLocked()
	default:
		h.tickLocked()
	}
	return clamped
}

// tickLocked advances the counter, or the millisecond when the counter is
// used up.
func (h *hlc) tickLocked() {
	if h.logical == math.MaxUint32 {
		h.wall, h.logical = h.wall+1, 0
		return
	}
	h.logical++
}

// clockFromProto converts a reading from its wire form; nil is the zero
// clock.
func clockFromProto(c *clusterpb.HLC) storage.RetainedClock {
	if c == nil {
		return storage.RetainedClock{}
	}
	return storage.RetainedClock{WallMS: c.WallMs, Logical: c.Logical, SiteID: c.SiteId}
}
