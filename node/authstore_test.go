package node

import (
	"context"
	"errors"
	"testing"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/storage"
)

func openAuthStore(t *testing.T, dir string) (*AuthStore, func()) {
	t.Helper()
	s, err := storage.Open(storage.Config{Dir: dir, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return NewAuthStore(s), func() { s.Close() }
}

func TestAuthStore_UsersPersistWithGrowingVersions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, closeStore := openAuthStore(t, dir)

	u := auth.User{Name: "dev-1", Groups: []string{"fleet"}, Rules: []auth.Rule{{Action: auth.ActionPublish, Permission: auth.Allow, Topic: "devices/%c/#"}}}
	if err := u.SetPassword([]byte("s3cret"), auth.DefaultPBKDF2Params(), 0); err != nil {
		t.Fatal(err)
	}
	first, err := a.PutUser(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PutGroup(ctx, auth.Group{Name: "fleet", Roles: []string{"device"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.PutRole(ctx, auth.Role{Name: "device", Rules: []auth.Rule{{Action: auth.ActionSubscribe, Permission: auth.Allow, Topic: "cmd/%c"}}}); err != nil {
		t.Fatal(err)
	}
	closeStore()

	a, closeStore = openAuthStore(t, dir)
	defer closeStore()
	got, err := a.User(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != first.Version || len(got.Rules) != 1 || got.SCRAM == nil {
		t.Fatalf("reloaded user %+v", got)
	}
	if ok := auth.Verify(got.Credentials, []byte("s3cret")); !ok {
		t.Fatal("stored credentials do not verify the password")
	}
	if err := a.DeleteUser(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.User(ctx, "dev-1"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("deleted user: err %v, want auth.ErrNotFound", err)
	}
	again, err := a.PutUser(ctx, auth.User{Name: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	// A re-created user never reuses a version, so no cached login survives.
	if again.Version <= first.Version {
		t.Fatalf("re-created version %d, want above %d", again.Version, first.Version)
	}
	groups, _ := a.Groups(ctx)
	roles, _ := a.Roles(ctx)
	if len(groups) != 1 || len(roles) != 1 {
		t.Fatalf("groups %v roles %v", groups, roles)
	}
}
