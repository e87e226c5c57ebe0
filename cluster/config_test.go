package cluster

import (
	"slices"
	"strings"
	"testing"
)

// validConfig returns a Config that Validate accepts.
func validConfig() Config {
	return Config{
		NodeName:   "starling-0",
		DataDir:    "/var/lib/starling",
		GossipBind: "127.0.0.1:7946",
		PeerBind:   "127.0.0.1:7947",
	}
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // a part of the error message; "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"valid-five-voters", func(c *Config) { c.Voters = 5 }, ""},
		{"valid-bootstrap-expect", func(c *Config) { c.BootstrapExpect = 3 }, ""},
		{"valid-bootstrap-peers", func(c *Config) { c.BootstrapPeers = []string{"a", "b", "c"} }, ""},
		{"valid-any-address-with-advertise", func(c *Config) {
			c.GossipBind, c.PeerBind, c.Advertise = "0.0.0.0:7946", "0.0.0.0:7947", "starling-0.starling"
		}, ""},
		{"missing-node-name", func(c *Config) { c.NodeName = "" }, "node name is required"},
		{"missing-data-dir", func(c *Config) { c.DataDir = "" }, "data directory is required"},
		{"missing-peer-bind", func(c *Config) { c.PeerBind = "" }, "--peer-bind is required"},
		{"missing-gossip-bind", func(c *Config) { c.GossipBind = "" }, "--cluster-bind is required"},
		{"voters-one", func(c *Config) { c.Voters = 1 }, "voters = 1"},
		{"voters-four", func(c *Config) { c.Voters = 4 }, "voters = 4"},
		{"voters-negative", func(c *Config) { c.Voters = -3 }, "voters = -3"},
		{"bootstrap-expect-negative", func(c *Config) { c.BootstrapExpect = -1 }, "bootstrap_expect = -1"},
		{"bootstrap-expect-and-peers", func(c *Config) {
			c.BootstrapExpect = 3
			c.BootstrapPeers = []string{"a"}
		}, "not both"},
		{"bootstrap-expect-name-without-ordinal", func(c *Config) {
			c.NodeName = "broker"
			c.BootstrapExpect = 3
		}, `"broker" does not`},
		{"gossip-any-ipv4-without-advertise", func(c *Config) { c.GossipBind = "0.0.0.0:7946" }, "0.0.0.0:7946 binds every address"},
		{"gossip-empty-host-without-advertise", func(c *Config) { c.GossipBind = ":7946" }, ":7946 binds every address"},
		{"peer-any-ipv6-without-advertise", func(c *Config) { c.PeerBind = "[::]:7947" }, "[::]:7947 binds every address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "cluster: ") {
				t.Errorf("Validate() = %q, want the prefix %q", err, "cluster: ")
			}
		})
	}
}

