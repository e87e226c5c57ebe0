package fsm

// state is everything the FSM replicates. It is guarded by FSM.mu.
type state struct {
	nodes  map[string]Node                  // by node name
	sites  map[string]string                // site id -> node name, for every record in nodes
	routes map[string]*routeSet             // by site id; no empty sets
	staged map[string]*stagedSet            // replacement route sets in progress, by site id
	auth   [authKindCount]map[string][]byte // by kind, then name; values are never changed in place

	epoch          uint64 // membership epoch
	clusterVersion uint64
	applied        uint64 // index of the last log entry applied
}

func newState() state {
	st := state{
		nodes:  map[string]Node{},
		sites:  map[string]string{},
		routes: map[string]*routeSet{},
		staged: map[string]*stagedSet{},
	}
	for k := range st.auth {
		st.auth[k] = map[string][]byte{}
	}
	return st
}

// routeKey identifies a route within the set of one site id.
type routeKey struct {
	filter     string
	shareGroup string // empty for a plain subscription
}

// routeSet is the routes of one site id, the value being the durable flag.
type routeSet struct {
	// gen is the FSM's snapshot generation when the set was created or last
	// copied. A set whose gen is below FSM.mu.gen may be read by a snapshot
	// in Persist and must be copied before it changes.
	gen    uint64
	routes map[routeKey]bool
}

// stagedSet is a replacement route set of one site id, filled by route
// batches with replace set until the one with replace_last.
type stagedSet struct {
	incarnation uint64
	routes      map[routeKey]bool
}

func (s *stagedSet) clone() *stagedSet {
	c := &stagedSet{incarnation: s.incarnation, routes: make(map[routeKey]bool, len(s.routes))}
	for k, v := range s.routes {
		c.routes[k] = v
	}
	return c
}
