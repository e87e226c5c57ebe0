package fsm

import (
	"errors"
	"fmt"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// NodeState is the committed state of a node.
type NodeState uint8

// The node states. Their numbers are those of clusterpb.NodeState.
const (
	NodeJoined NodeState = NodeState(clusterpb.NodeState_NODE_STATE_JOINED)
	NodeDead   NodeState = NodeState(clusterpb.NodeState_NODE_STATE_DEAD)
	NodeBack   NodeState = NodeState(clusterpb.NodeState_NODE_STATE_BACK)
	NodeLeft   NodeState = NodeState(clusterpb.NodeState_NODE_STATE_LEFT)
)

func (s NodeState) String() string {
	switch s {
	case NodeJoined:
		return "joined"
	case NodeDead:
		return "dead"
	case NodeBack:
		return "back"
	case NodeLeft:
		return "left"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

func (s NodeState) valid() bool { return s >= NodeJoined && s <= NodeLeft }

// Node is the committed record of a node, keyed by its name.
type Node struct {
	Name        string
	SiteID      string // Raft server id; changes when the node returns with an empty disk
	Incarnation uint64 // boot incarnation; grows with every start of the node
	State       NodeState
	PeerAddr    string // advertised address of the peer port (Raft and gRPC)
	MQTTAddr    string // advertised MQTT address
}

func nodeFromProto(m *clusterpb.NodeRecord) Node {
	return Node{Name: m.Name, SiteID: m.SiteId, Incarnation: m.Incarnation, State: NodeState(m.State),
		PeerAddr: m.PeerAddr, MQTTAddr: m.MqttAddr}
}

func (n Node) proto() *clusterpb.NodeRecord {
	return &clusterpb.NodeRecord{Name: n.Name, SiteId: n.SiteID, Incarnation: n.Incarnation,
		State: clusterpb.NodeState(n.State), PeerAddr: n.PeerAddr, MqttAddr: n.MQTTAddr}
}

func (n Node) validate() error {
	if n.Name == "" {
		return errors.New("missing node name")
	}
	if n.SiteID == "" {
		return fmt.Errorf("node %q: missing site id", n.Name)
	}
	if !n.State.valid() {
		return fmt.Errorf("node %q: invalid state %d", n.Name, n.State)
	}
	return nil
}

// nodeRecord creates or replaces a node record. A record for the same site
// id with a lower incarnation than the committed one is stale. A new site id
// for an existing name retires the old one: its routes and staged routes go
// in the same apply, and route batches for it are stale from then on. A
// record in state left purges the node's routes, as NodeLeave does. The
// epoch rises when a record is created, or its state or site id changes.
func (a *applier) nodeRecord(m *clusterpb.NodeRecord) (Status, Change, error) {
	n := nodeFromProto(m)
	if err := n.validate(); err != nil {
		return 0, 0, err
	}
	if owner, ok := a.st.sites[n.SiteID]; ok && owner != n.Name {
		return 0, 0, fmt.Errorf("node %q: site id %q belongs to node %q", n.Name, n.SiteID, owner)
	}

	old, existed := a.st.nodes[n.Name]
	if existed && old.SiteID == n.SiteID && n.Incarnation < old.Incarnation {
		return StatusStale, 0, nil
	}
	if existed && old == n {
		return StatusApplied, 0, nil
	}

	changed := ChangeNodes
	if existed && old.SiteID != n.SiteID {
		changed |= a.purgeSite(old.SiteID, false)
		delete(a.st.sites, old.SiteID)
	}
	if sg := a.st.staged[n.SiteID]; sg != nil && sg.incarnation != n.Incarnation {
		delete(a.st.staged, n.SiteID)
	}
	if n.State == NodeLeft {
		changed |= a.purgeSite(n.SiteID, false)
	}

	a.st.nodes[n.Name] = n
	a.st.sites[n.SiteID] = n.Name
	if !existed || old.State != n.State || old.SiteID != n.SiteID {
		a.st.epoch++
		changed |= ChangeEpoch
	}
	return StatusApplied, changed, nil
}

// nodeLeave marks a node as left and purges all its routes, and with
// remove_record drops its record too. A leave of an unknown name is stale.
func (a *applier) nodeLeave(m *clusterpb.NodeLeave) (Status, Change, error) {
	if m.Name == "" {
		return 0, 0, errors.New("missing node name")
	}
	n, ok := a.st.nodes[m.Name]
	if !ok {
		return StatusStale, 0, nil
	}

	changed := a.purgeSite(n.SiteID, false)
	if m.RemoveRecord {
		delete(a.st.nodes, n.Name)
		delete(a.st.sites, n.SiteID)
		a.st.epoch++
		return StatusApplied, changed | ChangeNodes | ChangeEpoch, nil
	}
	if n.State == NodeLeft {
		return StatusApplied, changed, nil
	}
	n.State = NodeLeft
	a.st.nodes[n.Name] = n
	a.st.epoch++
	return StatusApplied, changed | ChangeNodes | ChangeEpoch, nil
}