func TestConfig_BootstrapSet(t *testing.T) {
	tests := []struct {
		name       string
		self       string
		expect     int
		peers      []string
		seen       []string
		wantSet    []string
		wantMember bool
	}{
		{
			name: "explicit-peers-member", self: "b", peers: []string{"a", "b", "c"},
			seen: nil, wantSet: []string{"a", "b", "c"}, wantMember: true,
		},
		{
			name: "explicit-peers-not-member", self: "d", peers: []string{"a", "b", "c"},
			seen: []string{"a", "b", "c", "d"}, wantSet: []string{"a", "b", "c"}, wantMember: false,
		},
		{
			name: "explicit-peers-ignore-seen", self: "a", peers: []string{"a", "z"},
			seen: []string{"a", "b", "c"}, wantSet: []string{"a", "z"}, wantMember: true,
		},
		{
			name: "neither-expect-nor-peers", self: "n1",
			seen: []string{"n1", "n2", "n3"}, wantSet: nil, wantMember: false,
		},
		{
			name: "expect-ordinals-compared-as-numbers", self: "n2", expect: 3,
			seen:    []string{"n10", "n9", "n2", "n11", "n1"},
			wantSet: []string{"n1", "n2", "n9"}, wantMember: true,
		},
		{
			name: "expect-two-before-ten", self: "n10", expect: 2,
			seen:    []string{"n10", "n2", "n3"},
			wantSet: []string{"n2", "n3"}, wantMember: false,
		},
		{
			name: "expect-other-prefixes-ignored", self: "starling-1", expect: 3,
			seen:    []string{"other-0", "starling-2", "x", "starling-1", "starling-0", "starling", "starling-x-0"},
			wantSet: []string{"starling-0", "starling-1", "starling-2"}, wantMember: true,
		},
		{
			name: "expect-incomplete", self: "n1", expect: 3,
			seen:    []string{"n1", "n2", "m3"},
			wantSet: nil, wantMember: false,
		},
		{
			name: "expect-nothing-seen", self: "n1", expect: 3,
			seen: nil, wantSet: nil, wantMember: false,
		},
		{
			name: "expect-self-not-in-set", self: "n4", expect: 3,
			seen:    []string{"n4", "n3", "n2", "n1"},
			wantSet: []string{"n1", "n2", "n3"}, wantMember: false,
		},
		{
			name: "expect-zero-ordinal", self: "n0", expect: 1,
			seen:    []string{"n1", "n0"},
			wantSet: []string{"n0"}, wantMember: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{NodeName: tt.self, BootstrapExpect: tt.expect, BootstrapPeers: tt.peers}
			set, member := c.bootstrapSet(tt.seen)
			if !slices.Equal(set, tt.wantSet) {
				t.Errorf("bootstrapSet(%v) set = %v, want %v", tt.seen, set, tt.wantSet)
			}
			if member != tt.wantMember {
				t.Errorf("bootstrapSet(%v) member = %v, want %v", tt.seen, member, tt.wantMember)
			}
		})
	}
}

func TestConfig_SplitOrdinal(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantPrefix string
		wantN      int
		wantOK     bool
	}{
		{"statefulset-pod", "starling-12", "starling-", 12, true},
		{"no-separator", "n2", "n", 2, true},
		{"digits-only", "42", "", 42, true},
		{"leading-zeros", "n-007", "n-", 7, true},
		{"digits-inside", "a1b2", "a1b", 2, true},
		{"no-digits", "starling", "", 0, false},
		{"digits-not-last", "n1a", "", 0, false},
		{"empty", "", "", 0, false},
		{"overflows-int", "n99999999999999999999999", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix, n, ok := splitOrdinal(tt.in)
			if prefix != tt.wantPrefix || n != tt.wantN || ok != tt.wantOK {
				t.Errorf("splitOrdinal(%q) = %q, %d, %v, want %q, %d, %v",
					tt.in, prefix, n, ok, tt.wantPrefix, tt.wantN, tt.wantOK)
			}
		})
	}
}

func TestConfig_AdvertiseAddr(t *testing.T) {
	tests := []struct {
		name string
		host string
		bind string
		want string
	}{
		{"no-advertise-keeps-bind", "", "0.0.0.0:7947", "0.0.0.0:7947"},
		{"host-takes-bind-port", "starling-0.starling", "0.0.0.0:7947", "starling-0.starling:7947"},
		{"ipv4-host", "10.0.0.5", "[::]:7947", "10.0.0.5:7947"},
		{"ipv6-host-bracketed", "fd00::5", "0.0.0.0:7947", "[fd00::5]:7947"},
		{"port-zero-kept", "10.0.0.5", "127.0.0.1:0", "10.0.0.5:0"},
		{"bind-without-port-returned-as-is", "10.0.0.5", "0.0.0.0", "0.0.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := advertiseAddr(tt.host, tt.bind); got != tt.want {
				t.Errorf("advertiseAddr(%q, %q) = %q, want %q", tt.host, tt.bind, got, tt.want)
			}
		})
	}
}
