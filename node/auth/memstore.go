package auth

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// MemStore is a Store and RuleStore in memory, for tests and for a node
// without persistent users. The zero value is an empty store ready to use. It is
// safe for concurrent use, and its methods block only on its mutex.
type MemStore struct {
	mu struct {
		sync.RWMutex
		users   map[string]User
		groups  map[string]Group
		roles   map[string]Role
		rules   []GlobalRule
		version uint64 // the last Version assigned, shared by all users
	}
}

var _ RuleStore = (*MemStore)(nil)

// User implements Store.
func (s *MemStore) User(_ context.Context, name string) (User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.mu.users[name]
	if !ok {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return cloneUser(u), nil
}

// Users implements Store.
func (s *MemStore) Users(_ context.Context) ([]User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]User, 0, len(s.mu.users))
	for _, name := range slices.Sorted(maps.Keys(s.mu.users)) {
		out = append(out, cloneUser(s.mu.users[name]))
	}
	return out, nil
}

// PutUser implements Store. The version counter is shared by all users, so
// a user deleted and created again gets a Version it never had.
func (s *MemStore) PutUser(_ context.Context, u User) (User, error) {
	if err := ValidateUser(u); err != nil {
		return User{}, fmt.Errorf("put user: %w", err)
	}
	u = cloneUser(u)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.users == nil {
		s.mu.users = make(map[string]User)
	}
	s.mu.version++
	u.Version = s.mu.version
	s.mu.users[u.Name] = u
	return cloneUser(u), nil
}

// DeleteUser implements Store.
func (s *MemStore) DeleteUser(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.mu.users, name)
	return nil
}

// Group implements Store.
func (s *MemStore) Group(_ context.Context, name string) (Group, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.mu.groups[name]
	if !ok {
		return Group{}, fmt.Errorf("group %q: %w", name, ErrNotFound)
	}
	g.Roles = slices.Clone(g.Roles)
	return g, nil
}

// Groups implements Store.
func (s *MemStore) Groups(_ context.Context) ([]Group, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Group, 0, len(s.mu.groups))
	for _, g := range s.mu.groups {
		g.Roles = slices.Clone(g.Roles)
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Group) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// PutGroup implements Store.
func (s *MemStore) PutGroup(_ context.Context, g Group) error {
	if err := ValidateGroup(g); err != nil {
		return fmt.Errorf("put group: %w", err)
	}
	g.Roles = slices.Clone(g.Roles)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.groups == nil {
		s.mu.groups = make(map[string]Group)
	}
	s.mu.groups[g.Name] = g
	return nil
}

// DeleteGroup implements Store.
func (s *MemStore) DeleteGroup(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.mu.groups, name)
	return nil
}

// Role implements Store.
func (s *MemStore) Role(_ context.Context, name string) (Role, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.mu.roles[name]
	if !ok {
		return Role{}, fmt.Errorf("role %q: %w", name, ErrNotFound)
	}
	r.Rules = cloneRules(r.Rules)
	return r, nil
}

// Roles implements Store.
func (s *MemStore) Roles(_ context.Context) ([]Role, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Role, 0, len(s.mu.roles))
	for _, r := range s.mu.roles {
		r.Rules = cloneRules(r.Rules)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Role) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// PutRole implements Store.
func (s *MemStore) PutRole(_ context.Context, r Role) error {
	if err := ValidateRole(r); err != nil {
		return fmt.Errorf("put role: %w", err)
	}
	r.Rules = cloneRules(r.Rules)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.roles == nil {
		s.mu.roles = make(map[string]Role)
	}
	s.mu.roles[r.Name] = r
	return nil
}

// DeleteRole implements Store.
func (s *MemStore) DeleteRole(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.mu.roles, name)
	return nil
}

// Rules implements RuleStore.
func (s *MemStore) Rules(_ context.Context) ([]GlobalRule, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return cloneGlobalRules(s.mu.rules), nil
}

// PutRules implements RuleStore.
func (s *MemStore) PutRules(_ context.Context, rules []GlobalRule) error {
	if err := ValidateGlobalRules(rules); err != nil {
		return fmt.Errorf("put rules: %w", err)
	}
	rules = cloneGlobalRules(rules)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.rules = rules
	return nil
}
