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
//
// The rules it binds come from its subject, which connections with an
// equal identity share (Authorizer.subjectFor). A Policy binds rules of its
// own only while some rule of the subject depends on the client id: a %c
// in a pattern, or a global rule whose Subject is a client id pattern.
type Policy struct {
	s        *policySubject
	clientID string

	// own is this client's rule list for a snapshot in which the
	// subject's rules depend on the client id; nil until one needs it.
	own atomic.Pointer[boundPolicy]
}

// policySubject is the part of an identity that a Policy's rules depend
// on, all but the client id: the user name, method, roles, groups and own
// rules. Only bound changes after creation, so Policies of equal identities
// share one.
type policySubject struct {
	a             *Authorizer
	username      string
	method        Method
	roles, groups []string
	userRules     []*compiledRule

	// bound is the rule list for the latest snapshot a check used, shared
	// by every client of the subject unless its perClient is set.
	bound atomic.Pointer[boundPolicy]
}

// boundPolicy is the rule list for one snapshot generation.
type boundPolicy struct {
	generation uint64
	rules      []*boundRule // sorted by priority, highest first

	// perClient marks a subject binding whose rules differ from client to
	// client, so that rules is nil and each Policy binds its own.
	perClient bool
}

// Username returns the user name of the identity p was made for, "" for an
// anonymous client.
func (p *Policy) Username() string { return p.s.username }

// Method returns how the identity p was made for authenticated.
func (p *Policy) Method() Method { return p.s.method }

// rules returns the bound rules for the current snapshot, rebinding after a
// Reload. Two goroutines may rebind at once; both results are equal.
func (p *Policy) rules() []*boundRule {
	snap := p.s.a.snap.Load()
	b := p.s.bound.Load()
	if b == nil || b.generation != snap.generation {
		b = p.s.rebind(snap)
	}
	if !b.perClient {
		return b.rules
	}
	own := p.own.Load()
	if own == nil || own.generation != snap.generation {
		own = p.s.bind(snap, p.clientID)
		p.own.Store(own)
	}
	return own.rules
}

// rebind binds the subject's rules for snap, or marks the result perClient
// when they depend on the client id.
func (s *policySubject) rebind(snap *aclSnapshot) *boundPolicy {
	var b *boundPolicy
	if s.dependsOnClient(snap) {
		b = &boundPolicy{generation: snap.generation, perClient: true}
	} else {
		b = s.bind(snap, "")
	}
	s.bound.Store(b)
	return b
}

// dependsOnClient reports whether the rules bound for s in snap depend on
// the client id. It may report true for rules that would bind the same for
// every client, which costs only memory.
func (s *policySubject) dependsOnClient(snap *aclSnapshot) bool {
	uses := func(rules []*compiledRule) bool {
		return slices.ContainsFunc(rules, func(c *compiledRule) bool { return c.usesClientID })
	}
	if uses(s.userRules) {
		return true
	}
	for _, role := range s.roles {
		if uses(snap.roles[role]) {
			return true
		}
	}
	for _, group := range s.groups {
		for _, role := range snap.groups[group] {
			if uses(snap.roles[role]) {
				return true
			}
		}
	}
	for _, g := range snap.global {
		if g.subject.Kind == SubjectClient || g.rule.usesClientID {
			return true
		}
	}
	return false
}

// bind binds the user's rules, the snapshot's role rules and the global
// rules whose subject names the client, in the order Authorizer.Policy
// documents.
func (s *policySubject) bind(snap *aclSnapshot, clientID string) *boundPolicy {
	b := &boundPolicy{generation: snap.generation}
	addRule := func(c *compiledRule) {
		if r := c.bind(clientID, s.username); r != nil {
			b.rules = append(b.rules, r)
		}
	}
	add := func(rules []*compiledRule) {
		for _, c := range rules {
			addRule(c)
		}
	}
	reached := make(map[string]bool, len(s.roles))
	addRole := func(name string) {
		if !reached[name] {
			reached[name] = true
			add(snap.roles[name])
		}
	}

	add(s.userRules)
	for _, role := range s.roles {
		addRole(role)
	}
	for _, group := range s.groups {
		for _, role := range snap.groups[group] {
			addRole(role)
		}
	}

	scope := subjectScope{clientID: clientID, username: s.username, method: s.method, groups: s.groups, roles: reached}
	for _, g := range snap.global {
		if g.appliesTo(&scope) {
			addRule(g.rule)
		}
	}

	sortByPriority(b.rules)
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
	return p.s.a.cfg.DefaultAllow
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
	return p.s.a.cfg.DefaultAllow
}
