package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/starling-mqtt/starling/router"
)

// AuthorizerConfig configures an Authorizer.
type AuthorizerConfig struct {
	// DefaultAllow is the decision when no rule matches. The default,
	// false, denies.
	DefaultAllow bool
}

// Authorizer decides what authenticated clients may publish and subscribe
// to, from the rules of users and their roles, groups' roles included. It
// keeps a compiled snapshot of all groups and roles, replaced whole by
// Reload; a user's own rules travel in the Identity.
//
// All methods are safe for concurrent use. Only Reload blocks, on the Store.
type Authorizer struct {
	store Store
	cfg   AuthorizerConfig

	snap     atomic.Pointer[aclSnapshot]
	reloadMu sync.Mutex // serializes Reload, so snapshots are installed in order
}

// aclSnapshot is an immutable view of groups and compiled roles.
type aclSnapshot struct {
	generation uint64
	groups     map[string][]string        // group name → role names
	roles      map[string][]*compiledRule // role name → rules in order
}

// denyEverything replaces a stored rule that does not compile, so a
// broken record takes permissions away instead of granting them. It also
// matches "$" topics, which no pattern starting with a wildcard does.
var denyEverything = &compiledRule{publish: true, subscribe: true, allow: false, matchAll: true}

// NewAuthorizer returns an Authorizer loaded from store. See Reload for the
// handling of invalid records.
func NewAuthorizer(ctx context.Context, store Store, cfg AuthorizerConfig) (*Authorizer, error) {
	a := &Authorizer{store: store, cfg: cfg}
	a.snap.Store(&aclSnapshot{})
	if err := a.Reload(ctx); err != nil {
		return a, err
	}
	return a, nil
}

// Reload reads all groups and roles from the store and installs them for
// every Policy at its next check, so a revoked grant applies to clients
// that are already connected. The code that changes groups or roles in the
// store must call Reload afterwards.
//
// If the store cannot be read, the old snapshot stays and the error is
// returned. A role with a rule that does not compile is installed as "deny
// everything" and reported in the returned error, which then wraps
// ErrInvalidRule. The rest of the snapshot is installed.
func (a *Authorizer) Reload(ctx context.Context) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()

	groups, err := a.store.Groups(ctx)
	if err != nil {
		return fmt.Errorf("reload ACL: %w", err)
	}
	roles, err := a.store.Roles(ctx)
	if err != nil {
		return fmt.Errorf("reload ACL: %w", err)
	}

	snap := &aclSnapshot{
		generation: a.snap.Load().generation + 1,
		groups:     make(map[string][]string, len(groups)),
		roles:      make(map[string][]*compiledRule, len(roles)),
	}
	for _, g := range groups {
		snap.groups[g.Name] = g.Roles
	}
	var errs []error
	for _, r := range roles {
		rules, err := compileRules(r.Rules)
		if err != nil {
			errs = append(errs, fmt.Errorf("role %q: %w", r.Name, err))
		}
		snap.roles[r.Name] = rules
	}
	a.snap.Store(snap)
	if len(errs) > 0 {
		return fmt.Errorf("reload ACL: %w", errors.Join(errs...))
	}
	return nil
}

