package membership

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func validConfig() Config {
	cfg := DefaultConfig()
	cfg.NodeName = "starling-0"
	cfg.SiteID = "0123456789abcdef0123456789abcdef"
	return cfg
}

func TestConfig_Validate(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(*Config)
		wantErr string // substring; empty means valid
	}{
		{"default-loopback", func(c *Config) {}, ""},
		{"loopback-127.0.0.2", func(c *Config) { c.BindAddr = "127.0.0.2:0" }, ""},
		{"loopback-ipv6", func(c *Config) { c.BindAddr = "[::1]:7946" }, ""},
		{"advertise-localhost", func(c *Config) { c.AdvertiseAddr = "localhost:7946" }, ""},
		{"bind-any-without-key", func(c *Config) { c.BindAddr = "0.0.0.0:7946" }, "Config.GossipKey"},
		{"bind-any-names-insecure", func(c *Config) { c.BindAddr = "0.0.0.0:7946" }, "Config.Insecure"},
		{"bind-any-with-key", func(c *Config) { c.BindAddr = "0.0.0.0:7946"; c.GossipKey = testKey }, ""},
		{"bind-any-insecure", func(c *Config) { c.BindAddr = "0.0.0.0:7946"; c.Insecure = true }, ""},
		{"bind-private-without-key", func(c *Config) { c.BindAddr = "10.1.2.3:7946" }, "Config.BindAddr 10.1.2.3:7946 is not a loopback address"},
		{"advertise-ip-without-key", func(c *Config) { c.AdvertiseAddr = "10.1.2.3" }, "Config.AdvertiseAddr 10.1.2.3 is not a loopback address"},
		{"advertise-name-without-key", func(c *Config) { c.AdvertiseAddr = "starling-0.starling.svc" }, "Config.GossipKey"},
		{"advertise-name-insecure", func(c *Config) { c.AdvertiseAddr = "starling-0.starling.svc:7946"; c.Insecure = true }, ""},
		{"advertise-unspecified", func(c *Config) { c.AdvertiseAddr = "0.0.0.0"; c.Insecure = true }, "unspecified"},
		{"advertise-bad-port", func(c *Config) { c.AdvertiseAddr = "127.0.0.1:70000" }, "Config.AdvertiseAddr"},
		{"key-16", func(c *Config) { c.GossipKey = testKey[:16] }, ""},
		{"key-24", func(c *Config) { c.GossipKey = testKey[:24] }, ""},
		{"key-20", func(c *Config) { c.GossipKey = testKey[:20] }, "Config.GossipKey is 20 bytes"},
		{"missing-name", func(c *Config) { c.NodeName = "" }, "Config.NodeName is required"},
		{"name-with-slash", func(c *Config) { c.NodeName = "a/b" }, "Config.NodeName"},
		{"name-with-space", func(c *Config) { c.NodeName = "a b" }, "Config.NodeName"},
		{"name-too-long", func(c *Config) { c.NodeName = strings.Repeat("n", 254) }, "Config.NodeName is 254 bytes"},
		{"missing-site-id", func(c *Config) { c.SiteID = "" }, "Config.SiteID"},
		{"site-id-with-dot", func(c *Config) { c.SiteID = "a.b" }, "Config.SiteID"},
		{"missing-bind", func(c *Config) { c.BindAddr = "" }, "Config.BindAddr is required"},
		{"bind-host-name", func(c *Config) { c.BindAddr = "localhost:7946" }, "memberlist binds IP addresses only"},
		{"bind-without-port", func(c *Config) { c.BindAddr = "127.0.0.1" }, "Config.BindAddr"},
		{"join-host-port", func(c *Config) { c.Join = []string{"127.0.0.2:7946", "starling.svc", "[::1]:7946"} }, ""},
		{"join-empty-entry", func(c *Config) { c.Join = []string{""} }, "Config.Join[0]"},
		{"join-bad-port", func(c *Config) { c.Join = []string{"127.0.0.2:0"} }, "Config.Join[0]"},
		{"join-node-name-syntax", func(c *Config) { c.Join = []string{"n1/127.0.0.2:7946"} }, "Config.Join[0]"},
		{"unknown-profile", func(c *Config) { c.Profile = "wan" }, "Config.Profile"},
		{"empty-profile", func(c *Config) { c.Profile = "" }, ""},
		{"negative-buffer", func(c *Config) { c.EventBuffer = -1 }, "Config.EventBuffer"},
		{"meta-string-too-long", func(c *Config) { c.Meta.PeerAddr = strings.Repeat("p", 256) }, "Config.Meta.PeerAddr"},
		{"meta-too-long", func(c *Config) {
			c.Meta.PeerAddr = strings.Repeat("p", 255)
			c.Meta.MQTTAddr = strings.Repeat("m", 255)
		}, "memberlist's limit of 512"},
		{"meta-invalid-utf8", func(c *Config) { c.Meta.MQTTAddr = "\xff" }, "Config.Meta.MQTTAddr"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tc.wantErr)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Validate() = %v, want it to wrap ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestStart_RejectsUnencryptedGossipOffLoopback(t *testing.T) {
	cfg := validConfig()
	cfg.BindAddr = "0.0.0.0:0"
	if _, err := Start(context.Background(), cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Start on 0.0.0.0 without a key = %v, want ErrInvalidConfig", err)
	}
}

func TestStart_InsecureLogsWarningEveryStart(t *testing.T) {
	for i := range 2 {
		var buf bytes.Buffer
		cfg := testConfig(t, "a", "127.0.0.2")
		cfg.Insecure = true
		cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
		m, err := Start(context.Background(), cfg)
		if err != nil {
			t.Fatalf("Start #%d: %v", i+1, err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
		if !strings.Contains(buf.String(), "level=WARN msg=\"insecure mode") {
			t.Errorf("start #%d logged %q, want a warning about insecure mode", i+1, buf.String())
		}
	}
}

func TestConfig_SeedPort(t *testing.T) {
	cases := []struct {
		bind string
		want int
	}{
		{"127.0.0.1:7000", 7000},
		{"127.0.0.1:0", DefaultGossipPort},
	}
	for _, tc := range cases {
		t.Run(tc.bind, func(t *testing.T) {
			cfg := Config{BindAddr: tc.bind}
			if got := cfg.seedPort(); got != tc.want {
				t.Errorf("seedPort() = %d, want %d", got, tc.want)
			}
		})
	}
}
