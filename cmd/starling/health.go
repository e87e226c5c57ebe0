package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// runHealth checks a node's /readyz (or /healthz with --live) and exits 0 when
// it answers 200. It lets an image without a shell or curl, such as the
// scratch image, define a container health check.
func runHealth(args []string) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	addr := fs.String("http", envOr("STARLING_HTTP", "127.0.0.1:8080"), "HTTP endpoint of the node, HOST:PORT")
	live := fs.Bool("live", false, "check /healthz (the process is alive) instead of /readyz (it accepts clients)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	path := "/readyz"
	if *live {
		path = "/healthz"
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*addr+path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling health:", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling health:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "starling health: %s answered %s: %s", path, resp.Status, body)
		return 1
	}
	fmt.Printf("%s", body)
	return 0
}
