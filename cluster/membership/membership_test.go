package membership

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"
)

// reclaimBound is the time a restarted node may take to get its name back
// in these tests. ProfileLocal needs about 1.5 to 3 s (profile.go); the
// bound leaves room for a loaded 2-core machine running with -race.
const reclaimBound = 15 * time.Second

// joinBound is the time three local nodes may take to see each other.
const joinBound = 10 * time.Second

// startTrio starts a, b and c on 127.0.0.2, .3 and .4, with b and c joining
// through a only.
func startTrio(t *testing.T, key []byte) (a, b, c *Membership, configs [3]Config) {
	t.Helper()
	cfgA := testConfig(t, "a", "127.0.0.2")
	cfgA.GossipKey = key
	a = startNode(t, cfgA)
	seed := a.LocalNode().Addr

	cfgB := testConfig(t, "b", "127.0.0.3")
	cfgB.GossipKey = key
	cfgB.Join = []string{seed}
	b = startNode(t, cfgB)

	cfgC := testConfig(t, "c", "127.0.0.4")
	cfgC.GossipKey = key
	cfgC.Join = []string{seed}
	c = startNode(t, cfgC)

	for _, m := range []*Membership{a, b, c} {
		waitFor(t, joinBound, m.LocalNode().Name+" to see a, b and c", func() (bool, string) {
			return seesExactly(m, "a", "b", "c")
		})
	}
	return a, b, c, [3]Config{cfgA, cfgB, cfgC}
}

func TestMembership_ThreeNodesJoinFromOneSeed(t *testing.T) {
	a, b, c, cfgs := startTrio(t, testKey)

	for _, viewer := range []*Membership{a, b, c} {
		for i, want := range []*Membership{a, b, c} {
			got, ok := findMember(viewer, cfgs[i].NodeName)
			if !ok {
				t.Fatalf("%s does not list %s", viewer.LocalNode().Name, cfgs[i].NodeName)
			}
			if got != want.LocalNode() {
				t.Errorf("%s lists %+v, want %+v", viewer.LocalNode().Name, got, want.LocalNode())
			}
		}
	}

	local := b.LocalNode()
	if local.Name != "b" || local.SiteID != cfgs[1].SiteID || local.PeerAddr != cfgs[1].Meta.PeerAddr ||
		local.MQTTAddr != cfgs[1].Meta.MQTTAddr || local.Incarnation != 1 || local.State != StateAlive {
		t.Errorf("b.LocalNode() = %+v, want the fields of its config", local)
	}
	if host, _, _ := net.SplitHostPort(local.Addr); host != "127.0.0.3" {
		t.Errorf("b.LocalNode().Addr = %s, want host 127.0.0.3", local.Addr)
	}

	joined := map[string]bool{}
	for _, e := range drainEvents(a) {
		if e.Type == EventJoin {
			joined[e.Member.Name] = true
		}
	}
	for _, name := range []string{"a", "b", "c"} {
		if !joined[name] {
			t.Errorf("a emitted no join event for %s", name)
		}
	}
}

func TestMembership_GossipKeyMismatchPreventsJoin(t *testing.T) {
	otherKey := make([]byte, 32)
	copy(otherKey, testKey)
	otherKey[0] ^= 0xff

	cases := []struct {
		name string
		key  []byte
	}{
		{"different-key", otherKey},
		{"no-key", nil},
		{"shorter-key", testKey[:16]},
	}
	cfgA := testConfig(t, "a", "127.0.0.2")
	cfgA.GossipKey = testKey
	a := startNode(t, cfgA)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfgB := testConfig(t, "b-"+tc.name, "127.0.0.3")
			cfgB.GossipKey = tc.key
			cfgB.Join = []string{a.LocalNode().Addr}
			b := startNode(t, cfgB)

			// Several join attempts fit in this time with ProfileLocal.
			time.Sleep(1500 * time.Millisecond)
			if got := memberNames(b); len(got) != 1 {
				t.Errorf("b lists %v, want only itself", got)
			}
			if got := memberNames(a); len(got) != 1 {
				t.Errorf("a lists %v, want only itself", got)
			}
		})
	}
}

