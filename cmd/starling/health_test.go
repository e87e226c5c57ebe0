package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealth_ReadyAndNotReady(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && !ready {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if code := runHealth([]string{"--http", addr}); code != 0 {
		t.Errorf("ready node: exit %d, want 0", code)
	}
	ready = false
	if code := runHealth([]string{"--http", addr}); code != 1 {
		t.Errorf("unready node: exit %d, want 1", code)
	}
	if code := runHealth([]string{"--http", addr, "--live"}); code != 0 {
		t.Errorf("unready but live node, --live: exit %d, want 0", code)
	}
}
