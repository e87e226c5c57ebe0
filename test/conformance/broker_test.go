package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/starling-mqtt/starling/node"
)

// Environment variables that change how the suite runs.
const (
	// envAddr points the suite at an external broker (host:port) instead of
	// an in-process node.
	envAddr = "CONFORMANCE_ADDR"
	// envStrict=1 makes knownGap tests fail instead of skipping.
	envStrict = "CONFORMANCE_STRICT"
	// envLog=1 sends the in-process node's debug log to stderr.
	envLog = "CONFORMANCE_LOG"
)

// Timeouts, sized for a 2-core machine running the suite under -race with
// many tests in parallel.
const (
	// ioTimeout bounds the wait for a packet the broker must send.
	ioTimeout = 5 * time.Second
	// quietPeriod is how long a test waits before it concludes that the
	// broker sends nothing. A slow broker can make a negative check pass
	// wrongly but never fail wrongly.
	quietPeriod = 500 * time.Millisecond
	// closeTimeout bounds the wait for the broker to close a connection.
	closeTimeout = 3 * time.Second
)

// runID makes client identifiers and topics unique across runs, so tests can
// share an external broker that keeps retained messages and sessions.
var runID = newRunID()

func newRunID() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func TestMain(m *testing.M) {
	flag.Parse()
	raiseParallelism()
	code := m.Run()
	printSummary(os.Stdout)
	if code == 0 && externalAddr() == "" {
		// Pebble keeps background goroutines for a short while after Close.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble/v2.(*DB).maybeScheduleCompaction")); err != nil {
			fmt.Fprintf(os.Stderr, "conformance: goroutines leaked: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// raiseParallelism lets more tests run at once than the default of
// GOMAXPROCS, unless -parallel was given: most tests spend their time waiting
// for timers and quiet periods, not on the CPU.
func raiseParallelism() {
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			set = true
		}
	})
	if !set {
		flag.Set("test.parallel", "12")
	}
}

// externalAddr returns the address of the broker under test when it is not
// the in-process node, or "".
func externalAddr() string { return os.Getenv(envAddr) }

// broker is the broker under test, with the names one test uses on it.
type broker struct {
	t      testing.TB
	addr   string
	srv    *node.Server // nil for an external broker
	prefix string       // topic prefix unique to the test and run
	nextID atomic.Uint32
}

// brokerOption changes the node configuration. A test that passes one needs
// a node setting and skips against an external broker.
type brokerOption func(*node.Config)

// startBroker returns the broker under test: a new in-process node with the
// options applied, or the external broker of CONFORMANCE_ADDR. The node shuts
// down when the test ends. Tests that use startBroker have their result
// recorded for the summary that TestMain prints.
func startBroker(t testing.TB, opts ...brokerOption) *broker {
	t.Helper()
	recordResult(t)
	b := &broker{t: t, prefix: "conf/" + runID + "/" + sanitize(t.Name())}
	if addr := externalAddr(); addr != "" {
		if len(opts) > 0 {
			t.Skipf("needs a node setting; %s points at an external broker", envAddr)
		}
		b.addr = addr
		return b
	}

	cfg := node.Config{
		Listeners: []node.ListenerConfig{{URL: "tcp://127.0.0.1:0"}},
		DataDir:   t.TempDir(),
		Logger:    nodeLogger(),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	srv, err := node.New(cfg)
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Logf("node.Shutdown: %v", err)
		}
	})
	b.srv = srv
	b.addr = srv.Addrs()[0].String()
	return b
}

