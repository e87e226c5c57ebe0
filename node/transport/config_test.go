package transport

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/internal/tlsutil"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url, transport, address, path string
	}{
		{"tcp://127.0.0.1:1883", TransportTCP, "127.0.0.1:1883", ""},
		{"tcp://:1883", TransportTCP, ":1883", ""},
		{"tls://[::1]:8883", TransportTLS, "[::1]:8883", ""},
		{"tls://localhost:8883/", TransportTLS, "localhost:8883", ""},
		{"ws://0.0.0.0:8080", TransportWS, "0.0.0.0:8080", DefaultWSPath},
		{"ws://0.0.0.0:8080/", TransportWS, "0.0.0.0:8080", "/"},
		{"wss://0.0.0.0:8443/mqtt/v1", TransportWSS, "0.0.0.0:8443", "/mqtt/v1"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			ep, err := parseURL(tc.url)
			if err != nil {
				t.Fatalf("parseURL: %v", err)
			}
			if ep.transport != tc.transport || ep.address != tc.address || ep.path != tc.path {
				t.Fatalf("parseURL = %+v, want %s %s %q", ep, tc.transport, tc.address, tc.path)
			}
		})
	}
}

func TestConfig_Validate(t *testing.T) {
	tlsOpts := &tlsutil.ServerOptions{CertFile: "c.pem", KeyFile: "k.pem"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // part of the error
	}{
		{"empty-url", Config{}, "Config.URL is empty"},
		{"bad-scheme", Config{URL: "mqtt://127.0.0.1:1883"}, `scheme "mqtt"`},
		{"no-port", Config{URL: "tcp://127.0.0.1"}, "has no port"},
		{"tcp-path", Config{URL: "tcp://127.0.0.1:1883/mqtt"}, "has a path"},
		{"query", Config{URL: "ws://127.0.0.1:80/mqtt?x=1"}, "query"},
		{"tls-without-options", Config{URL: "tls://127.0.0.1:8883"}, "Config.TLS is nil"},
		{"tcp-with-tls-options", Config{URL: "tcp://127.0.0.1:1883", TLS: tlsOpts}, "Config.TLS is set"},
		{"bad-allow", Config{URL: "tcp://:1883", Allow: []string{"10.0.0.0/33"}}, "Config.Allow[0]"},
		{"bad-deny", Config{URL: "tcp://:1883", Deny: []string{"127.0.0.1", "nonsense"}}, "Config.Deny[1]"},
		{"zone", Config{URL: "tcp://:1883", Deny: []string{"fe80::1%eth0"}}, "IPv6 zone"},
		{"proxy-without-trusted", Config{URL: "tcp://:1883", ProxyProtocol: true}, "Config.TrustedProxies is empty"},
		{"trusted-without-proxy", Config{URL: "tcp://:1883", TrustedProxies: []string{"10.0.0.1"}}, "ProxyProtocol is off"},
		{"bad-trusted", Config{URL: "tcp://:1883", ProxyProtocol: true, TrustedProxies: []string{"x"}}, "Config.TrustedProxies[0]"},
		{"negative-max-connections", Config{URL: "tcp://:1883", MaxConnections: -1}, "Config.MaxConnections"},
		{"negative-rate", Config{URL: "tcp://:1883", MaxConnRate: -1}, "Config.MaxConnRate"},
		{"nan-rate", Config{URL: "tcp://:1883", MaxConnRate: math.NaN()}, "Config.MaxConnRate"},
		{"negative-burst", Config{URL: "tcp://:1883", MaxConnBurst: -1}, "Config.MaxConnBurst"},
		{"negative-timeout", Config{URL: "tcp://:1883", TLSHandshakeTimeout: -time.Second}, "Config.TLSHandshakeTimeout"},
		{"negative-ws-size", Config{URL: "ws://:80", WSMaxMessageSize: -1}, "Config.WSMaxMessageSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted the config")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestConfig_Defaults(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig does not validate: %v", err)
	}
	if cfg.Name != cfg.URL || cfg.MaxConnections != DefaultMaxConnections || cfg.MaxConnRate != DefaultMaxConnRate ||
		cfg.MaxConnBurst != DefaultMaxConnBurst || cfg.ProxyHeaderTimeout != DefaultProxyHeaderTimeout ||
		cfg.TLSHandshakeTimeout != DefaultTLSHandshakeTimeout || cfg.WSHandshakeTimeout != DefaultWSHandshakeTimeout ||
		cfg.WSMaxMessageSize != DefaultWSMaxMessageSize || cfg.Logger == nil {
		t.Fatalf("DefaultConfig = %+v, want every default", cfg)
	}

	custom := Config{URL: "tcp://:1883", MaxConnRate: 10}
	if err := custom.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if custom.MaxConnBurst != 20 {
		t.Fatalf("MaxConnBurst = %d for rate 10, want 20", custom.MaxConnBurst)
	}
}

func TestTokenBucket(t *testing.T) {
	start := time.Unix(1000, 0)
	b := newTokenBucket(10, 3, start)
	for i := range 3 {
		if !b.take(start) {
			t.Fatalf("take %d of the burst failed", i)
		}
	}
	if b.take(start) {
		t.Fatal("take beyond the burst succeeded")
	}
	if b.take(start.Add(50 * time.Millisecond)) {
		t.Fatal("take after half a token succeeded")
	}
	if !b.take(start.Add(100 * time.Millisecond)) {
		t.Fatal("take after one token's time failed")
	}
	if b.take(start.Add(-time.Hour)) {
		t.Fatal("a clock that went backwards added a token")
	}

	// A long pause refills to the burst, no more.
	later := start.Add(time.Hour)
	for i := range 3 {
		if !b.take(later) {
			t.Fatalf("take %d after a pause failed", i)
		}
	}
	if b.take(later) {
		t.Fatal("bucket held more than its burst")
	}
}

func TestSlots(t *testing.T) {
	s := slots{max: 2}
	if !s.acquire() || !s.acquire() {
		t.Fatal("acquire within the maximum failed")
	}
	if s.acquire() {
		t.Fatal("acquire beyond the maximum succeeded")
	}
	if s.used.Load() != 2 {
		t.Fatalf("used = %d after a failed acquire, want 2", s.used.Load())
	}
	s.release()
	if !s.acquire() {
		t.Fatal("acquire after release failed")
	}
}

func TestReason_String(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		name := r.String()
		if name == "" || name == "unknown" || name == "none" || seen[name] {
			t.Fatalf("reason %d has name %q", int(r), name)
		}
		seen[name] = true
	}
	if Reason(-1).String() != "unknown" || reasonCount.String() != "unknown" {
		t.Fatal("out-of-range reasons are not unknown")
	}
}
