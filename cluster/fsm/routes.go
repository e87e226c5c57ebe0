package fsm

import (
	"errors"
	"fmt"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// Route is one route of the cluster: the node with this site id has at
// least one subscriber to the filter, in the share group if one is set.
type Route struct {
	SiteID     string
	Filter     string // MQTT topic filter, without the $share/group/ prefix
	ShareGroup string // empty for a plain subscription
	Durable    bool   // a persistent session on the node subscribes
}

// routeBatch applies a route batch of the node with the batch's site id.
// A batch is stale unless a node record holds the site id with the same
// incarnation and a state other than left: a lower incarnation is from
// before a restart, a site id with no record has been retired, and a
// higher incarnation means the node's record has not been committed yet,
// which the node must do before it sends routes.
func (a *applier) routeBatch(m *clusterpb.RouteBatch) (Status, Change, error) {
	if m.NodeSiteId == "" {
		return 0, 0, errors.New("missing node site id")
	}
	if m.ReplaceLast && !m.Replace {
		return 0, 0, errors.New("replace_last set without replace")
	}
	for i, op := range m.Ops {
		if op.Filter == "" {
			return 0, 0, fmt.Errorf("route op %d: missing filter", i+1)
		}
		if op.Kind != clusterpb.RouteOp_KIND_ADD && op.Kind != clusterpb.RouteOp_KIND_REMOVE {
			return 0, 0, fmt.Errorf("route op %d: invalid kind %d", i+1, op.Kind)
		}
	}

	name, ok := a.st.sites[m.NodeSiteId]
	if !ok {
		return StatusStale, 0, nil
	}
	n := a.st.nodes[name]
	if n.State == NodeLeft || m.Incarnation != n.Incarnation {
		return StatusStale, 0, nil
	}

	if m.Replace {
		return StatusApplied, a.stageRoutes(m), nil
	}
	changed := a.applyOps(m.NodeSiteId, m.Ops)
	if sg := a.st.staged[m.NodeSiteId]; sg != nil && sg.incarnation == m.Incarnation {
		applyOpsTo(sg.routes, m.Ops)
	}
	return StatusApplied, changed, nil
}

// stageRoutes adds a replace batch to the site's staged set, and on the
// last batch puts the staged set in place of the live one in one step, so
// that the node's old routes stay in force until then.
func (a *applier) stageRoutes(m *clusterpb.RouteBatch) Change {
	sg := a.st.staged[m.NodeSiteId]
	if sg == nil || sg.incarnation != m.Incarnation {
		sg = &stagedSet{incarnation: m.Incarnation, routes: map[routeKey]bool{}}
		a.st.staged[m.NodeSiteId] = sg
	}
	applyOpsTo(sg.routes, m.Ops)
	if !m.ReplaceLast {
		return 0
	}

	delete(a.st.staged, m.NodeSiteId)
	old := a.st.routes[m.NodeSiteId]
	if len(sg.routes) == 0 {
		delete(a.st.routes, m.NodeSiteId)
	} else {
		a.st.routes[m.NodeSiteId] = &routeSet{gen: a.gen, routes: sg.routes}
	}
	if old != nil && sameRoutes(old.routes, sg.routes) {
		return 0
	}
	if old == nil && len(sg.routes) == 0 {
		return 0
	}
	return ChangeRoutes
}

// applyOps applies route ops to the live set of a site id.
func (a *applier) applyOps(siteID string, ops []*clusterpb.RouteOp) Change {
	rs := a.writableRoutes(siteID)
	changed := applyOpsTo(rs.routes, ops)
	if len(rs.routes) == 0 {
		delete(a.st.routes, siteID)
	}
	if changed {
		return ChangeRoutes
	}
	return 0
}

// writableRoutes returns the live route set of a site id, created if
// missing and copied if a snapshot may share it.
func (a *applier) writableRoutes(siteID string) *routeSet {
	rs := a.st.routes[siteID]
	if rs == nil {
		rs = &routeSet{gen: a.gen, routes: map[routeKey]bool{}}
		a.st.routes[siteID] = rs
		return rs
	}
	if rs.gen < a.gen {
		c := &routeSet{gen: a.gen, routes: make(map[routeKey]bool, len(rs.routes))}
		for k, v := range rs.routes {
			c.routes[k] = v
		}
		rs = c
		a.st.routes[siteID] = rs
	}
	return rs
}

// applyOpsTo applies ops to a route map in order and reports whether the
// map changed. Adding an existing route sets its durable flag; removing a
// missing route does nothing.
func applyOpsTo(routes map[routeKey]bool, ops []*clusterpb.RouteOp) bool {
	changed := false
	for _, op := range ops {
		k := routeKey{filter: op.Filter, shareGroup: op.ShareGroup}
		old, had := routes[k]
		switch op.Kind {
		case clusterpb.RouteOp_KIND_ADD:
			if !had || old != op.Durable {
				routes[k] = op.Durable
				changed = true
			}
		case clusterpb.RouteOp_KIND_REMOVE:
			if had {
				delete(routes, k)
				changed = true
			}
		}
	}
	return changed
}

func sameRoutes(x, y map[routeKey]bool) bool {
	if len(x) != len(y) {
		return false
	}
	for k, v := range x {
		if w, ok := y[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// purgeRoutes removes the routes of a site id, or only its non-durable
// ones, from the live set and from a staged set in progress.
func (a *applier) purgeRoutes(m *clusterpb.PurgeRoutes) (Status, Change, error) {
	if m.SiteId == "" {
		return 0, 0, errors.New("missing site id")
	}
	return StatusApplied, a.purgeSite(m.SiteId, m.NonDurableOnly), nil
}

func (a *applier) purgeSite(siteID string, nonDurableOnly bool) Change {
	if !nonDurableOnly {
		delete(a.st.staged, siteID)
		if _, ok := a.st.routes[siteID]; !ok {
			return 0
		}
		delete(a.st.routes, siteID)
		return ChangeRoutes
	}

	if sg := a.st.staged[siteID]; sg != nil {
		dropNonDurable(sg.routes)
	}
	rs, ok := a.st.routes[siteID]
	if !ok || !hasNonDurable(rs.routes) {
		return 0
	}
	rs = a.writableRoutes(siteID)
	dropNonDurable(rs.routes)
	if len(rs.routes) == 0 {
		delete(a.st.routes, siteID)
	}
	return ChangeRoutes
}

func hasNonDurable(routes map[routeKey]bool) bool {
	for _, durable := range routes {
		if !durable {
			return true
		}
	}
	return false
}

func dropNonDurable(routes map[routeKey]bool) {
	for k, durable := range routes {
		if !durable {
			delete(routes, k)
		}
	}
}
