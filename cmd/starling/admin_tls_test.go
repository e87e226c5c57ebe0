package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node"
)

func TestAdminHTTP_ServesTLSWithCertificate(t *testing.T) {
	dir := t.TempDir()
	if code := runCerts([]string{"init", dir}); code != 0 {
		t.Fatalf("certs init exited %d", code)
	}
	logger := slog.New(slog.DiscardHandler)
	n, err := node.New(node.Config{Listeners: []node.ListenerConfig{{URL: "tcp://127.0.0.1:0"}},
		DataDir: t.TempDir(), SysInterval: -1, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	files := httpTLSFiles{cert: filepath.Join(dir, "server.pem"), key: filepath.Join(dir, "server-key.pem")}
	web, err := startHTTP("127.0.0.1:0", files, n, nil, false, "", logger, nil)
	if err != nil {
		n.Shutdown(context.Background())
		t.Fatalf("startHTTP: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		web.shutdown(ctx)
		n.Shutdown(ctx)
	})
	addr := web.ln.Addr().String()

	t.Setenv("STARLING_ADMIN_CA", filepath.Join(dir, "ca.pem"))
	api, err := newAdminClient("https://"+addr, "")
	if err != nil {
		t.Fatal(err)
	}
	var status map[string]any
	if err := api.call(context.Background(), http.MethodGet, "/api/v1/status", nil, nil, &status); err != nil {
		t.Fatalf("status over HTTPS with the CA: %v", err)
	}

	// Plain HTTP to the TLS port gets no answer it can use.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/readyz")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("plain HTTP to the TLS endpoint answered 200: %s", body)
		}
	}
}
