package auth

import (
	"cmp"
	"slices"
	"sync/atomic"

	"github.com/starling-mqtt/starling/router"
)

// Policy is the bound rule list of one connection. It is safe for
// concurrent use, so the connection's reader and the will publisher may
// share it.
type Policy struct {
	a                  *Authorizer
	clientID, username string
	method             Method
	roles, groups      []string
	userRules          []*compiledRule

	bound atomic.Pointer[boundPolicy]
}

// boundPolicy is the rule list for one snapshot generation.
type boundPolicy struct {
	generation uint64
	rules      []*boundRule // sorted by priority, highest first
}

// rules returns the bound rules for the current snapshot, rebinding after a
// Reload. Two goroutines may rebind at once; both results are equal.
func (p *Policy) rules() []*boundRule {
	snap := p.a.snap.Load()
	b := p.bound.Load()
	if b.generation != snap.generation {
		b = p.rebind(snap)
	}
	return b.rules
}

// rebind binds the user's rules, the snapshot's role rules and the global
// rules whose subject names this connection, in the order Authorizer.Policy
// documents.
func (p *Policy) rebind(snap *aclSnapshot) *boundPolicy {
	b := &boundPolicy{generation: snap.generation}
	addRule := func(c *compiledRule) {
		if r := c.bind(p.clientID, p.username); r != nil {
			b.rules = append(b.rules, r)
		}
	}
	add := func(rules []*compiledRule) {
		for _, c := range rules {
			addRule(c)
		}
	}
	reached := make(map[string]bool, len(p.roles))
	addRole := func(name string) {
		if !reached[name] {
			reached[name] = true
			add(snap.roles[name])
		}
	}

	add(p.userRules)
	for _, role := range p.roles {
		addRole(role)
	}
	for _, group := range p.groups {
		for _, role := range snap.groups[group] {
			addRole(role)
		}
	}

	scope := subjectScope{clientID: p.clientID, username: p.username, method: p.method, groups: p.groups, roles: reached}
	for _, g := range snap.global {
		if g.appliesTo(&scope) {
			addRule(g.rule)
		}
	}

	sortByPriority(b.rules)
	p.bound.Store(b)
	return b
}

// sortByPriority sorts rules by priority, highest first, keeping the order
// of rules with equal priority.
func sortByPriority(rules []*boundRule) {
	byPriority := func(x, y *boundRule) int { return cmp.Compare(y.priority, x.priority) }
	if !slices.IsSortedFunc(rules, byPriority) {
		slices.SortStableFunc(rules, byPriority)
	}
}

// CanPublishMsg reports whether the connection may publish a message to
// topic at QoS qos with the retain flag retain. The rules are walked in
// priority order, and the first publish rule that matches decides: its
// pattern matches the topic, qos is at most its MaxQoS and retain equals its
// Retain, where set. With no match the configured default decides. An
// invalid topic name or a QoS above 2 is denied.
//
// The node calls it for every PUBLISH and for a will, with the will's QoS
// and retain flag, at CONNECT and again when it publishes the will.
func (p *Policy) CanPublishMsg(topic string, qos byte, retain bool) bool {
	return p.publishAllowed(topic, publishBit(qos, retain))
}

// CanPublish reports whether the connection may publish to topic at every
// QoS and with the retain flag both clear and set, so it is true only when
// CanPublishMsg would allow all six. When no rule sets MaxQoS or Retain,
// the first matching rule decides, as before those fields existed. A caller
// with the QoS and retain flag at hand should call CanPublishMsg, because a
// rule with MaxQoS or Retain makes CanPublish deny requests that
// CanPublishMsg allows. CanPublish never allows more.
func (p *Policy) CanPublish(topic string) bool {
	return p.publishAllowed(topic, allPublishes)
}

// CanPublishWill reports whether the connection may have a will message on
// topic, with CanPublish's meaning for QoS and retain. A will is a publish by
// the client, so a node should call CanPublishMsg with the will's QoS and
// retain flag instead. The node checks a will at CONNECT, rejecting
// the connection with 0x87 Not authorized (3.1.1 return code 5), and again
// before it publishes the will, because the rules may have changed in
// between.
func (p *Policy) CanPublishWill(topic string) bool {
	return p.CanPublish(topic)
}

// publishAllowed walks the rules for the publish requests in want, a set of
// publishBit values, and reports whether all of them are allowed. A rule
// decides the requests it applies to that no earlier rule decided: a deny
// among them denies the whole set, an allow settles them. For a single
// request this is first match.
func (p *Policy) publishAllowed(topic string, want uint8) bool {
	if want == 0 || router.ValidateTopicName(topic, 0, 0) != nil {
		return false
	}
	for _, r := range p.rules() {
		applies := r.publishMask & want
		if applies == 0 || !(r.matchAll || matchTopic(r.levels, topic)) {
			continue
		}
		if !r.allow {
			return false
		}
		want &^= applies
		if want == 0 {
			return true
		}
	}
	return p.a.cfg.DefaultAllow
}

// CanSubscribeQoS reports whether the connection may subscribe to filter
// with maximum QoS qos. A "$share/{group}/" prefix is removed first, so
// rules are written for the topic filter alone. Only subscribe rules whose
// MaxQoS, where set, is at least qos take part.
//
// Rules are walked in priority order. The filter is allowed when an allow
// rule covers it, meaning every topic the filter matches is matched by the
// rule, before any deny rule that shares even one topic with the filter. A
// deny rule that shares a topic denies. An allow rule that matches only
// some of the filter's topics decides nothing, and the walk goes on. With
// no decision the configured default applies. So a subscription grants
// nothing that first-match checks on each of its topics would deny. For
// example, with rule "devices/%c/#" client dev-1 may subscribe to
// "devices/dev-1/+" but not to "devices/+/x", which also matches other
// clients' topics.
//
// The node also calls it for every delivery, with the message's topic as
// filter and the QoS of the delivery. So a wide subscription never delivers
// a topic the rules do not grant, and a rule changed by Reload applies to
// existing subscriptions. A delivery above a MaxQoS set after the SUBSCRIBE
// is denied, not downgraded.
//
// An invalid filter or a QoS above 2 is denied.
func (p *Policy) CanSubscribeQoS(filter string, qos byte) bool {
	return p.subscribeAllowed(filter, subscribeBit(qos))
}

// CanSubscribe reports whether the connection may subscribe to filter at
// every QoS, so it is true only when CanSubscribeQoS would allow QoS 0, 1
// and 2. When no rule sets MaxQoS, the result is the same as before that
// field existed. A caller with the QoS at hand should call CanSubscribeQoS,
// because a rule with MaxQoS makes CanSubscribe deny requests that
// CanSubscribeQoS allows. CanSubscribe never allows more.
func (p *Policy) CanSubscribe(filter string) bool {
	return p.subscribeAllowed(filter, allSubscribes)
}

// subscribeAllowed walks the rules for the subscribe requests in want, a set
// of subscribeBit values, as publishAllowed does for publishes.
func (p *Policy) subscribeAllowed(filter string, want uint8) bool {
	if want == 0 || router.ValidateFilter(filter, 0, 0) != nil {
		return false
	}
	_, filter, _ = router.ParseShared(filter)
	for _, r := range p.rules() {
		applies := r.subscribeMask & want
		if applies == 0 {
			continue
		}
		if r.allow {
			if !coversFilter(r.levels, filter) {
				continue
			}
			want &^= applies
			if want == 0 {
				return true
			}
			continue
		}
		if r.matchAll || intersectsFilter(r.levels, filter) {
			return false
		}
	}
	return p.a.cfg.DefaultAllow
}
