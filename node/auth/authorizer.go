package auth

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"weak"
)

// AuthorizerConfig configures an Authorizer.
type AuthorizerConfig struct {
	// DefaultAllow is the decision when no rule matches. The default,
	// false, denies.
	DefaultAllow bool
}

// Authorizer decides what authenticated clients may publish and subscribe
// to, from the rules of users and their roles, groups' roles included, and
// from the global rules of a Store that implements RuleStore. It keeps a
// compiled snapshot of all groups, roles and global rules, replaced whole by
// Reload; a user's own rules travel in the Identity.
//
// All methods are safe for concurrent use. Only Reload blocks, on the Store.
type Authorizer struct {
	store Store
	cfg   AuthorizerConfig

	snap     atomic.Pointer[aclSnapshot]
	reloadMu sync.Mutex // serializes Reload, so snapshots are installed in order

	// subjects interns the policy subjects of identities without rules of
	// their own, so that the many connections of one user, or every
	// anonymous client, share one. An entry goes when the last Policy
	// that uses its subject has been collected.
	subjectsMu sync.Mutex
	subjects   map[subjectKey]weak.Pointer[policySubject]
}

// subjectKey identifies an interned policySubject. Roles and groups are
// joined with NUL bytes. subjectFor compares the lists themselves as well,
// so names that contain NUL cannot make two identities share a subject.
type subjectKey struct {
	username      string
	method        Method
	roles, groups string
}

// aclSnapshot is an immutable view of groups, compiled roles and compiled
// global rules.
type aclSnapshot struct {
	generation uint64
	groups     map[string][]string        // group name → role names
	roles      map[string][]*compiledRule // role name → rules in order
	global     []*compiledGlobalRule      // in stored order
}

// denyEverything replaces a stored rule that does not compile, so a
// broken record takes permissions away instead of granting them. It also
// matches "$" topics, which no pattern starting with a wildcard does.
var denyEverything = &compiledRule{publish: true, subscribe: true, allow: false, matchAll: true, maxQoS: highestQoS}

// denyEverythingFirst replaces the rules of an identity with one that does
// not compile. It has the highest priority, so that such an identity gets
// nothing, not even from global rules of a high priority.
var denyEverythingFirst = &compiledRule{publish: true, subscribe: true, allow: false, matchAll: true, maxQoS: highestQoS, priority: math.MaxInt}

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

// Reload reads all groups and roles from the store, and the global rules if
// the store implements RuleStore, and installs them for every Policy at its
// next check, so a revoked grant applies to clients that are already
// connected. The code that changes groups, roles or global rules in the
// store must call Reload afterwards.
//
// If the store cannot be read, the old snapshot stays and the error is
// returned. A role with a rule that does not compile is installed as "deny
// everything", and so is a global rule that does not compile (see
// compileGlobalRules). Both are reported in the returned error, which then
// wraps ErrInvalidRule. The rest of the snapshot is installed.
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
	var global []GlobalRule
	if rs, ok := a.store.(RuleStore); ok {
		if global, err = rs.Rules(ctx); err != nil {
			return fmt.Errorf("reload ACL: %w", err)
		}
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
	snap.global, err = compileGlobalRules(global)
	if err != nil {
		errs = append(errs, err)
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
// order, then stably sorted by Priority, highest first:
//
//  1. the identity's own rules (Identity.Rules),
//  2. the rules of its roles (Identity.Roles) in order,
//  3. the rules of the roles of each of its groups, groups and roles in
//     order (a role reached twice is checked once, at its first place),
//  4. the global rules whose Subject names the client, in stored order.
//
// With every Priority equal, the order is the list above. The subjects of
// global rules are matched against the identity and clientID once per
// snapshot, not per check.
//
// The node builds one Policy per connection after authentication and keeps
// it. Policies of identities with no rules of their own share the bound
// rules unless some rule depends on the client id, so a connection costs
// the Policy itself, 32 bytes. Checks through a Policy do not allocate
// unless a Reload happened since the last check. An invalid rule in the
// identity denies everything.
func (a *Authorizer) Policy(id Identity, clientID string) *Policy {
	p := &Policy{s: a.subjectFor(id), clientID: clientID}
	p.rules()
	return p
}

// subjectFor returns the policy subject of id: a shared one when id has no
// rules of its own, else a new one.
func (a *Authorizer) subjectFor(id Identity) *policySubject {
	if len(id.Rules) > 0 {
		return a.newSubject(id)
	}
	key := subjectKey{username: id.Username, method: id.Method,
		roles: strings.Join(id.Roles, "\x00"), groups: strings.Join(id.Groups, "\x00")}

	a.subjectsMu.Lock()
	defer a.subjectsMu.Unlock()
	if s := a.subjects[key].Value(); s != nil {
		if slices.Equal(s.roles, id.Roles) && slices.Equal(s.groups, id.Groups) {
			return s
		}
		return a.newSubject(id)
	}
	s := a.newSubject(id)
	if a.subjects == nil {
		a.subjects = make(map[subjectKey]weak.Pointer[policySubject])
	}
	a.subjects[key] = weak.Make(s)
	runtime.AddCleanup(s, a.forgetSubject, key)
	return s
}

// forgetSubject removes the entry of a collected subject, unless a new
// subject has taken its key since.
func (a *Authorizer) forgetSubject(key subjectKey) {
	a.subjectsMu.Lock()
	defer a.subjectsMu.Unlock()
	if wp, ok := a.subjects[key]; ok && wp.Value() == nil {
		delete(a.subjects, key)
	}
}

func (a *Authorizer) newSubject(id Identity) *policySubject {
	s := &policySubject{a: a, username: id.Username, method: id.Method,
		roles: slices.Clone(id.Roles), groups: slices.Clone(id.Groups)}
	rules, err := compileRules(id.Rules)
	if err != nil {
		rules = []*compiledRule{denyEverythingFirst}
	}
	s.userRules = rules
	return s
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
