package bench

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/starling-mqtt/starling/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startNode starts an in-process Starling node on a free loopback port and
// returns its address. The node shuts down when the test ends.
func startNode(t *testing.T) string {
	t.Helper()
	return startNodeWith(t, node.ListenerConfig{URL: "tcp://127.0.0.1:0"})
}

// startNodeWith starts an in-process node with one listener configured by
// lc and returns its address. The node shuts down when the test ends.
func startNodeWith(t *testing.T, lc node.ListenerConfig) string {
	t.Helper()
	srv, err := node.New(node.Config{
		Listeners: []node.ListenerConfig{lc},
		DataDir:   t.TempDir(),
		Logger:    slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("create node: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shut down node: %v", err)
		}
	})
	return srv.Addrs()[0].String()
}

// testLogWriter sends the node's warnings and errors to the test log, where
// they explain a failed check such as loss from a full session queue.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// smallConfig returns a one-second run of two pairs against addr.
func smallConfig(addr string) Config {
	cfg := DefaultConfig()
	cfg.Addr = addr
	cfg.Clients = 2
	cfg.Duration = time.Second
	cfg.Drain = 5 * time.Second
	cfg.ClientPrefix = "test"
	return cfg
}

// checkComplete fails the test unless every message sent was delivered
// once, in order, and the run had no errors.
func checkComplete(t *testing.T, res *Result) {
	t.Helper()
	if len(res.Errors) > 0 {
		t.Errorf("errors: %v", res.Errors)
	}
	if res.Sent == 0 {
		t.Error("nothing sent")
	}
	if res.Confirmed != res.Sent {
		t.Errorf("confirmed %d of %d sent", res.Confirmed, res.Sent)
	}
	if res.Lost != 0 {
		t.Errorf("lost %d of %d expected", res.Lost, res.Expected)
	}
	if res.Received != res.Expected {
		t.Errorf("received %d, expected %d", res.Received, res.Expected)
	}
	if res.Duplicates != 0 {
		t.Errorf("%d duplicates", res.Duplicates)
	}
	if res.OutOfOrder != 0 {
		t.Errorf("%d out of order", res.OutOfOrder)
	}
	if res.Stale != 0 || res.Foreign != 0 || res.Unexpected != 0 || res.Rejected != 0 {
		t.Errorf("stale %d, foreign %d, unexpected %d, rejected %d: expected none", res.Stale, res.Foreign, res.Unexpected, res.Rejected)
	}
	if res.Latency.Count != res.Received {
		t.Errorf("latency of %d messages recorded, expected %d", res.Latency.Count, res.Received)
	}
	if res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 || res.Latency.Max < res.Latency.P999 {
		t.Errorf("latency percentiles out of order: %+v", res.Latency)
	}
}

func TestRun_PairsAgainstNode(t *testing.T) {
	// At a fixed rate, so that no subscriber falls behind its publisher: a
	// node drops the oldest queued message of a session whose queue is
	// full, and under the race detector a saturating run can get there.
	addr := startNode(t)
	tests := []struct {
		name    string
		qos     byte
		version byte
	}{
		{"qos0-v311", 0, Version311},
		{"qos1-v311", 1, Version311},
		{"qos1-v5", 1, Version5},
		{"qos2-v5", 2, Version5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := smallConfig(addr)
			cfg.QoS = tt.qos
			cfg.Version = tt.version
			cfg.ClientPrefix = "pairs-" + tt.name
			cfg.Rate = 2000
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkComplete(t, res)
			if res.StoppedBy != "duration" {
				t.Errorf("stopped by %q, expected duration", res.StoppedBy)
			}
			if res.Publishers != 2 || res.Subscribers != 2 {
				t.Errorf("%d publishers and %d subscribers, expected 2 and 2", res.Publishers, res.Subscribers)
			}
			if res.Expected != res.Sent {
				t.Errorf("expected %d deliveries for %d messages sent to pairs", res.Expected, res.Sent)
			}
		})
	}
}

func TestRun_PairsSaturating(t *testing.T) {
	cfg := smallConfig(startNode(t))
	cfg.QoS = 1
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}

	// Loss is allowed here (see TestRun_PairsAgainstNode), but the counts
	// must add up and nothing may arrive twice or out of order.
	if len(res.Errors) > 0 {
		t.Errorf("errors: %v", res.Errors)
	}
	if res.Sent == 0 || res.Confirmed != res.Sent {
		t.Errorf("confirmed %d of %d sent", res.Confirmed, res.Sent)
	}
	if res.Received+res.Lost != res.Expected {
		t.Errorf("received %d + lost %d != expected %d", res.Received, res.Lost, res.Expected)
	}
	if res.Duplicates != 0 || res.OutOfOrder != 0 {
		t.Errorf("%d duplicates and %d out of order, expected none", res.Duplicates, res.OutOfOrder)
	}
	if res.ReceiveRate <= 0 || res.SendRate <= 0 {
		t.Errorf("send rate %v and receive rate %v, expected both > 0", res.SendRate, res.ReceiveRate)
	}
}

