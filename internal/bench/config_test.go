package bench

import (
	"strings"
	"testing"
	"time"
)

func TestConfig_DefaultIsValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig is invalid: %v", err)
	}
	if cfg.Addr != "127.0.0.1:1883" {
		t.Errorf("default address %q, expected the loopback address 127.0.0.1:1883", cfg.Addr)
	}
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		field  string // expected at the start of the error
	}{
		{"addr-without-port", func(c *Config) { c.Addr = "127.0.0.1" }, "address"},
		{"addr-port-zero", func(c *Config) { c.Addr = "127.0.0.1:0" }, "address"},
		{"addr-no-host", func(c *Config) { c.Addr = ":1883" }, "address"},
		{"scenario", func(c *Config) { c.Scenario = "mesh" }, "scenario"},
		{"clients-zero", func(c *Config) { c.Clients = 0 }, "clients"},
		{"clients-too-many", func(c *Config) { c.Clients = MaxClients + 1 }, "clients"},
		{"qos-3", func(c *Config) { c.QoS = 3 }, "qos"},
		{"payload-below-header", func(c *Config) { c.PayloadSize = HeaderSize - 1 }, "payload size"},
		{"inflight-zero", func(c *Config) { c.Inflight = 0 }, "inflight"},
		{"rate-negative", func(c *Config) { c.Rate = -1 }, "rate"},
		{"duration-zero", func(c *Config) { c.Duration = 0 }, "duration"},
		{"duration-too-long", func(c *Config) { c.Duration = MaxDuration + time.Second }, "duration"},
		{"count-too-large", func(c *Config) { c.Count = MaxCount + 1 }, "count"},
		{"version-3", func(c *Config) { c.Version = 3 }, "protocol version"},
		{"session-expiry-zero", func(c *Config) { c.Persistent, c.Version, c.SessionExpiry = true, Version5, 0 }, "session expiry"},
		{"password-without-username", func(c *Config) { c.Password = "secret" }, "password"},
		{"topic-prefix-wildcard", func(c *Config) { c.TopicPrefix = "bench/#" }, "topic prefix"},
		{"topic-prefix-empty", func(c *Config) { c.TopicPrefix = "" }, "topic prefix"},
		{"client-prefix-empty", func(c *Config) { c.ClientPrefix = "" }, "client prefix"},
		{"sub-addr-without-port", func(c *Config) { c.SubAddr = "127.0.0.1" }, "subscriber address"},
		{"sub-addr-storm", func(c *Config) { c.Scenario, c.SubAddr = ScenarioStorm, "127.0.0.1:1884" }, "subscriber address"},
		{"shared-subscribers-zero", func(c *Config) { c.Scenario, c.SharedSubscribers = ScenarioShared, 0 }, "shared subscribers"},
		{"share-group-slash", func(c *Config) { c.Scenario, c.ShareGroup = ScenarioShared, "a/b" }, "share group"},
		{"share-group-empty", func(c *Config) { c.Scenario, c.ShareGroup = ScenarioShared, "" }, "share group"},
		{"parallelism-zero", func(c *Config) { c.Scenario, c.ConnectParallelism = ScenarioIdle, 0 }, "connect parallelism"},
		{"hold-negative", func(c *Config) { c.Scenario, c.Hold = ScenarioIdle, -time.Second }, "hold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted the configuration")
			}
			if !strings.HasPrefix(err.Error(), tt.field) {
				t.Errorf("error %q does not start with the field name %q", err, tt.field)
			}
		})
	}
}

func TestConfig_PasswordWithoutUsernameV5(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Version = Version5
	cfg.Password = "secret"
	if err := cfg.Validate(); err != nil {
		t.Errorf("MQTT 5.0 allows a password without a username, but Validate returned %v", err)
	}
}

