package membership

import (
	"github.com/hashicorp/memberlist"
)

// State is a member's state in this node's gossip view.
type State int

const (
	// StateAlive means the member is alive or suspect. memberlist reports no
	// event when a member becomes suspect and offers no race-free way to read
	// that state, so a suspect member counts as alive until it is declared
	// dead.
	StateAlive State = iota

	// StateGone means the member was declared dead or announced that it was
	// leaving. memberlist reports both through the same callback without
	// telling them apart, and the cluster treats them alike anyway: only a
	// leave committed in Raft removes a node.
	StateGone
)

// String returns the lowercase name used in logs.
func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateGone:
		return "gone"
	default:
		return "unknown"
	}
}

// Member is one node as gossip describes it.
type Member struct {
	// Name is the node name, unique in the cluster.
	Name string

	// SiteID is the id of the node's data directory. It is empty when the
	// node's metadata could not be decoded, for example metadata from a
	// node of an incompatible release. Such a member cannot take part in
	// Raft.
	SiteID string

	// Addr is the gossip address, IP:port.
	Addr string

	// PeerAddr is the address of the node's peer port (Raft and gRPC).
	PeerAddr string

	// MQTTAddr is the address of the node's MQTT listener.
	MQTTAddr string

	// Incarnation is the node's boot incarnation from its metadata, not
	// memberlist's internal incarnation number.
	Incarnation uint64

	// State is the member's state when the Member was made: always
	// StateAlive in Members and in join and update events.
	State State
}

// memberFromNode converts a memberlist node. memberlist changes a node's
// fields under its node lock, so n may only be read inside a delegate
// callback, which memberlist calls with that lock held, or when n is a copy.
// The error wraps ErrInvalidMeta when the metadata does not decode; the
// Member then has the name and address only. State is left to the caller,
// because memberlist does not keep Node.State up to date for its own view.
func memberFromNode(n *memberlist.Node) (Member, error) {
	m := Member{
		Name: n.Name,
		Addr: n.Address(),
	}
	siteID, meta, err := decodeMeta(n.Meta)
	if err != nil {
		return m, err
	}
	m.SiteID = siteID
	m.PeerAddr = meta.PeerAddr
	m.MQTTAddr = meta.MQTTAddr
	m.Incarnation = meta.BootIncarnation
	return m, nil
}

// EventType is the kind of change to a member.
type EventType int

const (
	// EventJoin means a member became alive: it is new, or it was dead or
	// had left.
	EventJoin EventType = iota
	// EventLeave means a member died or left (see StateGone).
	EventLeave
	// EventUpdate means a live member's metadata changed. When PrevSiteID is
	// set, the name now belongs to a different data directory.
	EventUpdate
)

// String returns the lowercase name used in logs.
func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventUpdate:
		return "update"
	default:
		return "unknown"
	}
}

// Event is one change in the gossip view.
type Event struct {
	Type   EventType
	Member Member

	// PrevSiteID is the site id that this node last saw under Member.Name,
	// set only on an EventUpdate whose site id differs from it. It means the
	// node came back with an empty data directory, so the old site id must
	// be retired (its voter slot, routes and outbox) rather than waited for.
	PrevSiteID string
}
