package bench

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node"
)

// connConfig returns a storm or idle run of 200 connections against addr.
func connConfig(addr string, scenario Scenario) Config {
	cfg := DefaultConfig()
	cfg.Addr = addr
	cfg.Scenario = scenario
	cfg.Clients = 200
	cfg.Duration = 20 * time.Second
	cfg.Hold = 500 * time.Millisecond
	cfg.ClientPrefix = "test-" + string(scenario)
	return cfg
}

func TestRun_StormAgainstNode(t *testing.T) {
	cfg := connConfig(startNode(t), ScenarioStorm)
	cfg.BrokerPID = os.Getpid()

	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Connections
	if s == nil {
		t.Fatal("no connection statistics")
	}
	if len(res.Errors) > 0 {
		t.Errorf("errors: %v", res.Errors)
	}
	if s.Opened != 200 || s.Failed != 0 {
		t.Errorf("opened %d and failed %d, expected 200 and 0", s.Opened, s.Failed)
	}
	if res.StoppedBy != "count" {
		t.Errorf("stopped by %q, expected count", res.StoppedBy)
	}
	if s.AcceptRate <= 0 || s.OpenSecs <= 0 {
		t.Errorf("accept rate %v over %v s, expected both > 0", s.AcceptRate, s.OpenSecs)
	}
	if s.ConnectLatency.Count != 200 {
		t.Errorf("connect latency of %d connections, expected 200", s.ConnectLatency.Count)
	}
	if s.SourceAddrs != 1 {
		t.Errorf("%d source addresses for 200 connections, expected 1", s.SourceAddrs)
	}
	if res.Broker == nil || res.Broker.CPUSeconds <= 0 {
		t.Errorf("broker usage %+v, expected CPU time > 0", res.Broker)
	}
}

func TestRun_StormCountsFailures(t *testing.T) {
	// A port that was free a moment ago: every attempt fails, and the storm
	// still tries them all and ends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg := connConfig(addr, ScenarioStorm)
	cfg.Clients = 20
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Connections; s.Opened != 0 || s.Failed != 20 {
		t.Errorf("opened %d and failed %d, expected 0 and 20", s.Opened, s.Failed)
	}
	if len(res.Errors) != maxErrors+1 {
		t.Errorf("%d error lines, expected %d and a count of the rest: %v", len(res.Errors), maxErrors+1, res.Errors)
	}
}

func TestRun_IdleAgainstNode(t *testing.T) {
	cfg := connConfig(startNode(t), ScenarioIdle)
	cfg.BrokerPID = os.Getpid()
	cfg.KeepAlive = 400 * time.Millisecond // forces PINGREQs during the hold
	cfg.Hold = time.Second

	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Connections
	if len(res.Errors) > 0 {
		t.Errorf("errors: %v", res.Errors)
	}
	if s.Opened != 200 || s.AliveAfterHold != 200 {
		t.Errorf("opened %d, %d alive after the hold, expected 200 and 200", s.Opened, s.AliveAfterHold)
	}
	if res.StoppedBy != "count" {
		t.Errorf("stopped by %q, expected count", res.StoppedBy)
	}
	if s.HoldSecs < 1 {
		t.Errorf("held %v s, expected at least 1", s.HoldSecs)
	}
	if s.FileLimit < 200+fileLimitMargin {
		t.Errorf("open file limit %d, expected at least %d", s.FileLimit, 200+fileLimitMargin)
	}
	if res.Broker == nil {
		t.Fatalf("no broker usage; errors: %v", res.Errors)
	}
	// The node shares this process with the clients, so the figure is only
	// checked for its arithmetic.
	want := float64(res.Broker.RSSAfterBytes-res.Broker.RSSBeforeBytes) / 200
	if s.RSSPerConnBytes != want {
		t.Errorf("RSS per connection %v, expected %v", s.RSSPerConnBytes, want)
	}
}

func TestRun_IdleStopsAtLimit(t *testing.T) {
	addr := startNodeWith(t, node.ListenerConfig{URL: "tcp://127.0.0.1:0", MaxConnections: 50})
	cfg := connConfig(addr, ScenarioIdle)
	cfg.ConnectParallelism = 1 // so that exactly the 51st attempt fails

	start := time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Connections
	if res.StoppedBy != "limit" {
		t.Errorf("stopped by %q, expected limit", res.StoppedBy)
	}
	if s.Opened != 50 || s.Failed != 1 {
		t.Errorf("opened %d and failed %d, expected 50 and 1", s.Opened, s.Failed)
	}
	if s.AliveAfterHold != 50 {
		t.Errorf("%d alive after the hold, expected 50", s.AliveAfterHold)
	}
	if len(res.Errors) != 1 {
		t.Errorf("errors %v, expected the one failed connection", res.Errors)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("idle run that hit a limit took %v", took)
	}
}

func TestRun_IdleInterrupted(t *testing.T) {
	cfg := connConfig(startNode(t), ScenarioIdle)
	cfg.Hold = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
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
		t.Errorf("interrupted idle run took %v", took)
	}
}

func TestLoopbackSources(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		n       int
		sources int
		last    string // source of connection n-1; "" for none
	}{
		{"one-source", "127.0.0.1:1883", 1000, 1, "127.1.0.1"},
		{"spread", "127.0.0.1:1883", 5000, 5, "127.1.0.5"},
		{"next-octet", "127.0.0.1:1883", 255 * connectionsPerSource, 255, "127.1.1.1"},
		{"other-loopback", "127.9.9.9:1883", 2, 1, "127.1.0.1"},
		{"not-loopback", "192.0.2.1:1883", 5000, 0, ""},
		{"host-name", "localhost:1883", 5000, 0, ""},
		{"ipv6-loopback", "[::1]:1883", 5000, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			source, n := loopbackSources(tt.addr, tt.n)
			if n != tt.sources {
				t.Errorf("%d sources, expected %d", n, tt.sources)
			}
			got := ""
			if a := source(tt.n - 1); a != nil {
				got = a.IP.String()
			}
			if got != tt.last {
				t.Errorf("source of connection %d is %q, expected %q", tt.n-1, got, tt.last)
			}
		})
	}
}

func TestRaiseFileLimit_KeepsHigherLimit(t *testing.T) {
	got, err := raiseFileLimit(1)
	if err != nil {
		t.Fatal(err)
	}
	if got < 1 {
		t.Errorf("limit %d, expected the current soft limit", got)
	}
}
