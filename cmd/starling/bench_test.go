package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/internal/bench"
)

func TestParseBenchFlags_NewScenarios(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, cfg bench.Config)
	}{
		{"shared", []string{"--scenario", "shared", "-n", "5", "--subs", "3", "--group", "g"}, func(t *testing.T, cfg bench.Config) {
			if cfg.Scenario != bench.ScenarioShared || cfg.Clients != 5 || cfg.SharedSubscribers != 3 || cfg.ShareGroup != "g" {
				t.Errorf("scenario %q, %d publishers, %d members of group %q: expected shared, 5, 3, g", cfg.Scenario, cfg.Clients, cfg.SharedSubscribers, cfg.ShareGroup)
			}
		}},
		{"storm", []string{"--scenario", "storm", "-n", "2000", "--parallel", "128"}, func(t *testing.T, cfg bench.Config) {
			if cfg.Scenario != bench.ScenarioStorm || cfg.ConnectParallelism != 128 {
				t.Errorf("scenario %q, parallelism %d: expected storm, 128", cfg.Scenario, cfg.ConnectParallelism)
			}
		}},
		{"idle", []string{"--scenario", "idle", "--hold", "3s"}, func(t *testing.T, cfg bench.Config) {
			if cfg.Scenario != bench.ScenarioIdle || cfg.Hold != 3*time.Second {
				t.Errorf("scenario %q, hold %v: expected idle, 3s", cfg.Scenario, cfg.Hold)
			}
		}},
		{"sub-addr", []string{"--addr", "127.0.0.1:1883", "--sub-addr", "127.0.0.2:1884"}, func(t *testing.T, cfg bench.Config) {
			if cfg.Addr != "127.0.0.1:1883" || cfg.SubAddr != "127.0.0.2:1884" {
				t.Errorf("addr %q, sub addr %q", cfg.Addr, cfg.SubAddr)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := parseBenchFlags(append(tt.args, "--progress=false"), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestParseBenchFlags_RejectsSubAddrForIdle(t *testing.T) {
	_, _, err := parseBenchFlags([]string{"--scenario", "idle", "--sub-addr", "127.0.0.1:1884"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "subscriber address") {
		t.Errorf("error %v, expected one naming the subscriber address", err)
	}
}

func TestParseBenchFlags_TLSAndBrokerGC(t *testing.T) {
	cfg, _, err := parseBenchFlags([]string{"--progress=false", "--tls", "--cafile", "ca.pem", "--server-name", "broker.example",
		"--scenario", "idle", "--broker-pid", "42", "--broker-gc-url", "http://127.0.0.1:18889/debug/free-memory"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.TLS || cfg.CAFile != "ca.pem" || cfg.ServerName != "broker.example" || cfg.InsecureSkipVerify {
		t.Errorf("TLS %v, CA file %q, server name %q, insecure %v", cfg.TLS, cfg.CAFile, cfg.ServerName, cfg.InsecureSkipVerify)
	}
	if cfg.BrokerGCURL != "http://127.0.0.1:18889/debug/free-memory" || cfg.BrokerPID != 42 {
		t.Errorf("broker gc url %q, pid %d", cfg.BrokerGCURL, cfg.BrokerPID)
	}

	cfg, _, err = parseBenchFlags([]string{"--progress=false", "--tls", "--insecure"}, io.Discard)
	if err != nil || !cfg.InsecureSkipVerify {
		t.Errorf("--tls --insecure: error %v, insecure %v", err, cfg.InsecureSkipVerify)
	}
}

func TestParseBenchFlags_RejectsInvalidTLSAndBrokerGC(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--cafile", "ca.pem"}, "--cafile"},
		{[]string{"--insecure"}, "--insecure"},
		{[]string{"--server-name", "b"}, "--server-name"},
		{[]string{"--tls", "--insecure", "--cafile", "ca.pem"}, "exclude each other"},
		{[]string{"--broker-gc-url", "http://127.0.0.1:1/x", "--broker-pid", "1"}, "only the idle scenario"},
		{[]string{"--scenario", "idle", "--broker-gc-url", "http://127.0.0.1:1/x"}, "--broker-pid"},
		{[]string{"--scenario", "idle", "--broker-pid", "1", "--broker-gc-url", "127.0.0.1:1/x"}, "http://"},
	}
	for _, tt := range tests {
		_, _, err := parseBenchFlags(append(tt.args, "--progress=false"), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: error %v, expected one containing %q", tt.args, err, tt.wantErr)
		}
	}
}