func TestRun_FanOutCount(t *testing.T) {
	cfg := smallConfig(startNode(t))
	cfg.Scenario = ScenarioFanOut
	cfg.Clients = 3
	cfg.QoS = 1
	cfg.Count = 200
	cfg.Duration = 30 * time.Second

	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkComplete(t, res)
	if res.StoppedBy != "count" {
		t.Errorf("stopped by %q, expected count", res.StoppedBy)
	}
	if res.Sent != 200 {
		t.Errorf("sent %d, expected 200", res.Sent)
	}
	if res.Received != 600 {
		t.Errorf("received %d, expected 600 (200 to each of 3 subscribers)", res.Received)
	}
}

func TestRun_FanInRate(t *testing.T) {
	cfg := smallConfig(startNode(t))
	cfg.Scenario = ScenarioFanIn
	cfg.Clients = 3
	cfg.Rate = 300
	cfg.Duration = time.Second

	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkComplete(t, res)
	// 300 msg/s for 1 s: 100 per publisher, unless a sender is so late
	// that the end comes first.
	if res.Sent < 250 || res.Sent > 300 {
		t.Errorf("sent %d at 300 msg/s for 1 s, expected about 300", res.Sent)
	}
	if res.Subscribers != 1 || res.Publishers != 3 {
		t.Errorf("%d publishers and %d subscribers, expected 3 and 1", res.Publishers, res.Subscribers)
	}
}

func TestRun_BrokerUsageOfSelf(t *testing.T) {
	// The node runs in this process, so sampling this process samples it.
	cfg := smallConfig(startNode(t))
	cfg.BrokerPID = os.Getpid()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Broker == nil {
		t.Fatalf("no broker usage; errors: %v", res.Errors)
	}
	if res.Broker.CPUSeconds <= 0 {
		t.Errorf("broker CPU %v s, expected > 0", res.Broker.CPUSeconds)
	}
	if res.Broker.RSSAfterBytes <= 0 {
		t.Errorf("broker RSS %d bytes, expected > 0", res.Broker.RSSAfterBytes)
	}
	if res.Broker.CPUSecondsPerMillion <= 0 {
		t.Errorf("CPU per million %v, expected > 0", res.Broker.CPUSecondsPerMillion)
	}
}

func TestRun_Interrupted(t *testing.T) {
	cfg := smallConfig(startNode(t))
	cfg.Duration = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()

	start := time.Now()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.StoppedBy != "interrupted" {
		t.Errorf("stopped by %q, expected interrupted", res.StoppedBy)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("interrupted run took %v", took)
	}
}

func TestRun_ConnectRefused(t *testing.T) {
	// A port that was free a moment ago: nothing listens on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg := smallConfig(addr)
	if _, err := Run(context.Background(), cfg); err == nil {
		t.Fatal("Run succeeded against a closed port")
	}
}

func TestRun_BrokerStopsReading(t *testing.T) {
	// A fake broker that accepts CONNECT and SUBSCRIBE and then never reads
	// again: the run must still end within its bounds.
	addr := startSilentBroker(t)
	cfg := smallConfig(addr)
	cfg.QoS = 1
	cfg.Duration = 300 * time.Millisecond
	cfg.Drain = 300 * time.Millisecond

	start := time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("run against a silent broker took %v", took)
	}
	if res.Lost == 0 {
		t.Errorf("no loss reported against a broker that delivers nothing: %+v", res)
	}
}

func TestRun_SharedGroup(t *testing.T) {
	cfg := smallConfig(startNode(t))
	cfg.Scenario = ScenarioShared
	cfg.Clients = 3
	cfg.SharedSubscribers = 3
	cfg.QoS = 1
	cfg.Rate = 600

	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkComplete(t, res)
	if res.Publishers != 3 || res.Subscribers != 3 {
		t.Errorf("%d publishers and %d subscribers, expected 3 and 3", res.Publishers, res.Subscribers)
	}
	if res.Expected != res.Sent {
		t.Errorf("expected %d deliveries for %d messages sent to one group", res.Expected, res.Sent)
	}
	if res.GroupDuplicates != 0 {
		t.Errorf("%d messages reached more than one member", res.GroupDuplicates)
	}
	if res.ShareGroup != "bench" {
		t.Errorf("share group %q, expected bench", res.ShareGroup)
	}
}

func TestRun_SubAddr(t *testing.T) {
	t.Run("same-node", func(t *testing.T) {
		addr := startNode(t)
		cfg := smallConfig(addr)
		cfg.SubAddr = addr
		cfg.Rate = 400
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkComplete(t, res)
		if res.SubAddr != addr {
			t.Errorf("sub addr %q, expected %q", res.SubAddr, addr)
		}
	})

	t.Run("separate-nodes", func(t *testing.T) {
		// Two nodes that form no cluster: the clients connect, and nothing
		// published on one reaches a subscriber of the other.
		cfg := smallConfig(startNode(t))
		cfg.SubAddr = startNode(t)
		cfg.Rate = 400
		cfg.Drain = 200 * time.Millisecond
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Errors) > 0 {
			t.Errorf("errors: %v", res.Errors)
		}
		if res.Sent == 0 || res.Received != 0 || res.Lost != res.Sent {
			t.Errorf("sent %d, received %d, lost %d: expected all lost", res.Sent, res.Received, res.Lost)
		}
	})
}
