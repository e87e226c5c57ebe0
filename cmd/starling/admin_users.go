package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/starling-mqtt/starling/node/auth"
)

// userRequest is the body of PUT /api/v1/users/{name}. Exactly one of
// Password and ImportHash sets the credentials; neither keeps the old ones.
// The password travels only over the admin endpoint, which is loopback-only
// or protected by a token, and is never logged.
type userRequest struct {
	Password   string   `json:"password,omitempty"`
	ImportHash string   `json:"import_hash,omitempty"`
	Groups     []string `json:"groups,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	Disabled   bool     `json:"disabled,omitempty"`
}

// userInfo is a user as the admin API lists it: never a hash.
type userInfo struct {
	Name     string   `json:"name"`
	Groups   []string `json:"groups,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Hash     string   `json:"hash"` // the hash kind, e.g. argon2id
	SCRAM    bool     `json:"scram"`
	Disabled bool     `json:"disabled,omitempty"`
}

func infoOf(u auth.User) userInfo {
	kind := string(u.Credentials.Kind)
	if kind == "" {
		kind = "none"
	}
	return userInfo{Name: u.Name, Groups: u.Groups, Roles: u.Roles, Hash: kind, SCRAM: u.SCRAM != nil, Disabled: u.Disabled}
}

// userAdmin serves the user endpoints of the admin API on a Store, and calls
// reload after every change so connected clients see it.
type userAdmin struct {
	store  auth.Store
	reload func(context.Context) error
	params auth.Params
	token  string // bearer token; empty: no token required (loopback only)
}

func (a *userAdmin) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/users", a.guard(a.list))
	mux.HandleFunc("PUT /api/v1/users/{name}", a.guard(a.put))
	mux.HandleFunc("DELETE /api/v1/users/{name}", a.guard(a.remove))
}

// guard checks the bearer token when one is configured.
func (a *userAdmin) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
				writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
				return
			}
		}
		h(w, r)
	}
}

func (a *userAdmin) list(w http.ResponseWriter, r *http.Request) {
	users, err := a.store.Users(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	out := make([]userInfo, 0, len(users))
	for _, u := range users {
		out = append(out, infoOf(u))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *userAdmin) put(w http.ResponseWriter, r *http.Request) {
	var req userRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("invalid request body: %w", err))
		return
	}
	u, err := applyUserRequest(r.Context(), a.store, r.PathValue("name"), req, a.params)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	if err := a.reload(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, infoOf(u))
}

func (a *userAdmin) remove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := a.store.User(r.Context(), name); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	if err := a.store.DeleteUser(r.Context(), name); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if err := a.reload(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// applyUserRequest creates or updates a user. With no password and no hash,
// an existing user keeps its credentials (a change of groups or roles).
func applyUserRequest(ctx context.Context, store auth.Store, name string, req userRequest, params auth.Params) (auth.User, error) {
	u, err := store.User(ctx, name)
	switch {
	case errors.Is(err, auth.ErrNotFound):
		u = auth.User{Name: name}
	case err != nil:
		return auth.User{}, err
	}
	u.Groups, u.Roles, u.Disabled = req.Groups, req.Roles, req.Disabled
	switch {
	case req.Password != "" && req.ImportHash != "":
		return auth.User{}, fmt.Errorf("%w: give either password or import_hash, not both", auth.ErrInvalidRecord)
	case req.Password != "":
		pw := []byte(req.Password)
		err = u.SetPassword(pw, params, 0)
		clear(pw)
	case req.ImportHash != "":
		err = u.ImportHash(req.ImportHash)
	}
	if err != nil {
		return auth.User{}, err
	}
	return store.PutUser(ctx, u)
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, auth.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, auth.ErrInvalidRecord), errors.Is(err, auth.ErrInvalidCredentials), errors.Is(err, auth.ErrInvalidRule):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
