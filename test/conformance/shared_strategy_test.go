package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node"
	"github.com/starling-mqtt/starling/node/packet"
)

// Shared subscription strategies (node.Features.SharedStrategy, YAML
// features.shared_strategy). MQTT 5.0 section 4.8.2 leaves the choice of the
// member to the server; each test checks the behaviour that makes its
// strategy what it is, on top of the rule that every message reaches exactly
// one member of the group.

// withSharedStrategy sets the node's shared subscription strategy.
func withSharedStrategy(s string) brokerOption {
	return func(c *node.Config) { c.Features.SharedStrategy = s }
}

// sharedGroup is three v5 members of one share group on one topic.
type sharedGroup struct {
	b       *broker
	topic   string
	members []*client
}

func newSharedGroup(t *testing.T, b *broker, n int) *sharedGroup {
	t.Helper()
	g := &sharedGroup{b: b, topic: b.topic("jobs")}
	for i := 0; i < n; i++ {
		m := newClient(t, b, v5, fmt.Sprintf("m%d", i))
		m.mustSubscribe("$share/g/"+g.topic, 1)
		g.members = append(g.members, m)
	}
	return g
}

// collect reads and acknowledges what each member has received until all
// are quiet, and returns payload -> index of the member that got it. It fails
// the test when a payload reaches the group twice.
func (g *sharedGroup) collect(t *testing.T, want int) map[string]int {
	t.Helper()
	got := map[string]int{}
	deadline := time.Now().Add(ioTimeout)
	for len(got) < want && time.Now().Before(deadline) {
		for i, m := range g.members {
			if m == nil {
				continue
			}
			for {
				f, ok := m.nextFrame(100 * time.Millisecond)
				if !ok {
					break
				}
				p, isPub := f.p.(*packet.Publish)
				if f.err != nil || !isPub {
					continue
				}
				m.ack(p)
				if prev, dup := got[string(p.Payload)]; dup {
					t.Fatalf("%q reached the group twice: members %d and %d", p.Payload, prev, i)
				}
				got[string(p.Payload)] = i
			}
		}
	}
	if len(got) != want {
		t.Fatalf("the group received %d distinct messages, want %d", len(got), want)
	}
	// Nothing more arrives.
	for i, m := range g.members {
		if m == nil {
			continue
		}
		if f, ok := m.nextFrame(quietPeriod / 2); ok {
			t.Fatalf("member %d received an extra packet: %s", i, describe(f.p))
		}
	}
	return got
}

func perMember(got map[string]int, n int) []int {
	counts := make([]int, n)
	for _, i := range got {
		counts[i]++
	}
	return counts
}

func TestShared_RoundRobinSpreadsEvenly(t *testing.T) {
	t.Parallel()
	b := startBroker(t, withSharedStrategy(node.SharedRoundRobin))
	g := newSharedGroup(t, b, 3)
	pub := newClient(t, b, v5, "pub")
	const n = 30
	for i := 0; i < n; i++ {
		pub.publish(g.topic, fmt.Sprint(i), 1, false)
	}
	counts := perMember(g.collect(t, n), 3)
	for i, c := range counts {
		if c != n/3 {
			t.Errorf("round robin: member %d got %d of %d, want %d (all: %v)", i, c, n, n/3, counts)
		}
	}
}

func TestShared_RandomUsesSeveralMembers(t *testing.T) {
	t.Parallel()
	b := startBroker(t, withSharedStrategy(node.SharedRandom))
	g := newSharedGroup(t, b, 3)
	pub := newClient(t, b, v5, "pub")
	// All 60 on one member of three by chance: 3 x 3^-60.
	const n = 60
	for i := 0; i < n; i++ {
		pub.publish(g.topic, fmt.Sprint(i), 1, false)
	}
	counts := perMember(g.collect(t, n), 3)
	used := 0
	for _, c := range counts {
		if c > 0 {
			used++
		}
	}
	t.Logf("random: %v", counts)
	if used < 2 {
		t.Errorf("random: every message went to one member: %v", counts)
	}
}

func TestShared_HashKeepsEachPublisherOnOneMember(t *testing.T) {
	t.Parallel()
	b := startBroker(t, withSharedStrategy(node.SharedHash))
	g := newSharedGroup(t, b, 3)
	// 16 publishers all hashed to one member of three by chance: 3^-15.
	const publishers, each = 16, 5
	for p := 0; p < publishers; p++ {
		pub := newClient(t, b, v5, fmt.Sprintf("p%d", p))
		for i := 0; i < each; i++ {
			pub.publish(g.topic, fmt.Sprintf("%d/%d", p, i), 1, false)
		}
		pub.disconnect()
	}
	got := g.collect(t, publishers*each)
	membersUsed := map[int]bool{}
	for p := 0; p < publishers; p++ {
		first := got[fmt.Sprintf("%d/0", p)]
		membersUsed[first] = true
		for i := 1; i < each; i++ {
			if m := got[fmt.Sprintf("%d/%d", p, i)]; m != first {
				t.Errorf("hash: publisher %d's messages went to members %d and %d", p, first, m)
			}
		}
	}
	t.Logf("hash: %v", perMember(got, 3))
	if len(membersUsed) < 2 {
		t.Errorf("hash: %d publishers all mapped to one member", publishers)
	}
}

func TestShared_StickyKeepsOneMemberUntilItLeaves(t *testing.T) {
	t.Parallel()
	b := startBroker(t, withSharedStrategy(node.SharedSticky))
	g := newSharedGroup(t, b, 3)
	p1 := newClient(t, b, v5, "p1")
	p2 := newClient(t, b, v5, "p2")
	const n = 20
	for i := 0; i < n; i++ {
		p1.publish(g.topic, fmt.Sprintf("a%d", i), 1, false)
		p2.publish(g.topic, fmt.Sprintf("b%d", i), 1, false)
	}
	counts := perMember(g.collect(t, 2*n), 3)
	holder := -1
	for i, c := range counts {
		if c == 2*n {
			holder = i
		}
	}
	if holder < 0 {
		t.Fatalf("sticky: messages from two publishers spread over members: %v", counts)
	}

	// The member leaves; the group sticks to another one.
	g.members[holder].disconnect()
	g.members[holder] = nil
	for i := 0; i < n; i++ {
		p1.publish(g.topic, fmt.Sprintf("c%d", i), 1, false)
	}
	counts = perMember(g.collect(t, n), 3)
	next := -1
	for i, c := range counts {
		if c == n {
			next = i
		}
	}
	if next < 0 || next == holder {
		t.Fatalf("sticky: after member %d left, messages went %v", holder, counts)
	}
}