func TestTopology_Sources(t *testing.T) {
	tests := []struct {
		scenario      Scenario
		pubs, subs    int
		filter        string
		first, n, sub int
	}{
		{ScenarioPairs, 4, 4, "bench/2", 2, 1, 2},
		{ScenarioFanIn, 4, 1, "bench/+", 0, 4, 0},
		{ScenarioFanOut, 1, 4, "bench/0", 0, 1, 3},
	}
	for _, tt := range tests {
		t.Run(string(tt.scenario), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Scenario = tt.scenario
			cfg.Clients = 4
			topo := cfg.topology()
			if topo.publishers != tt.pubs || topo.subscribers != tt.subs {
				t.Errorf("%d publishers and %d subscribers, expected %d and %d", topo.publishers, topo.subscribers, tt.pubs, tt.subs)
			}
			if f := topo.subscriberFilter("bench", tt.sub); f != tt.filter {
				t.Errorf("subscriber %d filter %q, expected %q", tt.sub, f, tt.filter)
			}
			first, n := topo.sources(tt.sub)
			if first != tt.first || n != tt.n {
				t.Errorf("subscriber %d hears publishers [%d, %d), expected [%d, %d)", tt.sub, first, first+n, tt.first, tt.first+tt.n)
			}
		})
	}
}

func TestConfig_ValidateTLSAndBrokerGC(t *testing.T) {
	idle := func(c *Config) { c.Scenario, c.BrokerPID = ScenarioIdle, 1 }
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string // "" for valid
	}{
		{"tls-system-roots", func(c *Config) { c.TLS = true }, ""},
		{"tls-cafile", func(c *Config) { c.TLS, c.CAFile = true, "ca.pem" }, ""},
		{"tls-server-name", func(c *Config) { c.TLS, c.ServerName = true, "broker.example" }, ""},
		{"tls-insecure", func(c *Config) { c.TLS, c.InsecureSkipVerify = true, true }, ""},
		{"cafile-without-tls", func(c *Config) { c.CAFile = "ca.pem" }, "tls: a CA file (--cafile) needs TLS"},
		{"server-name-without-tls", func(c *Config) { c.ServerName = "b" }, "tls: a server name"},
		{"insecure-without-tls", func(c *Config) { c.InsecureSkipVerify = true }, "tls: skipping verification"},
		{"insecure-with-cafile", func(c *Config) { c.TLS, c.InsecureSkipVerify, c.CAFile = true, true, "ca.pem" }, "tls: a CA file (--cafile) and skipping"},
		{"server-name-with-slash", func(c *Config) { c.TLS, c.ServerName = true, "a/b" }, "tls: server name"},
		{"gc-url-idle", func(c *Config) { idle(c); c.BrokerGCURL = "http://127.0.0.1:8080/debug/free-memory" }, ""},
		{"gc-url-https", func(c *Config) { idle(c); c.BrokerGCURL = "https://[::1]:8443/debug/free-memory" }, ""},
		{"gc-url-pairs", func(c *Config) { c.BrokerPID, c.BrokerGCURL = 1, "http://127.0.0.1:8080/x" }, "broker gc url: only the idle scenario"},
		{"gc-url-without-pid", func(c *Config) { c.Scenario, c.BrokerGCURL = ScenarioIdle, "http://127.0.0.1:8080/x" }, "broker gc url: a forced collection"},
		{"gc-url-scheme", func(c *Config) { idle(c); c.BrokerGCURL = "ftp://127.0.0.1/x" }, "broker gc url:"},
		{"gc-url-relative", func(c *Config) { idle(c); c.BrokerGCURL = "/debug/free-memory" }, "broker gc url:"},
		{"gc-url-no-host", func(c *Config) { idle(c); c.BrokerGCURL = "http:///x" }, "broker gc url:"},
		{"gc-url-user", func(c *Config) { idle(c); c.BrokerGCURL = "http://u:p@127.0.0.1/x" }, "broker gc url:"},
		{"gc-url-invalid", func(c *Config) { idle(c); c.BrokerGCURL = "http://127.0.0.1:x:y/%zz" }, "broker gc url:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate: %v, expected a valid configuration", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Errorf("Validate: %v, expected an error starting with %q", err, tt.wantErr)
			}
		})
	}
}