// compileRules compiles rules in order. If one fails, the result denies
// everything and the error names the rule.
func compileRules(rules []Rule) ([]*compiledRule, error) {
	out := make([]*compiledRule, 0, len(rules))
	for i, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			return []*compiledRule{denyEverything}, fmt.Errorf("rule %d: %w", i+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Policy returns the permissions of one connection, with %c bound to
// clientID and %u to the identity's user name. The rules come in this
// order: the identity's own rules, the rules of its roles in order, then
// those of the roles of each of its groups in order. A role reached twice is checked once, at its
// first place.
//
// The node builds one Policy per connection after authentication and keeps
// it. Checks through a Policy do not allocate unless a Reload happened since
// the last check. An invalid rule in the identity denies everything.
func (a *Authorizer) Policy(id Identity, clientID string) *Policy {
	p := &Policy{a: a, clientID: clientID, username: id.Username, roles: id.Roles, groups: id.Groups}
	rules, err := compileRules(id.Rules)
	if err != nil {
		rules = []*compiledRule{denyEverything}
	}
	p.userRules = rules
	p.rebind(a.snap.Load())
	return p
}

// CanPublish reports whether the identity, connected as clientID, may
// publish to topic. It builds a Policy on every call; the node should keep
// one per connection instead.
func (a *Authorizer) CanPublish(id Identity, clientID, topic string) bool {
	return a.Policy(id, clientID).CanPublish(topic)
}

// CanSubscribe reports whether the identity, connected as clientID, may
// subscribe to filter. It builds a Policy on every call; the node should
// keep one per connection instead.
func (a *Authorizer) CanSubscribe(id Identity, clientID, filter string) bool {
	return a.Policy(id, clientID).CanSubscribe(filter)
}

// Policy is the bound rule list of one connection. It is safe for
// concurrent use, so the connection's reader and the will publisher may
// share it.
type Policy struct {
	a                  *Authorizer
	clientID, username string
	roles, groups      []string
	userRules          []*compiledRule

	bound atomic.Pointer[boundPolicy]
}

// boundPolicy is the rule list for one snapshot generation.
type boundPolicy struct {
	generation uint64
	rules      []*boundRule
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

// rebind binds the user's rules and the snapshot's role rules.
func (p *Policy) rebind(snap *aclSnapshot) *boundPolicy {
	b := &boundPolicy{generation: snap.generation}
	add := func(rules []*compiledRule) {
		for _, c := range rules {
			if r := c.bind(p.clientID, p.username); r != nil {
				b.rules = append(b.rules, r)
			}
		}
	}
	seen := make(map[string]bool, len(p.roles))
	addRole := func(name string) {
		if !seen[name] {
			seen[name] = true
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
	p.bound.Store(b)
	return b
}

// CanPublish reports whether the connection may publish to topic: the
// first publish rule whose pattern matches the topic decides, and with no
// match the configured default does. An invalid topic name is denied.
// A will message is checked the same way, at CONNECT and again when it is
// published (see CanPublishWill).
func (p *Policy) CanPublish(topic string) bool {
	if router.ValidateTopicName(topic, 0, 0) != nil {
		return false
	}
	for _, r := range p.rules() {
		if r.publish && (r.matchAll || matchTopic(r.levels, topic)) {
			return r.allow
		}
	}
	return p.a.cfg.DefaultAllow
}

// CanPublishWill reports whether the connection may have a will message on
// topic. A will is a publish by the client and gets exactly the rules of
// CanPublish. The node checks it at CONNECT, rejecting the connection with
// 0x87 Not authorized (3.1.1 return code 5), and again before it publishes
// the will, because the rules may have changed in between.
func (p *Policy) CanPublishWill(topic string) bool {
	return p.CanPublish(topic)
}

// CanSubscribe reports whether the connection may subscribe to filter. A
// "$share/{group}/" prefix is removed first, so rules are written for the
// topic filter alone.
//
// Rules are walked in order. The filter is allowed when an allow rule
// covers it, meaning every topic the filter matches is matched by the rule,
// before any deny rule that shares even one topic with the filter. A deny
// rule that shares a topic denies. An allow rule that matches only some of
// the filter's topics decides nothing, and the walk goes on. With no
// decision the configured default applies. So a subscription grants nothing
// that CanPublish-style first-match checks on each of its topics would
// deny. For example, with rule "devices/%c/#" client dev-1 may subscribe to
// "devices/dev-1/+" but not to "devices/+/x", which also matches other
// clients' topics.
//
// An invalid filter is denied.
func (p *Policy) CanSubscribe(filter string) bool {
	if router.ValidateFilter(filter, 0, 0) != nil {
		return false
	}
	_, filter, _ = router.ParseShared(filter)
	for _, r := range p.rules() {
		if !r.subscribe {
			continue
		}
		if r.allow {
			if coversFilter(r.levels, filter) {
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
