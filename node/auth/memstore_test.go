package auth

import (
	"context"
	"errors"
	"testing"
)

func TestMemStore_Users(t *testing.T) {
	ctx := context.Background()
	s := &MemStore{}
	if _, err := s.User(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User on an empty store: %v, want ErrNotFound", err)
	}

	u := User{Name: "bob", Groups: []string{"g"}, Rules: []Rule{allow(ActionAll, "a")}}
	first, err := s.PutUser(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutUser(ctx, User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}

	// Returned records are copies.
	first.Groups[0] = "changed"
	u.Groups[0] = "changed too"
	got, err := s.User(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if got.Groups[0] != "g" {
		t.Errorf("stored groups changed through a copy: %v", got.Groups)
	}

	all, err := s.Users(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "alice" || all[1].Name != "bob" {
		t.Errorf("Users = %v, %v; want alice, bob", all, err)
	}

	// Versions grow across delete and re-create.
	if err := s.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "bob"); err != nil {
		t.Errorf("deleting a missing user: %v", err)
	}
	again, err := s.PutUser(ctx, User{Name: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if again.Version <= first.Version {
		t.Errorf("re-created user got Version %d, not above %d", again.Version, first.Version)
	}
}

func TestMemStore_Validation(t *testing.T) {
	ctx := context.Background()
	s := &MemStore{}
	users := map[string]User{
		"empty-name":   {},
		"nul-name":     {Name: "a\x00"},
		"bad-utf8":     {Name: "\xff"},
		"empty-group":  {Name: "a", Groups: []string{""}},
		"empty-role":   {Name: "a", Roles: []string{""}},
		"bad-rule":     {Name: "a", Rules: []Rule{{Action: ActionAll, Permission: Allow, Topic: "a/#/b"}}},
		"bad-creds":    {Name: "a", Credentials: Credentials{Params: Params{Kind: KindArgon2id}}},
		"bad-scram":    {Name: "a", SCRAM: &ScramCredential{Iterations: 1}},
		"unknown-kind": {Name: "a", Credentials: Credentials{Params: Params{Kind: "sha1"}}},
	}
	for name, u := range users {
		t.Run("user-"+name, func(t *testing.T) {
			if _, err := s.PutUser(ctx, u); err == nil {
				t.Error("PutUser accepted an invalid user")
			}
		})
	}
	if err := s.PutGroup(ctx, Group{Name: "g", Roles: []string{""}}); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("PutGroup with an empty role name: %v, want ErrInvalidRecord", err)
	}
	if err := s.PutRole(ctx, Role{Name: "r", Rules: []Rule{{Action: "x", Permission: Allow, Topic: "a"}}}); !errors.Is(err, ErrInvalidRule) {
		t.Errorf("PutRole with a bad rule: %v, want ErrInvalidRule", err)
	}
}

func TestMemStore_GroupsAndRoles(t *testing.T) {
	ctx := context.Background()
	s := &MemStore{}
	for _, name := range []string{"b", "a"} {
		if err := s.PutGroup(ctx, Group{Name: name, Roles: []string{"r"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRole(ctx, Role{Name: name, Rules: []Rule{allow(ActionAll, "x")}}); err != nil {
			t.Fatal(err)
		}
	}
	groups, _ := s.Groups(ctx)
	roles, _ := s.Roles(ctx)
	if len(groups) != 2 || groups[0].Name != "a" || len(roles) != 2 || roles[0].Name != "a" {
		t.Errorf("Groups %v, Roles %v; want two of each, sorted", groups, roles)
	}
	g, err := s.Group(ctx, "a")
	if err != nil || len(g.Roles) != 1 {
		t.Errorf("Group(a) = %v, %v", g, err)
	}
	if err := s.DeleteGroup(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Group(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted group: %v, want ErrNotFound", err)
	}
	if err := s.DeleteRole(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Role(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted role: %v, want ErrNotFound", err)
	}
}

func TestMemStore_Rules(t *testing.T) {
	ctx := t.Context()
	s := &MemStore{}
	rules, err := s.Rules(ctx)
	if err != nil || len(rules) != 0 {
		t.Fatalf("Rules on an empty store = %v, %v; want none", rules, err)
	}

	in := []GlobalRule{
		{Subject: Subject{Kind: SubjectClient, Name: "b-*"}, Rule: Rule{Action: ActionPublish, Permission: Allow, Topic: "b", MaxQoS: new(byte(1))}},
		{Subject: Subject{Kind: SubjectAll}, Rule: Rule{Action: ActionAll, Permission: Deny, Topic: "a", Priority: 3}},
	}
	if err := s.PutRules(ctx, in); err != nil {
		t.Fatal(err)
	}

	// The store keeps the order and returns copies, pointers included.
	*in[0].MaxQoS = 2
	got, err := s.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Topic != "b" || got[1].Topic != "a" {
		t.Fatalf("Rules = %+v, want b then a", got)
	}
	if *got[0].MaxQoS != 1 {
		t.Errorf("stored MaxQoS changed through the caller's slice: %d", *got[0].MaxQoS)
	}
	*got[0].MaxQoS = 0
	again, _ := s.Rules(ctx)
	if *again[0].MaxQoS != 1 {
		t.Errorf("stored MaxQoS changed through a returned copy: %d", *again[0].MaxQoS)
	}

	bad := []GlobalRule{in[1], {Subject: Subject{Kind: SubjectUser}, Rule: in[1].Rule}}
	if err := s.PutRules(ctx, bad); !errors.Is(err, ErrInvalidRule) {
		t.Errorf("PutRules with an empty user name: %v, want ErrInvalidRule", err)
	}
	if got, _ := s.Rules(ctx); len(got) != 2 || got[0].Topic != "b" {
		t.Errorf("a rejected PutRules changed the list: %+v", got)
	}

	if err := s.PutRules(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Rules(ctx); len(got) != 0 {
		t.Errorf("Rules after PutRules(nil) = %+v, want none", got)
	}
}

func TestMemStore_RoleRulesAreCopies(t *testing.T) {
	ctx := t.Context()
	s := &MemStore{}
	role := Role{Name: "r", Rules: []Rule{{Action: ActionAll, Permission: Allow, Topic: "a", MaxQoS: new(byte(1))}}}
	if err := s.PutRole(ctx, role); err != nil {
		t.Fatal(err)
	}
	*role.Rules[0].MaxQoS = 2
	got, err := s.Role(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if *got.Rules[0].MaxQoS != 1 {
		t.Errorf("stored MaxQoS changed through the caller's role: %d", *got.Rules[0].MaxQoS)
	}
}