func TestMembership_RestartWithNewAddressReclaimsName(t *testing.T) {
	a, b, c, cfgs := startTrio(t, testKey)
	oldAddr := c.LocalNode().Addr
	drainEvents(a)

	// A crash: no leave message, so a and b must detect the failure.
	if err := c.Close(); err != nil {
		t.Fatalf("Close(c): %v", err)
	}

	// The same name with an empty disk: a new site id and a new port.
	restart := testConfig(t, "c", "127.0.0.4")
	restart.GossipKey = testKey
	restart.Join = []string{a.LocalNode().Addr}
	restart.Meta.BootIncarnation = 2
	began := time.Now()
	c2 := startNode(t, restart)
	newAddr := c2.LocalNode().Addr
	if newAddr == oldAddr {
		t.Fatalf("restarted node got the old address %s: the test needs a new port", oldAddr)
	}

	for _, viewer := range []*Membership{a, b} {
		waitFor(t, reclaimBound, viewer.LocalNode().Name+" to list c at its new address", func() (bool, string) {
			got, ok := findMember(viewer, "c")
			return ok && got.Addr == newAddr && got.SiteID == restart.SiteID, got.Addr + " " + got.SiteID
		})
	}
	elapsed := time.Since(began)
	t.Logf("name reclaimed %v after the restart (bound %v)", elapsed.Round(time.Millisecond), reclaimBound)

	waitFor(t, joinBound, "restarted c to see a, b and c", func() (bool, string) {
		return seesExactly(c2, "a", "b", "c")
	})
	if got, _ := findMember(a, "c"); got.Incarnation != 2 {
		t.Errorf("a lists c with incarnation %d, want 2", got.Incarnation)
	}

	var replaced *Event
	for _, e := range drainEvents(a) {
		if e.Type == EventUpdate && e.Member.Name == "c" && e.PrevSiteID != "" {
			replaced = &e
		}
	}
	if replaced == nil {
		t.Fatalf("a emitted no update event with PrevSiteID for c")
	}
	if replaced.PrevSiteID != cfgs[2].SiteID || replaced.Member.SiteID != restart.SiteID {
		t.Errorf("update event site ids: prev %s new %s, want prev %s new %s",
			replaced.PrevSiteID, replaced.Member.SiteID, cfgs[2].SiteID, restart.SiteID)
	}
}

func TestMembership_LeaveThenRestartReclaimsAtOnce(t *testing.T) {
	a, b, c, _ := startTrio(t, testKey)
	oldAddr := c.LocalNode().Addr

	if err := c.Leave(2 * time.Second); err != nil {
		t.Fatalf("Leave(c): %v", err)
	}
	waitFor(t, joinBound, "a to drop c after its leave", func() (bool, string) {
		return seesExactly(a, "a", "b")
	})
	if err := c.Close(); err != nil {
		t.Fatalf("Close(c): %v", err)
	}
	if err := c.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Close = %v, want ErrClosed", err)
	}

	restart := testConfig(t, "c", "127.0.0.4")
	restart.GossipKey = testKey
	restart.Join = []string{a.LocalNode().Addr}
	began := time.Now()
	c2 := startNode(t, restart)
	if c2.LocalNode().Addr == oldAddr {
		t.Fatalf("restarted node got the old address %s: the test needs a new port", oldAddr)
	}
	for _, viewer := range []*Membership{a, b} {
		waitFor(t, reclaimBound, viewer.LocalNode().Name+" to list c at its new address", func() (bool, string) {
			got, ok := findMember(viewer, "c")
			return ok && got.Addr == c2.LocalNode().Addr, got.Addr
		})
	}
	t.Logf("name reclaimed %v after a restart that followed a leave", time.Since(began).Round(time.Millisecond))
}

func TestMembership_JoinThroughDNSName(t *testing.T) {
	resolver := newFakeResolver()
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}

	// A headless service lists every pod on the same port, so the nodes
	// share one port on three addresses.
	var nodes []*Membership
	for attempt := 0; attempt < 5 && len(nodes) < len(ips); attempt++ {
		port := freePort(t, ips[0])
		nodes = startOnPort(t, resolver, ips, port)
	}
	if len(nodes) < len(ips) {
		t.Fatalf("could not start three nodes on one free port")
	}

	// The service has no ready address yet; the nodes keep resolving.
	waitFor(t, joinBound, "a few lookups of the service name", func() (bool, string) {
		n := resolver.lookups.Load()
		return n >= 6, strconv.FormatInt(n, 10)
	})
	if got := memberNames(nodes[0]); len(got) != 1 {
		t.Fatalf("a lists %v before the name resolves, want only itself", got)
	}

	resolver.set("starling-headless.test", ips...)
	for _, m := range nodes {
		waitFor(t, joinBound, m.LocalNode().Name+" to see a, b and c", func() (bool, string) {
			return seesExactly(m, "a", "b", "c")
		})
	}
}

