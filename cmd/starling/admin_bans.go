package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/starling-mqtt/starling/node"
)

// banRequest is the body of PUT /api/v1/bans. For is a duration such as
// "1h"; empty bans until the ban is removed.
type banRequest struct {
	Kind   string `json:"kind"`
	Value  string `json:"value"`
	For    string `json:"for,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func (a *opsAdmin) registerBans(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/bans", a.guard(a.listBans))
	mux.HandleFunc("PUT /api/v1/bans", a.guard(a.putBan))
	mux.HandleFunc("DELETE /api/v1/bans", a.guard(a.deleteBan))
}

func (a *opsAdmin) listBans(w http.ResponseWriter, _ *http.Request) {
	bans := a.node.Bans()
	if bans == nil {
		bans = []node.Ban{}
	}
	writeJSON(w, http.StatusOK, bans)
}

func (a *opsAdmin) putBan(w http.ResponseWriter, r *http.Request) {
	var req banRequest
	if status, err := decodeBody(w, r, maxAdminBody, &req); err != nil {
		a.fail(w, r, status, err)
		return
	}
	ban := node.Ban{Kind: node.BanKind(req.Kind), Value: req.Value, Reason: req.Reason}
	if req.For != "" {
		d, err := time.ParseDuration(req.For)
		if err != nil || d <= 0 {
			a.fail(w, r, http.StatusBadRequest, fmt.Errorf("for: %q is not a positive duration such as 30m or 24h", req.For))
			return
		}
		ban.Until = time.Now().Add(d)
	}
	if err := a.node.AddBan(ban); err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, ban)
}

func (a *opsAdmin) deleteBan(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := a.node.RemoveBan(node.BanKind(q.Get("kind")), q.Get("value")); err != nil {
		a.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
