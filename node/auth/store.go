package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// User is the record of one user. Groups and Roles are names of Group and
// Role records; a name with no record contributes nothing. Rules are the
// user's own ACL rules, checked before those of any role.
type User struct {
	Name string

	Groups []string
	Roles  []string
	Rules  []Rule

	// Credentials is the password hash. A zero Kind means the user has no
	// password and can log in only by other means, such as a client
	// certificate.
	Credentials Credentials

	// SCRAM is the SCRAM-SHA-256 credential, nil for a user whose password
	// the broker never saw (a bcrypt import) or who has no password.
	SCRAM *ScramCredential

	// Version is assigned by the Store on every PutUser and grows strictly,
	// also across a delete and re-create of the same name. The Verifier's
	// cache keys include it, so a changed password or a re-created user
	// never hits an entry cached for the old record.
	Version uint64

	// Disabled users fail every authentication.
	Disabled bool
}

// SetPassword replaces the user's credentials with a hash of password under
// p and a SCRAM-SHA-256 credential with scramIterations iterations (zero
// means DefaultScramIterations). The caller then stores the user with
// PutUser, which bumps Version.
func (u *User) SetPassword(password []byte, p Params, scramIterations int) error {
	if scramIterations == 0 {
		scramIterations = DefaultScramIterations
	}
	creds, err := HashPassword(password, p)
	if err != nil {
		return fmt.Errorf("set password of %q: %w", u.Name, err)
	}
	scram, err := NewScramCredential(password, scramIterations)
	if err != nil {
		return fmt.Errorf("set password of %q: %w", u.Name, err)
	}
	u.Credentials, u.SCRAM = creds, scram
	return nil
}

// ImportHash replaces the user's credentials with an encoded hash from
// another system (a PHC string or a bcrypt hash). The user then has no SCRAM
// credential, because SCRAM keys cannot be derived from a hash.
func (u *User) ImportHash(encoded string) error {
	creds, err := ParseCredentials(encoded)
	if err != nil {
		return fmt.Errorf("import hash of %q: %w", u.Name, err)
	}
	u.Credentials, u.SCRAM = creds, nil
	return nil
}

// Group is a named set of roles, so that a fleet of devices is authorized by
// putting each device's user in the fleet's group.
type Group struct {
	Name  string
	Roles []string
}

// Role is a named, ordered list of ACL rules.
type Role struct {
	Name  string
	Rules []Rule
}

// Store keeps users, groups and roles. MemStore is the in-memory
// implementation; the broker's persistent and replicated ones live with
// storage and the cluster.
//
// Implementations must be safe for concurrent use, must return copies that
// the caller may modify, must return an error wrapping ErrNotFound for a
// missing name, and must validate records on Put with ValidateUser,
// ValidateGroup or ValidateRole. Methods block on the backing store and
// honour ctx where it can interrupt them.
type Store interface {
	// User returns the user named name.
	User(ctx context.Context, name string) (User, error)
	// Users returns every user, sorted by name.
	Users(ctx context.Context) ([]User, error)
	// PutUser creates or replaces a user and returns it as stored, with the
	// new Version. The Version of u is ignored.
	PutUser(ctx context.Context, u User) (User, error)
	// DeleteUser removes a user. Deleting a missing user is not an error.
	DeleteUser(ctx context.Context, name string) error

	// Group returns the group named name.
	Group(ctx context.Context, name string) (Group, error)
	// Groups returns every group, sorted by name.
	Groups(ctx context.Context) ([]Group, error)
	// PutGroup creates or replaces a group.
	PutGroup(ctx context.Context, g Group) error
	// DeleteGroup removes a group. Deleting a missing group is not an error.
	DeleteGroup(ctx context.Context, name string) error

	// Role returns the role named name.
	Role(ctx context.Context, name string) (Role, error)
	// Roles returns every role, sorted by name.
	Roles(ctx context.Context) ([]Role, error)
	// PutRole creates or replaces a role.
	PutRole(ctx context.Context, r Role) error
	// DeleteRole removes a role. Deleting a missing role is not an error.
	DeleteRole(ctx context.Context, name string) error
}

// RuleStore is a Store that also keeps the global rule list. It is a
// separate interface so that Stores written before global rules existed
// still compile: the Authorizer checks for it with a type assertion, and a
// Store without it has no global rules. MemStore implements it.
//
// The contract of Store applies: implementations are safe for concurrent
// use, return copies, and validate on PutRules with ValidateGlobalRules.
type RuleStore interface {
	Store

	// Rules returns the global rules in their stored order, which is the
	// order in which rules of equal Priority are checked. A store without
	// global rules returns an empty list and no error.
	Rules(ctx context.Context) ([]GlobalRule, error)
	// PutRules replaces the whole global list with rules, after checking
	// them with ValidateGlobalRules. An invalid list leaves the stored one
	// unchanged.
	PutRules(ctx context.Context, rules []GlobalRule) error
}

// maxNameLen bounds user, group and role names in bytes, the same bound the
// MQTT wire format puts on a user name.
const maxNameLen = 65535

// validateName checks a user, group or role name.
func validateName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty %s name", ErrInvalidRecord, kind)
	case len(name) > maxNameLen:
		return fmt.Errorf("%w: %s name of %d bytes exceeds %d", ErrInvalidRecord, kind, len(name), maxNameLen)
	case !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: %s name is not UTF-8 without NUL", ErrInvalidRecord, kind)
	}
	return nil
}

// ValidateUser checks a user record: its name and the names it refers to,
// its rules and, if present, its credentials.
func ValidateUser(u User) error {
	if err := validateName("user", u.Name); err != nil {
		return err
	}
	for _, g := range u.Groups {
		if err := validateName("group", g); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	for _, r := range u.Roles {
		if err := validateName("role", r); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	if err := validateRules(u.Rules); err != nil {
		return fmt.Errorf("user %q: %w", u.Name, err)
	}
	if u.Credentials.Kind != "" {
		if err := u.Credentials.check(); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	if u.SCRAM != nil {
		if err := u.SCRAM.check(); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	return nil
}

// ValidateGroup checks a group record.
func ValidateGroup(g Group) error {
	if err := validateName("group", g.Name); err != nil {
		return err
	}
	for _, r := range g.Roles {
		if err := validateName("role", r); err != nil {
			return fmt.Errorf("group %q: %w", g.Name, err)
		}
	}
	return nil
}

// ValidateRole checks a role record and parses its rules.
func ValidateRole(r Role) error {
	if err := validateName("role", r.Name); err != nil {
		return err
	}
	if err := validateRules(r.Rules); err != nil {
		return fmt.Errorf("role %q: %w", r.Name, err)
	}
	return nil
}

func validateRules(rules []Rule) error {
	for i, rule := range rules {
		if _, err := compileRule(rule); err != nil {
			return fmt.Errorf("rule %d: %w", i+1, err)
		}
	}
	return nil
}

// cloneUser returns a deep copy of u.
func cloneUser(u User) User {
	u.Groups = slices.Clone(u.Groups)
	u.Roles = slices.Clone(u.Roles)
	u.Rules = cloneRules(u.Rules)
	u.Credentials.Salt = slices.Clone(u.Credentials.Salt)
	u.Credentials.Hash = slices.Clone(u.Credentials.Hash)
	if u.SCRAM != nil {
		s := *u.SCRAM
		s.Salt = slices.Clone(s.Salt)
		s.StoredKey = slices.Clone(s.StoredKey)
		s.ServerKey = slices.Clone(s.ServerKey)
		u.SCRAM = &s
	}
	return u
}
