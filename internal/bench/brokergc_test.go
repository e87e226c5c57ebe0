package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// gcRecorder is an HTTP handler that records the requests it gets and
// replies with status.
type gcRecorder struct {
	status int

	mu       sync.Mutex
	requests []string // "METHOD PATH BODY-BYTES"
}

func (g *gcRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.requests = append(g.requests, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, len(body)))
	g.mu.Unlock()
	w.WriteHeader(g.status)
	io.WriteString(w, "reply body\nsecond line\n")
}

func (g *gcRecorder) got() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.requests...)
}

func TestPostBrokerGC(t *testing.T) {
	ok := &gcRecorder{status: http.StatusOK}
	srv := httptest.NewServer(ok)
	defer srv.Close()

	if err := postBrokerGC(context.Background(), srv.URL+"/debug/free-memory"); err != nil {
		t.Fatal(err)
	}
	if got := ok.got(); len(got) != 1 || got[0] != "POST /debug/free-memory 0" {
		t.Errorf("requests %q, expected one POST with an empty body", got)
	}
}

func TestPostBrokerGC_Failures(t *testing.T) {
	failing := httptest.NewServer(&gcRecorder{status: http.StatusNotFound})
	defer failing.Close()
	err := postBrokerGC(context.Background(), failing.URL+"/debug/free-memory")
	if err == nil {
		t.Fatal("POST answered with 404 succeeded")
	}
	if !strings.Contains(err.Error(), "404") {
		t.Errorf("error %q does not contain the status", err)
	}
	if !strings.Contains(err.Error(), "reply body") {
		t.Errorf("error %q does not quote the first line of the body", err)
	}
	if strings.Contains(err.Error(), "second line") {
		t.Errorf("error %q quotes more than the first line of the body", err)
	}

	// A redirect is not followed: the tool talks to the URL given only.
	target := &gcRecorder{status: http.StatusOK}
	targetSrv := httptest.NewServer(target)
	defer targetSrv.Close()
	redirect := httptest.NewServer(http.RedirectHandler(targetSrv.URL+"/elsewhere", http.StatusTemporaryRedirect))
	defer redirect.Close()
	if err := postBrokerGC(context.Background(), redirect.URL+"/debug/free-memory"); err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("error %v, expected the redirect status as an error", err)
	}
	if got := target.got(); len(got) != 0 {
		t.Errorf("the redirect target got %q, expected nothing", got)
	}

	// Nothing listens: a connection error, quickly.
	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	if err := postBrokerGC(context.Background(), url); err == nil {
		t.Error("POST to a closed port succeeded")
	}
}

func TestRun_IdleWithBrokerGC(t *testing.T) {
	gc := &gcRecorder{status: http.StatusOK}
	srv := httptest.NewServer(gc)
	defer srv.Close()

	cfg := connConfig(startNode(t), ScenarioIdle)
	cfg.Clients = 20
	cfg.Hold = 100 * time.Millisecond
	cfg.BrokerPID = os.Getpid()
	cfg.BrokerGCURL = srv.URL + "/debug/free-memory"
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		t.Errorf("errors: %v", res.Errors)
	}
	if got := gc.got(); len(got) != 2 {
		t.Errorf("requests %q, expected two POSTs: before the first connection and after the hold", got)
	}
	if !res.Connections.BrokerGC {
		t.Error("result does not report the forced collection")
	}
}

func TestRun_IdleWithFailingBrokerGC(t *testing.T) {
	srv := httptest.NewServer(&gcRecorder{status: http.StatusInternalServerError})
	defer srv.Close()

	cfg := connConfig(startNode(t), ScenarioIdle)
	cfg.Clients = 5
	cfg.Hold = 0
	cfg.BrokerPID = os.Getpid()
	cfg.BrokerGCURL = srv.URL + "/debug/free-memory"
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Connections.BrokerGC {
		t.Error("result reports a forced collection that failed")
	}
	if len(res.Errors) != 2 {
		t.Fatalf("errors %q, expected the two failed POSTs", res.Errors)
	}
	if !strings.Contains(res.Errors[0], "garbage collection before the first connection") {
		t.Errorf("first error %q does not name the collection before the first connection", res.Errors[0])
	}
	if !strings.Contains(res.Errors[1], "after the hold") || !strings.Contains(res.Errors[1], "500") {
		t.Errorf("second error %q does not name the collection after the hold and its status", res.Errors[1])
	}
	// A failed collection does not stop the run or its memory samples.
	if res.Connections.Opened != 5 {
		t.Errorf("opened %d connections, expected 5", res.Connections.Opened)
	}
	if res.Broker == nil {
		t.Error("no broker usage")
	}
}