func nodeLogger() *slog.Logger {
	if os.Getenv(envLog) == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// addrOf returns the address of the node's listener i.
func (b *broker) addrOf(i int) string {
	b.t.Helper()
	addrs := b.srv.Addrs()
	if i >= len(addrs) {
		b.t.Fatalf("node has %d listeners, want at least %d", len(addrs), i+1)
	}
	return addrs[i].String()
}

// topic returns a topic name under the test's own prefix.
func (b *broker) topic(suffix string) string { return b.prefix + "/" + suffix }

// clientID returns a client identifier unique to the test and run, built
// only from the characters every server must accept [MQTT-3.1.3-5].
func (b *broker) clientID(role string) string {
	n := b.nextID.Add(1)
	id := fmt.Sprintf("%s%s%d%s", runID, hashName(b.t.Name()), n, sanitizeAlnum(role))
	if len(id) > 23 {
		id = id[:23]
	}
	return id
}

// sanitize turns a test name into a topic level.
func sanitize(name string) string {
	return strings.NewReplacer("/", "_", "+", "_", "#", "_", "$", "_").Replace(name)
}

func sanitizeAlnum(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if r < 128 && (r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// hashName returns six hex digits of the FNV-1a hash of a test name, so that
// client identifiers stay short and unique per test.
func hashName(name string) string {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return fmt.Sprintf("%06x", h&0xFFFFFF)
}

// withLimits changes the node's limits.
func withLimits(fn func(*node.Limits)) brokerOption {
	return func(c *node.Config) { fn(&c.Limits) }
}

// withConnectTimeout sets the node's ConnectTimeout.
func withConnectTimeout(d time.Duration) brokerOption {
	return func(c *node.Config) { c.ConnectTimeout = d }
}

// withSecondListener adds a loopback listener that admits anonymous clients
// only when anonymous is true.
func withSecondListener(anonymous bool) brokerOption {
	return func(c *node.Config) {
		c.Listeners = append(c.Listeners, node.ListenerConfig{URL: "tcp://127.0.0.1:0", AllowAnonymous: &anonymous})
	}
}

// withField sets the node.Config field at path (for example
// "Features.MaxKeepAlive") to value by reflection. Features that are being
// added to the node are configured this way, so the suite compiles before
// and after they exist. Call requireNodeField before startBroker, so that the
// test skips when the field is missing.
func withField(path string, value any) brokerOption {
	return func(c *node.Config) {
		if err := setField(reflect.ValueOf(c).Elem(), path, value); err != nil {
			panic(err) // requireNodeField or hasField checked the path
		}
	}
}

// hasField reports whether node.Config has a settable field at path that
// can hold value. When it has not, the caller's feature is missing.
func hasField(path string, value any) bool {
	var cfg node.Config
	return setField(reflect.ValueOf(&cfg).Elem(), path, value) == nil
}

// fieldExists reports whether node.Config has a field at path.
func fieldExists(path string) bool {
	v := reflect.ValueOf(node.Config{})
	for _, name := range strings.Split(path, ".") {
		if v.Kind() != reflect.Struct {
			return false
		}
		v = v.FieldByName(name)
		if !v.IsValid() {
			return false
		}
	}
	return true
}

// setField assigns value to the field at path of v, allocating a pointer
// field when the value is not a pointer.
func setField(v reflect.Value, path string, value any) error {
	for _, name := range strings.Split(path, ".") {
		if v.Kind() != reflect.Struct {
			return fmt.Errorf("node.Config: %s: %s is not a struct", path, v.Type())
		}
		v = v.FieldByName(name)
		if !v.IsValid() {
			return fmt.Errorf("node.Config has no field %s", path)
		}
	}
	val := reflect.ValueOf(value)
	if v.Kind() == reflect.Pointer && val.Kind() != reflect.Pointer {
		p := reflect.New(v.Type().Elem())
		if !val.Type().ConvertibleTo(p.Elem().Type()) {
			return fmt.Errorf("node.Config.%s: cannot hold %T", path, value)
		}
		p.Elem().Set(val.Convert(p.Elem().Type()))
		v.Set(p)
		return nil
	}
	if !val.Type().ConvertibleTo(v.Type()) {
		return fmt.Errorf("node.Config.%s: cannot hold %T", path, value)
	}
	v.Set(val.Convert(v.Type()))
	return nil
}

// requireNodeField marks the test as a known gap when node.Config has no
// field at path, so that it skips until the feature exists.
func requireNodeField(t testing.TB, path string, value any, feature string) {
	t.Helper()
	if externalAddr() != "" {
		t.Skipf("needs the node setting %s; %s points at an external broker", path, envAddr)
	}
	if hasField(path, value) {
		return
	}
	if os.Getenv(envStrict) == "1" {
		t.Fatalf("%s: node.Config has no field %s", feature, path)
	}
	recordResult(t)
	gapSkip(t, feature+" is not configurable", fmt.Sprintf("node.Config has no field %s", path))
}

// Results of the run, for the summary.
var results struct {
	sync.Mutex
	byTest map[string]string // top-level test name -> "pass", "fail", "skip" or "gap"
	gaps   map[string]string // top-level test name -> known gap reason
}

// recordResult registers a cleanup that records how the top-level test
// ended. Subtests record into their parent's entry.
func recordResult(t testing.TB) {
	name, _, _ := strings.Cut(t.Name(), "/")
	t.Cleanup(func() {
		results.Lock()
		defer results.Unlock()
		if results.byTest == nil {
			results.byTest = make(map[string]string)
		}
		status := "pass"
		switch {
		case t.Failed():
			status = "fail"
		case results.gaps[name] != "":
			status = "gap"
		case t.Skipped():
			status = "skip"
		}
		// A failure anywhere in the test wins over a pass of another subtest.
		if prev := results.byTest[name]; prev == "fail" || prev == "gap" && status == "pass" {
			return
		}
		results.byTest[name] = status
	})
}
