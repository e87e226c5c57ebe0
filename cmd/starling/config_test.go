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

func TestLoadFile_ListenersAndAuth(t *testing.T) {
	path := writeConfig(t, `
listeners:
  - name: devices
    url: tls://127.0.0.1:8883
    cert_identity: san-dns
    tls:
      cert_file: /etc/starling/server.pem
      key_file: /etc/starling/server-key.pem
      client_auth: required
      client_ca_file: /etc/starling/ca.pem
      crl_files: [/etc/starling/ca.crl]
    deny: [10.9.0.0/16]
auth:
  groups:
    - name: fleet
      roles: [device]
  roles:
    - name: device
      rules:
        - {action: publish, permission: allow, topic: "devices/%c/#"}
  users:
    - name: legacy
      password_hash: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
      groups: [fleet]
`)
	fc, err := loadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := buildConfig(fc, settings{})
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Listeners[0]
	if l.Name != "devices" || l.TLS == nil || l.TLS.ClientAuth != "required" || len(l.Deny) != 1 || l.CertIdentity != "san-dns" {
		t.Errorf("listener %+v", l)
	}
	seed := cfg.Auth.Seed
	if len(seed.Groups) != 1 || len(seed.Roles) != 1 || len(seed.Users) != 1 || seed.Users[0].Credentials.Kind != "bcrypt" {
		t.Errorf("seed %+v", seed)
	}
}

func TestLoadFile_InvalidRuleNamed(t *testing.T) {
	path := writeConfig(t, "auth:\n  roles:\n    - name: r\n      rules:\n        - {action: read, permission: allow, topic: a}\n")
	fc, err := loadFile(path)
	if err == nil {
		_, _, err = buildConfig(fc, settings{})
	}
	if err == nil || !strings.Contains(err.Error(), "auth.roles[0]") {
		t.Fatalf("err = %v, want one naming auth.roles[0]", err)
	}
}

func TestLoadFile_GlobalRules(t *testing.T) {
	path := writeConfig(t, `
auth:
  rules:
    - {subject: "client:sensor-*", action: publish, permission: allow, topic: "sensors/%c/#", max_qos: 1, priority: 10}
    - {subject: anonymous, action: all, permission: deny, topic: "#"}
`)
	fc, err := loadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := buildConfig(fc, settings{})
	if err != nil {
		t.Fatal(err)
	}
	rules := cfg.Auth.Seed.Rules
	if len(rules) != 2 || rules[0].Priority != 10 || *rules[0].MaxQoS != 1 || rules[1].Subject.String() != "anonymous" {
		t.Fatalf("rules %+v", rules)
	}
	bad := writeConfig(t, "auth:\n  rules:\n    - {subject: \"team:x\", action: all, permission: deny, topic: \"#\"}\n")
	if fc, err = loadFile(bad); err == nil {
		_, _, err = buildConfig(fc, settings{})
	}
	if err == nil || !strings.Contains(err.Error(), "auth.rules[0].subject") {
		t.Fatalf("err = %v, want one naming auth.rules[0].subject", err)
	}
}
