package fsm

import (
	"cmp"
	"slices"
)

// The read methods are safe for concurrent use with each other and with
// Apply. Each takes FSM.mu for reading and returns a copy, so a caller may
// keep or change what it gets.

// Routes returns every route, sorted by site id, filter and share group.
func (f *FSM) Routes() []Route {
	routes, _ := f.RoutesAt()
	return routes
}

// RoutesAt returns every route, sorted as Routes sorts them, and the index of
// the last log entry applied to them. The two are read together, so a caller
// that builds a view from the routes knows which entries it reflects.
func (f *FSM) RoutesAt() ([]Route, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := 0
	for _, rs := range f.mu.st.routes {
		n += len(rs.routes)
	}
	out := make([]Route, 0, n)
	for site, rs := range f.mu.st.routes {
		out = appendRoutes(out, site, rs.routes)
	}
	slices.SortFunc(out, compareRoutes)
	return out, f.mu.st.applied
}

// RoutesFor returns the routes of one site id, sorted by filter and share
// group, or nil if it has none.
func (f *FSM) RoutesFor(siteID string) []Route {
	f.mu.RLock()
	defer f.mu.RUnlock()
	rs := f.mu.st.routes[siteID]
	if rs == nil {
		return nil
	}
	out := appendRoutes(make([]Route, 0, len(rs.routes)), siteID, rs.routes)
	slices.SortFunc(out, compareRoutes)
	return out
}

func appendRoutes(out []Route, siteID string, routes map[routeKey]bool) []Route {
	for k, durable := range routes {
		out = append(out, Route{SiteID: siteID, Filter: k.filter, ShareGroup: k.shareGroup, Durable: durable})
	}
	return out
}

func compareRoutes(x, y Route) int {
	if c := cmp.Compare(x.SiteID, y.SiteID); c != 0 {
		return c
	}
	if c := cmp.Compare(x.Filter, y.Filter); c != 0 {
		return c
	}
	return cmp.Compare(x.ShareGroup, y.ShareGroup)
}

// Nodes returns every node record, sorted by name.
func (f *FSM) Nodes() []Node {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedNodes(f.mu.st.nodes)
}

func sortedNodes(nodes map[string]Node) []Node {
	out := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(x, y Node) int { return cmp.Compare(x.Name, y.Name) })
	return out
}

// Node returns the record of the node with this name.
func (f *FSM) Node(name string) (Node, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.mu.st.nodes[name]
	return n, ok
}

// Epoch returns the membership epoch: the number of committed changes of a
// node's state, starting at 0.
func (f *FSM) Epoch() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.st.epoch
}

// ClusterVersion returns the committed cluster version, 0 until the first
// SetClusterVersion.
func (f *FSM) ClusterVersion() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.st.clusterVersion
}

// AppliedIndex returns the index of the last log entry applied, or the
// applied index recorded in the last snapshot restored.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.st.applied
}

// AuthRecord returns a copy of one auth record. Use RulesName as the name
// of the AuthRules record.
func (f *FSM) AuthRecord(kind AuthKind, name string) ([]byte, bool) {
	if !kind.valid() {
		return nil, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	data, ok := f.mu.st.auth[kind][name]
	return slices.Clone(data), ok
}

// AuthRecords returns every record of one kind, sorted by name.
func (f *FSM) AuthRecords(kind AuthKind) []AuthEntry {
	if !kind.valid() {
		return nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedAuth(kind, f.mu.st.auth[kind], true)
}

func sortedAuth(kind AuthKind, records map[string][]byte, copyData bool) []AuthEntry {
	out := make([]AuthEntry, 0, len(records))
	for name, data := range records {
		if copyData {
			data = slices.Clone(data)
		}
		out = append(out, AuthEntry{Kind: kind, Name: name, Data: data})
	}
	slices.SortFunc(out, func(x, y AuthEntry) int { return cmp.Compare(x.Name, y.Name) })
	return out
}
