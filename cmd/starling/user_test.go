package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/starling-mqtt/starling/node/auth"
)

func cheapParams() auth.Params {
	p := auth.DefaultPBKDF2Params()
	p.Iterations = 1000
	return p
}

func TestUserAdmin_PutListDelete(t *testing.T) {
	store := &auth.MemStore{}
	reloads := 0
	admin := &userAdmin{store: store, reload: func(context.Context) error { reloads++; return nil }, params: cheapParams()}
	mux := http.NewServeMux()
	admin.register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	users := &remoteUsers{base: srv.URL + "/api/v1/users", client: srv.Client()}
	ctx := context.Background()

	if _, err := users.put(ctx, "dev-1", userRequest{Password: "pw", Groups: []string{"fleet"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := users.put(ctx, "old", userRequest{ImportHash: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"}); err != nil {
		t.Fatal(err)
	}
	list, err := users.list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || !list[0].SCRAM || list[1].SCRAM || list[1].Hash != "bcrypt" {
		t.Fatalf("list %+v", list)
	}
	u, _ := store.User(ctx, "dev-1")
	if !auth.Verify(u.Credentials, []byte("pw")) {
		t.Fatal("stored hash does not verify the password")
	}
	if err := users.remove(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if err := users.remove(ctx, "dev-1"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("second remove: %v, want 404", err)
	}
	if reloads != 3 {
		t.Errorf("reloads = %d, want one per change (3)", reloads)
	}
}

func TestUserAdmin_TokenRequired(t *testing.T) {
	admin := &userAdmin{store: &auth.MemStore{}, reload: func(context.Context) error { return nil }, params: cheapParams(), token: "0123456789abcdef0123"}
	mux := http.NewServeMux()
	admin.register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, token := range []string{"", "wrong-token-wrong-token"} {
		users := &remoteUsers{base: srv.URL + "/api/v1/users", client: srv.Client(), token: token}
		if _, err := users.list(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("token %q: err %v, want 401", token, err)
		}
	}
	users := &remoteUsers{base: srv.URL + "/api/v1/users", client: srv.Client(), token: "0123456789abcdef0123"}
	if _, err := users.list(context.Background()); err != nil {
		t.Errorf("right token: %v", err)
	}
}

func TestLocalUsers_EditStoppedDataDir(t *testing.T) {
	dir := t.TempDir()
	b, err := openUserBackend(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := b.put(ctx, "alice", userRequest{ImportHash: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"}); err != nil {
		t.Fatal(err)
	}
	// A second opener is refused while the first holds the directory, as a
	// running node would.
	if _, err := openUserBackend(dir, "", ""); err == nil {
		t.Fatal("second open of a data directory in use succeeded")
	}
	b.close()

	b, err = openUserBackend(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if u, err := b.get(ctx, "alice"); err != nil || u.Hash != "bcrypt" {
		t.Fatalf("alice after reopen: %+v, %v", u, err)
	}
}

func TestUserAdmin_NamesWithSlashesAndSpaces(t *testing.T) {
	store := &auth.MemStore{}
	admin := &userAdmin{store: store, reload: func(context.Context) error { return nil }, params: cheapParams()}
	mux := http.NewServeMux()
	admin.register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	users := &remoteUsers{base: srv.URL + "/api/v1/users", client: srv.Client()}
	ctx := context.Background()
	for _, name := range []string{"site/a", "a b%", "#"} {
		if _, err := users.put(ctx, name, userRequest{Password: "pw"}); err != nil {
			t.Fatalf("put %q: %v", name, err)
		}
		if _, err := store.User(ctx, name); err != nil {
			t.Fatalf("user %q not stored under its name: %v", name, err)
		}
		if err := users.remove(ctx, name); err != nil {
			t.Fatalf("remove %q: %v", name, err)
		}
	}
}
