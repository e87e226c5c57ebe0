package node

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/storage"
)

// AuthStore keeps users, groups and roles in the node's Pebble store, so that
// they survive restarts. It implements auth.Store. Records are JSON: they are
// written by operators, rarely, and JSON keeps them readable in a dump. Every
// write is synced. The credentials inside are hashes (PHC strings), never
// passwords.
//
// It is safe for concurrent use; writes are serialized by a mutex so that the
// user version counter grows strictly.
//
// The records themselves live in an AuthRecords: the node's own store on a
// single node, the cluster's Raft state in a cluster (SetAuthRecords), so
// that every node sees the same users, groups, roles and rules. The user
// version counter always stays in the node's store.
type AuthStore struct {
	store   *storage.Store
	mu      sync.Mutex // serializes writes and the version counter
	records atomic.Pointer[authRecordsBox]
}

// authRecordsBox lets an interface value sit in an atomic.Pointer.
type authRecordsBox struct{ r AuthRecords }

// AuthRecords is where an AuthStore keeps its encoded records, by namespace
// (storage.RecordUser, RecordGroup, RecordRole, and RecordMeta for the
// global rules) and name.
type AuthRecords interface {
	// Record returns one record, or an error wrapping storage.ErrNotFound.
	Record(ns byte, name string) ([]byte, error)
	// Records calls fn for every record of a namespace.
	Records(ns byte, fn func(name string, raw []byte) error) error
	// PutRecord stores a record durably before it returns.
	PutRecord(ctx context.Context, ns byte, name string, raw []byte) error
	// DeleteRecord removes a record; a missing one is not an error.
	DeleteRecord(ctx context.Context, ns byte, name string) error
}

var _ auth.Store = (*AuthStore)(nil)

// NewAuthStore returns an auth.Store on the node's storage.
func NewAuthStore(s *storage.Store) *AuthStore {
	a := &AuthStore{store: s}
	a.records.Store(&authRecordsBox{r: localRecords{s}})
	return a
}

// SetRecords moves the store onto another backend, such as the cluster's.
func (a *AuthStore) SetRecords(r AuthRecords) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.records.Store(&authRecordsBox{r: r})
}

func (a *AuthStore) backend() AuthRecords { return a.records.Load().r }

// localRecords keeps auth records in the node's Pebble store.
type localRecords struct{ s *storage.Store }

func (l localRecords) Record(ns byte, name string) ([]byte, error) { return l.s.Record(ns, name) }

func (l localRecords) Records(ns byte, fn func(string, []byte) error) error {
	return l.s.Records(ns, fn)
}

func (l localRecords) PutRecord(_ context.Context, ns byte, name string, raw []byte) error {
	b := l.s.NewBatch()
	defer b.Close()
	b.PutRecord(ns, name, raw)
	return b.Commit()
}

func (l localRecords) DeleteRecord(_ context.Context, ns byte, name string) error {
	b := l.s.NewBatch()
	defer b.Close()
	b.DeleteRecord(ns, name)
	return b.Commit()
}

// userVersionKey names the counter of user versions in RecordMeta.
const userVersionKey = "user-version"

// userRecord is the stored form of auth.User.
type userRecord struct {
	Name        string      `json:"name"`
	Groups      []string    `json:"groups,omitempty"`
	Roles       []string    `json:"roles,omitempty"`
	Rules       []auth.Rule `json:"rules,omitempty"`
	Credentials string      `json:"credentials,omitempty"` // PHC string of the password hash
	SCRAM       string      `json:"scram,omitempty"`
	Version     uint64      `json:"version"`
	Disabled    bool        `json:"disabled,omitempty"`
}

func (r *userRecord) user() (auth.User, error) {
	u := auth.User{Name: r.Name, Groups: r.Groups, Roles: r.Roles, Rules: r.Rules, Version: r.Version, Disabled: r.Disabled}
	if r.Credentials != "" {
		c, err := auth.ParseCredentials(r.Credentials)
		if err != nil {
			return u, fmt.Errorf("user %q: %w", r.Name, err)
		}
		u.Credentials = c
	}
	if r.SCRAM != "" {
		sc, err := auth.ParseScramCredential(r.SCRAM)
		if err != nil {
			return u, fmt.Errorf("user %q: %w", r.Name, err)
		}
		u.SCRAM = sc
	}
	return u, nil
}

func recordOfUser(u auth.User) userRecord {
	r := userRecord{Name: u.Name, Groups: u.Groups, Roles: u.Roles, Rules: u.Rules, Version: u.Version, Disabled: u.Disabled}
	if u.Credentials.Kind != "" {
		r.Credentials = u.Credentials.Encode()
	}
	if u.SCRAM != nil {
		r.SCRAM = u.SCRAM.Encode()
	}
	return r
}

func (a *AuthStore) get(ns byte, kind, name string, v any) error {
	raw, err := a.backend().Record(ns, name)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%s %q: %w", kind, name, auth.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read %s %q: %w", kind, name, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s %q: %w", kind, name, err)
	}
	return nil
}

func (a *AuthStore) put(ns byte, kind, name string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", kind, name, err)
	}
	if err := a.backend().PutRecord(context.Background(), ns, name, raw); err != nil {
		return fmt.Errorf("store %s %q: %w", kind, name, err)
	}
	return nil
}

func (a *AuthStore) remove(ns byte, kind, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.backend().DeleteRecord(context.Background(), ns, name); err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, name, err)
	}
	return nil
}

