package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/storage"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "starling.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFile_AllSections(t *testing.T) {
	path := writeConfig(t, `
data_dir: /var/lib/starling
durability: relaxed
listeners:
  - url: tcp://127.0.0.1:1884
keepalive:
  connect_timeout: 3s
limits:
  max_queued_messages: 5
  queue_overflow: drop_newest
features:
  max_qos: 1
  shared_strategy: sticky
`)
	fc, err := loadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := buildConfig(fc, settings{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/starling" || cfg.Durability != storage.DurabilityRelaxed {
		t.Errorf("data_dir %q durability %v", cfg.DataDir, cfg.Durability)
	}
	if cfg.ConnectTimeout != 3*time.Second {
		t.Errorf("connect timeout %v", cfg.ConnectTimeout)
	}
	if cfg.Limits.MaxQueuedMessages != 5 || cfg.Limits.QueueOverflow != "drop_newest" {
		t.Errorf("limits %+v", cfg.Limits)
	}
	if *cfg.Features.MaxQoS != 1 || cfg.Features.SharedStrategy != "sticky" {
		t.Errorf("features %+v", cfg.Features)
	}
	if cfg.Listeners[0].URL != "tcp://127.0.0.1:1884" {
		t.Errorf("listeners %+v", cfg.Listeners)
	}
}

func TestLoadFile_UnknownKeyRejected(t *testing.T) {
	path := writeConfig(t, "limits:\n  max_queued_mesages: 5\n")
	_, err := loadFile(path)
	if err == nil || !strings.Contains(err.Error(), "max_queued_mesages") {
		t.Fatalf("err = %v, want one naming the unknown key", err)
	}
}

func TestBuildConfig_InvalidValuesNamed(t *testing.T) {
	cases := []struct {
		name string
		body string
		want string
	}{
		{"overflow", "limits:\n  queue_overflow: drop_all\n", "limits.queue_overflow"},
		{"durability", "durability: fast\n", "durability"},
		{"listener-scheme", "listeners:\n  - url: udp://127.0.0.1:1\n", "listeners[0]"},
		{"max-qos", "features:\n  max_qos: 3\n", "features.max_qos"},
		{"log-format", "log:\n  format: xml\n", "log.format"},
		{"duration", "keepalive:\n  connect_timeout: soon\n", "invalid duration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc, err := loadFile(writeConfig(t, tc.body))
			if err == nil {
				_, _, err = buildConfig(fc, settings{})
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestSettings_FlagsOverrideEnvOverrideFile(t *testing.T) {
	t.Setenv("STARLING_DATA_DIR", "/from/env")
	t.Setenv("STARLING_LISTEN", "tcp://127.0.0.1:2001, tcp://127.0.0.1:2002")
	t.Setenv("STARLING_NODE_NAME", "env-node")

	st := settings{nodeName: "flag-node"}
	st.applyEnv(map[string]bool{"node-name": true})
	fc := fileConfig{DataDir: "/from/file", NodeName: "file-node"}
	cfg, _, err := buildConfig(fc, st)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/from/env" {
		t.Errorf("data dir %q, want the environment's", cfg.DataDir)
	}
	if cfg.NodeName != "flag-node" {
		t.Errorf("node name %q, want the flag's", cfg.NodeName)
	}
	if len(cfg.Listeners) != 2 || cfg.Listeners[1].URL != "tcp://127.0.0.1:2002" {
		t.Errorf("listeners %+v", cfg.Listeners)
	}
}
