package membership

import (
	"log/slog"
	"net"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestEventQueue_DropsOldestWhenFull(t *testing.T) {
	q := newEventQueue(4, slog.New(slog.DiscardHandler))
	for i := range 10 {
		q.push(Event{Member: Member{Incarnation: uint64(i)}})
	}
	if got := q.dropped.Load(); got != 6 {
		t.Errorf("dropped = %d, want 6", got)
	}
	q.close()
	var got []uint64
	for e := range q.ch {
		got = append(got, e.Member.Incarnation)
	}
	want := []uint64{6, 7, 8, 9}
	if len(got) != len(want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("queued %v, want the newest %v", got, want)
			break
		}
	}
}

func TestEventQueue_PushAfterCloseIsIgnored(t *testing.T) {
	q := newEventQueue(1, slog.New(slog.DiscardHandler))
	q.close()
	q.close()
	q.push(Event{}) // must not panic on the closed channel
}

func testNode(name, siteID string, port uint16) *memberlist.Node {
	return &memberlist.Node{
		Name: name,
		Addr: net.ParseIP("127.0.0.9"),
		Port: port,
		Meta: encodeMeta(siteID, Meta{PeerAddr: "p:1", MQTTAddr: "m:2", BootIncarnation: 1}),
	}
}

func TestEventDelegate_NewSiteIDAfterDeath(t *testing.T) {
	q := newEventQueue(16, slog.New(slog.DiscardHandler))
	d := newEventDelegate(slog.New(slog.DiscardHandler), q)

	d.NotifyJoin(testNode("c", "old", 1000))
	d.NotifyLeave(testNode("c", "old", 1000))
	d.NotifyJoin(testNode("c", "new", 2000))
	q.close()

	var got []Event
	for e := range q.ch {
		got = append(got, e)
	}
	want := []struct {
		typ        EventType
		siteID     string
		prevSiteID string
		state      State
	}{
		{EventJoin, "old", "", StateAlive},
		{EventLeave, "old", "", StateGone},
		{EventJoin, "new", "", StateAlive},
		{EventUpdate, "new", "old", StateAlive},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		e := got[i]
		if e.Type != w.typ || e.Member.SiteID != w.siteID || e.PrevSiteID != w.prevSiteID || e.Member.State != w.state {
			t.Errorf("event %d = %s site %q prev %q state %s, want %s site %q prev %q state %s",
				i, e.Type, e.Member.SiteID, e.PrevSiteID, e.Member.State, w.typ, w.siteID, w.prevSiteID, w.state)
		}
	}
	if alive := d.alive(); len(alive) != 1 || alive[0].Addr != "127.0.0.9:2000" {
		t.Errorf("alive() = %+v, want c at its new address", alive)
	}
}

func TestEventDelegate_NewSiteIDWhileAlive(t *testing.T) {
	q := newEventQueue(16, slog.New(slog.DiscardHandler))
	d := newEventDelegate(slog.New(slog.DiscardHandler), q)

	// A quick restart on the same address: memberlist reports a metadata update.
	d.NotifyJoin(testNode("c", "old", 1000))
	d.NotifyUpdate(testNode("c", "new", 1000))
	d.NotifyUpdate(testNode("c", "new", 1000))
	q.close()

	var got []Event
	for e := range q.ch {
		got = append(got, e)
	}
	if len(got) != 3 {
		t.Fatalf("got %d events %+v, want 3", len(got), got)
	}
	if got[1].Type != EventUpdate || got[1].PrevSiteID != "old" {
		t.Errorf("second event = %+v, want an update with PrevSiteID old", got[1])
	}
	if got[2].Type != EventUpdate || got[2].PrevSiteID != "" {
		t.Errorf("third event = %+v, want a plain update", got[2])
	}
}

func TestEventDelegate_InvalidMetaKeepsLastSiteID(t *testing.T) {
	q := newEventQueue(16, slog.New(slog.DiscardHandler))
	d := newEventDelegate(slog.New(slog.DiscardHandler), q)

	d.NotifyJoin(testNode("c", "old", 1000))
	broken := testNode("c", "old", 1000)
	broken.Meta = []byte{0}
	d.NotifyUpdate(broken)
	d.NotifyUpdate(testNode("c", "new", 1000))
	q.close()

	var last Event
	for e := range q.ch {
		last = e
	}
	if last.PrevSiteID != "old" {
		t.Errorf("last event %+v, want PrevSiteID old across the invalid update", last)
	}
}
