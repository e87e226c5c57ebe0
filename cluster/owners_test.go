package cluster

import (
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// testHome returns a Cluster with only what the home record code uses, and
// node records applied to its state machine.
func testHome(t *testing.T, nodes ...*clusterpb.NodeRecord) *Cluster {
	t.Helper()
	c := &Cluster{siteID: "site-1", fsm: fsm.New(), log: slog.New(slog.DiscardHandler)}
	for i, n := range nodes {
		data, err := fsm.EncodeCommand(clusterpb.CommandType_COMMAND_TYPE_NODE_RECORD, n)
		if err != nil {
			t.Fatal(err)
		}
		if res := c.fsm.Apply(&raft.Log{Index: uint64(i + 1), Data: data}); res != nil {
			if err, ok := res.(error); ok {
				t.Fatalf("apply node record %s: %v", n.Name, err)
			}
		}
	}
	return c
}

func TestApplyRegistration_KeepsNewerClaimOfAnotherOwner(t *testing.T) {
	c := testHome(t)
	c.putHomeRecord("a", homeRecord{owner: "site-2", generation: 10, persistent: true})

	c.applyRegistration(&clusterpb.HomeRecord{ClientId: "a", Owner: "site-3", Generation: 5, Persistent: true})
	if r := c.home.records["a"]; r.owner != "site-2" || r.generation != 10 {
		t.Errorf("an older registration replaced a newer claim: %+v", r)
	}

	c.applyRegistration(&clusterpb.HomeRecord{ClientId: "a", Owner: "site-2", Generation: 10, Connected: true})
	if r := c.home.records["a"]; !r.connected || r.generation != 10 {
		t.Errorf("the owner's own registration did not refresh its record: %+v", r)
	}

	c.applyRegistration(&clusterpb.HomeRecord{ClientId: "b", Owner: "site-3", Persistent: true})
	if r, ok := c.home.records["b"]; !ok || r.owner != "site-3" {
		t.Errorf("a registration for an unknown id was not stored: %+v, %v", r, ok)
	}
}

func TestPruneHomeRecords_DropsEndedAndLeftOwners(t *testing.T) {
	c := testHome(t,
		&clusterpb.NodeRecord{Name: "n1", SiteId: "site-1", Incarnation: 1, State: clusterpb.NodeState_NODE_STATE_JOINED},
		&clusterpb.NodeRecord{Name: "n2", SiteId: "site-2", Incarnation: 1, State: clusterpb.NodeState_NODE_STATE_JOINED},
		&clusterpb.NodeRecord{Name: "n3", SiteId: "site-3", Incarnation: 1, State: clusterpb.NodeState_NODE_STATE_LEFT},
	)
	old := time.Now().Add(-2 * homePruneAge)
	c.home.records = map[string]homeRecord{
		"ended-long-ago": {owner: "site-2", touched: old},
		"ended-just-now": {owner: "site-2", touched: time.Now()},
		"persistent":     {owner: "site-2", persistent: true, touched: old},
		"connected":      {owner: "site-2", connected: true, touched: old},
		"owner-left":     {owner: "site-3", persistent: true, touched: time.Now()},
		"owner-reaped":   {owner: "site-9", persistent: true, touched: time.Now()},
	}
	c.pruneHomeRecords()

	for id, want := range map[string]bool{
		"ended-long-ago": false, "ended-just-now": true, "persistent": true,
		"connected": true, "owner-left": false, "owner-reaped": false,
	} {
		if _, ok := c.home.records[id]; ok != want {
			t.Errorf("record %q kept = %v, want %v", id, ok, want)
		}
	}
	if got := c.owned.pruned.Load(); got != 3 {
		t.Errorf("pruned counter %d, want 3", got)
	}
}

func TestPruneHomeRecords_NothingBeforeStateIsApplied(t *testing.T) {
	c := testHome(t)
	c.home.records = map[string]homeRecord{"a": {owner: "site-2", persistent: true}}
	c.pruneHomeRecords()
	if _, ok := c.home.records["a"]; !ok {
		t.Error("a record was pruned while the state machine knew no node")
	}
}
