package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node"
)

// startDebugHTTP starts a node and its HTTP endpoints on loopback, with or
// without --pprof, and returns the base URL. Both stop when the test ends.
func startDebugHTTP(t *testing.T, pprof bool) string {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	n, err := node.New(node.Config{
		Listeners:   []node.ListenerConfig{{URL: "tcp://127.0.0.1:0"}},
		DataDir:     t.TempDir(),
		SysInterval: -1,
		Logger:      logger,
	})
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	web, err := startHTTP("127.0.0.1:0", httpTLSFiles{}, n, nil, pprof, "", logger, nil)
	if err != nil {
		n.Shutdown(context.Background())
		t.Fatalf("startHTTP: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		web.shutdown(ctx)
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("node.Shutdown: %v", err)
		}
	})
	return "http://" + web.ln.Addr().String()
}

func debugRequest(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestFreeMemory_WithPprof(t *testing.T) {
	base := startDebugHTTP(t, true)

	status, body := debugRequest(t, http.MethodPost, base+"/debug/free-memory")
	if status != http.StatusOK || !strings.HasPrefix(body, "freed in ") {
		t.Errorf("POST: status %d, body %q; expected 200 and \"freed in ...\"", status, body)
	}
	// Only POST frees memory: a GET, which a browser or crawler might send,
	// does nothing.
	if status, _ := debugRequest(t, http.MethodGet, base+"/debug/free-memory"); status != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, expected 405", status)
	}
}

func TestFreeMemory_NotServedWithoutPprof(t *testing.T) {
	base := startDebugHTTP(t, false)
	if status, _ := debugRequest(t, http.MethodPost, base+"/debug/free-memory"); status != http.StatusNotFound {
		t.Errorf("POST without --pprof: status %d, expected 404", status)
	}
}
