package membership

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// metaDelegate gives memberlist this node's encoded metadata. The other
// memberlist.Delegate methods are unused: membership sends no user messages
// and no user state.
type metaDelegate struct {
	mu   sync.Mutex
	meta []byte // encoded metadata, at most memberlist.MetaMaxSize bytes; guarded by mu
}

var _ memberlist.Delegate = (*metaDelegate)(nil)

func (d *metaDelegate) set(meta []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.meta = meta
}

// NodeMeta implements memberlist.Delegate. Config.Validate and UpdateMeta
// keep the metadata within limit, so the limit is never hit.
func (d *metaDelegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return nil
	}
	return append([]byte(nil), d.meta...)
}

// NotifyMsg implements memberlist.Delegate.
func (d *metaDelegate) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate.
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate.
func (d *metaDelegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool) {}

// claimWatcher counts signs that some node still maps this node's name to
// another address, which means the name has not been reclaimed yet after a
// restart with a new address. The join loop keeps joining while the count
// grows.
//
// Two memberlist callbacks feed it. NotifyMerge runs on both ends of every
// join with the other end's full node list. A list that has this name at
// another address, in any state but left, means that the other end rejects
// this node's alive message. (A join from a third node whose
// list is stale also counts, which costs only one extra join.) NotifyConflict
// runs when this node receives an alive message for its own name from
// another address.
type claimWatcher struct {
	name      string
	self      atomic.Pointer[netip.AddrPort] // advertised address; nil until Start has read it
	conflicts atomic.Uint64
}

var (
	_ memberlist.MergeDelegate    = (*claimWatcher)(nil)
	_ memberlist.ConflictDelegate = (*claimWatcher)(nil)
)

// NotifyMerge implements memberlist.MergeDelegate. It never cancels a merge.
func (w *claimWatcher) NotifyMerge(peers []*memberlist.Node) error {
	self := w.self.Load()
	if self == nil {
		return nil
	}
	for _, p := range peers {
		if p.Name != w.name || p.State == memberlist.StateLeft {
			continue
		}
		if nodeAddrPort(p) != *self {
			w.conflicts.Add(1)
		}
	}
	return nil
}

// NotifyConflict implements memberlist.ConflictDelegate.
func (w *claimWatcher) NotifyConflict(existing, other *memberlist.Node) {
	if existing.Name == w.name {
		w.conflicts.Add(1)
	}
}

// nodeAddrPort returns n's gossip address; IPv4 addresses are unmapped so
// that 4-byte and 16-byte forms compare equal.
func nodeAddrPort(n *memberlist.Node) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(n.Addr)
	return netip.AddrPortFrom(ip.Unmap(), n.Port)
}
