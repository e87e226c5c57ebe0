package membership

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakWait is how long TestMain waits for goroutines to end after the
// tests. memberlist v0.6.0's Shutdown does not wait for a probe in progress,
// which ends after up to ProbeInterval times the awareness multiplier (1 s to
// 8 s with ProfileLAN). goleak's own retries last well under a second.
const leakWait = 15 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := waitNoLeaks(leakWait); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines still running %v after the tests: %v\n", leakWait, err)
			code = 1
		}
	}
	os.Exit(code)
}

// waitNoLeaks polls goleak until no unexpected goroutine is left or timeout
// passes, and returns goleak's last report.
func waitNoLeaks(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := goleak.Find()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testKey is a fixed AES-256 gossip key for tests.
var testKey = bytes.Repeat([]byte{0x5a}, 32)

// testConfig returns a ProfileLocal config for a node on ip with a free
// port. Every test address is in 127.0.0.0/8.
func testConfig(t *testing.T, name, ip string) Config {
	t.Helper()
	siteID, err := newSiteID()
	if err != nil {
		t.Fatalf("newSiteID: %v", err)
	}
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.SiteID = siteID
	cfg.BindAddr = net.JoinHostPort(ip, "0")
	cfg.Profile = ProfileLocal
	cfg.Logger = testLogger(t)
	cfg.Meta = Meta{PeerAddr: net.JoinHostPort(ip, "7000"), MQTTAddr: net.JoinHostPort(ip, "1883"), BootIncarnation: 1}
	return cfg
}

// startNode starts cfg and closes the node when the test ends.
func startNode(t *testing.T, cfg Config) *Membership {
	t.Helper()
	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start(%s on %s): %v", cfg.NodeName, cfg.BindAddr, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close(%s): %v", cfg.NodeName, err)
		}
	})
	return m
}

// waitFor polls cond every 20 ms until it returns true or timeout passes,
// and fails the test with what cond last reported.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// memberNames returns the sorted names in m's view.
func memberNames(m *Membership) []string {
	var names []string
	for _, member := range m.Members() {
		names = append(names, member.Name)
	}
	return names
}

// seesExactly reports whether m lists exactly names (sorted).
func seesExactly(m *Membership, names ...string) (bool, string) {
	got := memberNames(m)
	return slices.Equal(got, names), strings.Join(got, ",")
}

// findMember returns the member called name in m's view.
func findMember(m *Membership, name string) (Member, bool) {
	for _, member := range m.Members() {
		if member.Name == name {
			return member, true
		}
	}
	return Member{}, false
}

// logBuffer collects log output and prints it if the test fails, so passing
// tests stay quiet and failing ones show what memberlist did.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger returns a Debug logger whose output the test prints on failure.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	buf := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fakeResolver maps host names to addresses and counts lookups. It never
// sends a DNS query.
type fakeResolver struct {
	lookups atomic.Int64

	mu    sync.Mutex
	hosts map[string][]string
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{hosts: make(map[string][]string)}
}

func (r *fakeResolver) set(host string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts[host] = addrs
}

func (r *fakeResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	r.lookups.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	addrs := r.hosts[host]
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return slices.Clone(addrs), nil
}

// drainEvents returns the events queued on m so far without blocking.
func drainEvents(m *Membership) []Event {
	var out []Event
	for {
		select {
		case e, ok := <-m.Events():
			if !ok {
				return out
			}
			out = append(out, e)
		default:
			return out
		}
	}
}

// freePort returns a port that was free for TCP on ip a moment ago.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("listener address %v is not TCP", l.Addr())
	}
	return addr.Port
}
