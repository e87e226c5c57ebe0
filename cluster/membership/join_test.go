package membership

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// fakeGossip replaces memberlist in join loop tests.
type fakeGossip struct {
	watcher *claimWatcher
	members int
	reach   bool // whether Join reaches the addresses
	held    bool // whether a reached peer still maps the name elsewhere
	joined  [][]string
}

func (g *fakeGossip) Join(addrs []string) (int, error) {
	g.joined = append(g.joined, addrs)
	if !g.reach {
		return 0, errors.New("connection refused")
	}
	if g.held {
		g.watcher.conflicts.Add(1)
	}
	return len(addrs), nil
}

func (g *fakeGossip) NumMembers() int { return g.members }

func newTestJoiner(t *testing.T, seeds []string, resolver Resolver) (*joiner, *fakeGossip) {
	t.Helper()
	watcher := &claimWatcher{name: "self"}
	g := &fakeGossip{watcher: watcher, members: 1}
	cfg := Config{Join: seeds, Resolver: resolver, BindAddr: "127.0.0.2:7000", Profile: ProfileLocal}
	self := netip.MustParseAddrPort("127.0.0.2:7000")
	return newJoiner(g, &cfg, watcher, self, slog.New(slog.DiscardHandler)), g
}

func TestJoiner_ResolveFiltersSelfAndDuplicates(t *testing.T) {
	resolver := newFakeResolver()
	resolver.set("starling.test", "127.0.0.2", "127.0.0.3", "::ffff:127.0.0.4")
	seeds := []string{"starling.test", "127.0.0.3:7000", "127.0.0.5", "missing.test:7001", "[::1]:7002"}
	j, _ := newTestJoiner(t, seeds, resolver)

	got, err := j.resolve(context.Background())
	want := []string{"127.0.0.3:7000", "127.0.0.4:7000", "127.0.0.5:7000", "[::1]:7002"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("resolve() = %v, want %v", got, want)
	}
	if err == nil {
		t.Errorf("resolve() error = nil, want the failed lookup of missing.test")
	}
}

func TestJoiner_BacksOffWhileNoPeerAnswers(t *testing.T) {
	j, g := newTestJoiner(t, []string{"127.0.0.3:7000"}, newFakeResolver())
	tm := ProfileLocal.timings()

	var waits []time.Duration
	for range 8 {
		waits = append(waits, j.step(context.Background()))
	}
	if len(g.joined) != 8 {
		t.Errorf("made %d join attempts, want 8", len(g.joined))
	}
	for i, w := range waits {
		if w < tm.joinRetryMin*4/5 || w > tm.joinRetryMax*6/5 {
			t.Errorf("wait %d = %v, outside [%v, %v] with jitter", i, w, tm.joinRetryMin, tm.joinRetryMax)
		}
	}
	if last := waits[len(waits)-1]; last < tm.joinRetryMax*4/5 {
		t.Errorf("last wait = %v, want the backoff to reach about %v", last, tm.joinRetryMax)
	}
}

func TestJoiner_RetriesQuicklyWhileNameIsHeld(t *testing.T) {
	j, g := newTestJoiner(t, []string{"127.0.0.3:7000"}, newFakeResolver())
	tm := ProfileLocal.timings()
	now := time.Unix(1000, 0)
	j.now = func() time.Time { return now }
	g.reach, g.held = true, true

	if w := j.step(context.Background()); w != tm.reclaimRetry {
		t.Errorf("wait while held = %v, want reclaimRetry %v", w, tm.reclaimRetry)
	}
	now = now.Add(tm.reclaimPatience + time.Second)
	if w := j.step(context.Background()); w == tm.reclaimRetry {
		t.Errorf("wait after reclaimPatience = %v, want the backoff", w)
	}

	g.held = false
	g.members = 3
	if w := j.step(context.Background()); w != tm.aloneCheck {
		t.Errorf("wait after joining = %v, want aloneCheck %v", w, tm.aloneCheck)
	}
	if !j.recognized {
		t.Errorf("joiner does not consider itself joined after a clean join")
	}

	// Joined and not alone: no attempt.
	attempts := len(g.joined)
	j.step(context.Background())
	if len(g.joined) != attempts {
		t.Errorf("joined again while the node had peers")
	}

	// Alone again: it joins through the seeds.
	g.members = 1
	j.step(context.Background())
	if len(g.joined) != attempts+1 {
		t.Errorf("did not join again after losing every peer")
	}
}

func TestJoiner_OnlySelfIsNoPeers(t *testing.T) {
	j, g := newTestJoiner(t, []string{"127.0.0.2:7000"}, newFakeResolver())
	outcome, _, err := j.attempt(context.Background())
	if outcome != joinNoPeers || err != nil {
		t.Errorf("attempt() = %v, %v, want joinNoPeers and no error", outcome, err)
	}
	if len(g.joined) != 0 {
		t.Errorf("joined %v, want no attempt at this node's own address", g.joined)
	}
}

func TestJoiner_ContactsAtMostMaxJoinPeers(t *testing.T) {
	resolver := newFakeResolver()
	resolver.set("big.test", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7")
	j, g := newTestJoiner(t, []string{"big.test"}, resolver)
	g.reach = true
	if outcome, n, err := j.attempt(context.Background()); outcome != joinedOK || n != maxJoinPeers || err != nil {
		t.Errorf("attempt() = %v, %d, %v, want joinedOK with %d peers", outcome, n, err, maxJoinPeers)
	}
	if len(g.joined) != maxJoinPeers {
		t.Errorf("contacted %d addresses, want %d", len(g.joined), maxJoinPeers)
	}
}

func TestClaimWatcher_NotifyMerge(t *testing.T) {
	w := &claimWatcher{name: "c"}
	self := netip.MustParseAddrPort("127.0.0.4:2000")
	w.self.Store(&self)

	mine := testNode("c", "s", 2000)
	mine.Addr = self.Addr().AsSlice()
	other := testNode("c", "s", 1000)
	left := testNode("c", "s", 1000)
	left.State = memberlist.StateLeft
	stranger := testNode("d", "s", 1000)

	cases := []struct {
		name  string
		peers []*memberlist.Node
		want  uint64
	}{
		{"same-address", []*memberlist.Node{mine}, 0},
		{"other-address", []*memberlist.Node{other}, 1},
		{"other-address-left", []*memberlist.Node{left}, 0},
		{"another-name", []*memberlist.Node{stranger}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := w.conflicts.Load()
			if err := w.NotifyMerge(tc.peers); err != nil {
				t.Fatalf("NotifyMerge cancelled the merge: %v", err)
			}
			if got := w.conflicts.Load() - before; got != tc.want {
				t.Errorf("conflicts counted = %d, want %d", got, tc.want)
			}
		})
	}
}
