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