// startOnPort starts a, b and c on ips with one port, all joining through
// the DNS name. It returns nil, after closing what it started, when a
// port was taken in the meantime.
func startOnPort(t *testing.T, resolver *fakeResolver, ips []string, port int) []*Membership {
	t.Helper()
	seed := net.JoinHostPort("starling-headless.test", strconv.Itoa(port))
	var nodes []*Membership
	for i, ip := range ips {
		cfg := testConfig(t, string(rune('a'+i)), ip)
		cfg.BindAddr = net.JoinHostPort(ip, strconv.Itoa(port))
		cfg.Join = []string{seed}
		cfg.Resolver = resolver
		m, err := Start(context.Background(), cfg)
		if err != nil {
			t.Logf("Start on %s: %v; retrying with another port", cfg.BindAddr, err)
			for _, n := range nodes {
				_ = n.Close()
			}
			return nil
		}
		nodes = append(nodes, m)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if err := n.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	return nodes
}

func TestMembership_AdvertiseHostName(t *testing.T) {
	resolver := newFakeResolver()
	resolver.set("node-a.test", "127.0.0.2")
	cfg := testConfig(t, "a", "127.0.0.2")
	cfg.AdvertiseAddr = "node-a.test"
	cfg.Resolver = resolver

	// A host name could resolve off loopback, so it needs the key.
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate without a key = %v, want ErrInvalidConfig", err)
	}
	cfg.GossipKey = testKey
	a := startNode(t, cfg)
	if host, _, _ := net.SplitHostPort(a.LocalNode().Addr); host != "127.0.0.2" {
		t.Errorf("advertised address %s, want host 127.0.0.2", a.LocalNode().Addr)
	}
}

func TestMembership_UpdateMetaReachesPeers(t *testing.T) {
	a, b, _, _ := startTrio(t, nil)
	drainEvents(a)

	meta := Meta{PeerAddr: "127.0.0.3:7001", MQTTAddr: "127.0.0.3:1884", BootIncarnation: 1}
	if err := b.UpdateMeta(meta, 2*time.Second); err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	waitFor(t, joinBound, "a to see b's new MQTT address", func() (bool, string) {
		got, _ := findMember(a, "b")
		return got.MQTTAddr == meta.MQTTAddr && got.PeerAddr == meta.PeerAddr, got.MQTTAddr
	})

	if err := b.UpdateMeta(Meta{MQTTAddr: string(make([]byte, 300))}, time.Second); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("UpdateMeta with a 300-byte address = %v, want ErrInvalidConfig", err)
	}
}

func TestMembership_CloseIsIdempotent(t *testing.T) {
	cfg := testConfig(t, "a", "127.0.0.2")
	cfg.Join = []string{"127.0.0.3:1"} // nothing listens there: the join loop keeps retrying
	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	for i := range 2 {
		if err := m.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	// The range ends only if Close closed the channel.
	for range m.Events() {
	}
	if err := m.UpdateMeta(Meta{}, time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("UpdateMeta after Close = %v, want ErrClosed", err)
	}
}

func TestStart_CancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, testConfig(t, "a", "127.0.0.2")); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestMembership_RestartReclaimsNameLANProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 10 s with the LAN timings")
	}
	const lanBound = 30 * time.Second
	cfgA := testConfig(t, "a", "127.0.0.2")
	cfgA.Profile = ProfileLAN
	a := startNode(t, cfgA)
	cfgB := testConfig(t, "b", "127.0.0.3")
	cfgB.Profile = ProfileLAN
	cfgB.Join = []string{a.LocalNode().Addr}
	b := startNode(t, cfgB)
	waitFor(t, joinBound, "a to see b", func() (bool, string) { return seesExactly(a, "a", "b") })

	oldAddr := b.LocalNode().Addr
	if err := b.Close(); err != nil {
		t.Fatalf("Close(b): %v", err)
	}
	restart := testConfig(t, "b", "127.0.0.3")
	restart.Profile = ProfileLAN
	restart.Join = cfgB.Join
	began := time.Now()
	b2 := startNode(t, restart)
	if b2.LocalNode().Addr == oldAddr {
		t.Fatalf("restarted node got the old address %s: the test needs a new port", oldAddr)
	}
	waitFor(t, lanBound, "a to list b at its new address", func() (bool, string) {
		got, ok := findMember(a, "b")
		return ok && got.Addr == b2.LocalNode().Addr, got.Addr
	})
	t.Logf("name reclaimed %v after the restart with ProfileLAN (bound %v)", time.Since(began).Round(time.Millisecond), lanBound)
}