// list decodes every record of a namespace, sorted by name.
func list[T any](a *AuthStore, ns byte, kind string, name func(T) string) ([]T, error) {
	var out []T
	err := a.backend().Records(ns, func(key string, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("decode %s %q: %w", kind, key, err)
		}
		out = append(out, v)
		return nil
	})
	slices.SortFunc(out, func(x, y T) int { return cmp.Compare(name(x), name(y)) })
	return out, err
}

// User implements auth.Store.
func (a *AuthStore) User(_ context.Context, name string) (auth.User, error) {
	var r userRecord
	if err := a.get(storage.RecordUser, "user", name, &r); err != nil {
		return auth.User{}, err
	}
	return r.user()
}

// Users implements auth.Store.
func (a *AuthStore) Users(_ context.Context) ([]auth.User, error) {
	recs, err := list(a, storage.RecordUser, "user", func(r userRecord) string { return r.Name })
	if err != nil {
		return nil, err
	}
	out := make([]auth.User, 0, len(recs))
	for _, r := range recs {
		u, err := r.user()
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// PutUser implements auth.Store. The version counter is stored in the same
// batch as the user, so it grows strictly across restarts and re-creations.
func (a *AuthStore) PutUser(_ context.Context, u auth.User) (auth.User, error) {
	if err := auth.ValidateUser(u); err != nil {
		return auth.User{}, fmt.Errorf("put user: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var version uint64
	raw, err := a.store.Record(storage.RecordMeta, userVersionKey)
	switch {
	case err == nil && len(raw) == 8:
		version = binary.BigEndian.Uint64(raw)
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return auth.User{}, fmt.Errorf("read user version: %w", err)
	}
	// In a cluster several nodes write users, each with its own counter:
	// the clock keeps their versions apart, the counter keeps this node's
	// strictly growing.
	version = max(version+1, uint64(time.Now().UnixNano()))
	u.Version = version
	b := a.store.NewBatch()
	defer b.Close()
	b.PutRecord(storage.RecordMeta, userVersionKey, binary.BigEndian.AppendUint64(nil, version))
	if err := b.Commit(); err != nil {
		return auth.User{}, fmt.Errorf("store user version: %w", err)
	}
	if err := a.put(storage.RecordUser, "user", u.Name, recordOfUser(u)); err != nil {
		return auth.User{}, err
	}
	return u, nil
}

// DeleteUser implements auth.Store.
func (a *AuthStore) DeleteUser(_ context.Context, name string) error {
	return a.remove(storage.RecordUser, "user", name)
}

// Group implements auth.Store.
func (a *AuthStore) Group(_ context.Context, name string) (auth.Group, error) {
	var g auth.Group
	err := a.get(storage.RecordGroup, "group", name, &g)
	return g, err
}

// Groups implements auth.Store.
func (a *AuthStore) Groups(_ context.Context) ([]auth.Group, error) {
	return list(a, storage.RecordGroup, "group", func(g auth.Group) string { return g.Name })
}

// PutGroup implements auth.Store.
func (a *AuthStore) PutGroup(_ context.Context, g auth.Group) error {
	if err := auth.ValidateGroup(g); err != nil {
		return fmt.Errorf("put group: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.put(storage.RecordGroup, "group", g.Name, g)
}

// DeleteGroup implements auth.Store.
func (a *AuthStore) DeleteGroup(_ context.Context, name string) error {
	return a.remove(storage.RecordGroup, "group", name)
}

// Role implements auth.Store.
func (a *AuthStore) Role(_ context.Context, name string) (auth.Role, error) {
	var r auth.Role
	err := a.get(storage.RecordRole, "role", name, &r)
	return r, err
}

// Roles implements auth.Store.
func (a *AuthStore) Roles(_ context.Context) ([]auth.Role, error) {
	return list(a, storage.RecordRole, "role", func(r auth.Role) string { return r.Name })
}

// PutRole implements auth.Store.
func (a *AuthStore) PutRole(_ context.Context, r auth.Role) error {
	if err := auth.ValidateRole(r); err != nil {
		return fmt.Errorf("put role: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.put(storage.RecordRole, "role", r.Name, r)
}

// DeleteRole implements auth.Store.
func (a *AuthStore) DeleteRole(_ context.Context, name string) error {
	return a.remove(storage.RecordRole, "role", name)
}

// RulesRecordName names the global rule list in RecordMeta. The list is
// stored whole: its order is part of its meaning, and operators edit it as a
// unit.
const RulesRecordName = "acl-rules"

var _ auth.RuleStore = (*AuthStore)(nil)

// Rules implements auth.RuleStore.
func (a *AuthStore) Rules(_ context.Context) ([]auth.GlobalRule, error) {
	raw, err := a.backend().Record(storage.RecordMeta, RulesRecordName)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read global rules: %w", err)
	}
	var rules []auth.GlobalRule
	if err := json.Unmarshal(raw, &rules); err != nil {
		return nil, fmt.Errorf("decode global rules: %w", err)
	}
	return rules, nil
}

// PutRules implements auth.RuleStore.
func (a *AuthStore) PutRules(_ context.Context, rules []auth.GlobalRule) error {
	if err := auth.ValidateGlobalRules(rules); err != nil {
		return fmt.Errorf("put global rules: %w", err)
	}
	raw, err := json.Marshal(rules)
	if err != nil {
		return fmt.Errorf("encode global rules: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.backend().PutRecord(context.Background(), storage.RecordMeta, RulesRecordName, raw); err != nil {
		return fmt.Errorf("store global rules: %w", err)
	}
	return nil
}
