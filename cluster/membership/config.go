package membership

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// DefaultGossipPort is the gossip port used by DefaultConfig, and by a Join
// entry without a port when BindAddr has port 0.
const DefaultGossipPort = 7946

// DefaultEventBuffer is the capacity of the Events channel when
// Config.EventBuffer is zero.
const DefaultEventBuffer = 256

// maxNodeNameLen bounds NodeName: a DNS name, such as a Kubernetes pod name
// with its service domain, is at most 253 bytes.
const maxNodeNameLen = 253

// Resolver looks up the IP addresses of a host name. *net.Resolver
// implements it; tests inject a fake so that they resolve no real names.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Config configures one node's membership. Start reads it once; nothing in
// it can be changed at run time except the metadata, through UpdateMeta.
type Config struct {
	// NodeName is the node's unique, stable name, the memberlist name. In
	// Kubernetes it is the pod name. Required. It must not contain
	// whitespace, control characters or '/'.
	NodeName string

	// SiteID is the id of this node's data directory (LoadOrCreateSiteID).
	// A node that returns with an empty disk has a new one, which marks it
	// as a new member under an old name. Required: 1 to 64
	// characters from [A-Za-z0-9_-].
	SiteID string

	// BindAddr is the IP:port on which gossip listens, on TCP and UDP. Port 0
	// picks a free port. Default: 127.0.0.1:7946. memberlist binds IP
	// addresses only, so a host name is invalid here.
	BindAddr string

	// AdvertiseAddr is the address that other nodes use to reach this one:
	// an IP or a host name, with or without a port. A host name is resolved
	// once by Start, because memberlist exchanges IP addresses. Without a
	// port, the bound port is used. Empty means the bind address, or a
	// private address of this host that memberlist picks when BindAddr is
	// 0.0.0.0 or [::].
	AdvertiseAddr string

	// Join lists the seeds: host:port gossip addresses of other nodes, or DNS
	// names that resolve to them, such as a Kubernetes headless service. An
	// entry without a port uses the port of BindAddr (DefaultGossipPort when
	// that is 0). Names are resolved again before every attempt, so new pods
	// are found. Empty means this node waits for others to join it.
	Join []string

	// Resolver resolves the host names in Join and AdvertiseAddr. Default:
	// net.DefaultResolver.
	Resolver Resolver

	// GossipKey encrypts and authenticates all gossip with AES-GCM: 16, 24 or
	// 32 bytes for AES-128, AES-192 or AES-256 (LoadGossipKey reads the file
	// that `starling certs init` writes). Nodes with different keys cannot
	// join each other. Required when BindAddr or AdvertiseAddr is not a
	// loopback address, unless Insecure is set.
	GossipKey []byte

	// Insecure allows unencrypted gossip on a non-loopback address. Start
	// logs a warning every time it runs with Insecure set.
	Insecure bool

	// Meta is published to the other nodes in this node's gossip metadata.
	Meta Meta

	// Profile selects the timings. Default: ProfileLAN.
	Profile Profile

	// EventBuffer is the capacity of the Events channel. When it is full the
	// oldest event is dropped. Default: DefaultEventBuffer.
	EventBuffer int

	// Logger receives membership and memberlist logs. Default: slog.Default().
	Logger *slog.Logger
}

// Meta is the part of a node's gossip metadata that the node sets.
type Meta struct {
	// PeerAddr is the host:port of the node's peer port (Raft and gRPC), as
	// the other nodes should dial it. In Kubernetes it is the pod's stable
	// DNS name, so that it stays valid when the pod gets a new IP.
	PeerAddr string

	// MQTTAddr is the host:port where clients reach this node's MQTT
	// listener, for server references and the admin view.
	MQTTAddr string

	// BootIncarnation grows by one at every start of the node. Later layers
	// use it to tell a node's current routes from those of an earlier run.
	BootIncarnation uint64
}

// DefaultConfig returns a Config that gossips on 127.0.0.1:7946 with
// ProfileLAN. NodeName and SiteID are left for the caller.
func DefaultConfig() Config {
	return Config{
		BindAddr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(DefaultGossipPort)),
		Profile:     ProfileLAN,
		EventBuffer: DefaultEventBuffer,
	}
}

// Validate checks c and returns an error that wraps ErrInvalidConfig and
// names the field, or nil.
func (c *Config) Validate() error {
	if err := validateNodeName(c.NodeName); err != nil {
		return err
	}
	if err := validateSiteID(c.SiteID); err != nil {
		return configErrorf("Config.SiteID: %v", err)
	}

	bind, err := parseBindAddr(c.BindAddr)
	if err != nil {
		return err
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitAdvertiseAddr(c.AdvertiseAddr); err != nil {
			return err
		}
	}
	for i, seed := range c.Join {
		if _, _, err := splitSeed(seed, 0); err != nil {
			return configErrorf("Config.Join[%d]: %v", i, err)
		}
	}

	switch len(c.GossipKey) {
	case 0, 16, 24, 32:
	default:
		return configErrorf("Config.GossipKey is %d bytes: it must be 16, 24 or 32 bytes (AES-128, AES-192 or AES-256)", len(c.GossipKey))
	}
	if err := c.checkEncryption(bind); err != nil {
		return err
	}

	switch c.Profile {
	case "", ProfileLAN, ProfileLocal:
	default:
		return configErrorf("Config.Profile %q is unknown: use %q or %q", c.Profile, ProfileLAN, ProfileLocal)
	}
	if c.EventBuffer < 0 {
		return configErrorf("Config.EventBuffer %d is negative: use 0 for the default %d", c.EventBuffer, DefaultEventBuffer)
	}
	return validateMeta(c.SiteID, c.Meta)
}

// checkEncryption enforces the rule that gossip off loopback is encrypted
// unless the operator explicitly chose otherwise, because unencrypted gossip
// lets anyone who can reach the port join the cluster or forge its state.
func (c *Config) checkEncryption(bind netip.AddrPort) error {
	if len(c.GossipKey) > 0 || c.Insecure {
		return nil
	}
	if !bind.Addr().IsLoopback() {
		return configErrorf("Config.BindAddr %s is not a loopback address, so gossip must be encrypted: set Config.GossipKey (the gossip.key file that `starling certs init` writes) or set Config.Insecure to allow unencrypted gossip", c.BindAddr)
	}
	if c.AdvertiseAddr != "" {
		host, _, _ := splitAdvertiseAddr(c.AdvertiseAddr)
		if !isLoopbackHost(host) {
			return configErrorf("Config.AdvertiseAddr %s is not a loopback address, so gossip must be encrypted: set Config.GossipKey (the gossip.key file that `starling certs init` writes) or set Config.Insecure to allow unencrypted gossip", c.AdvertiseAddr)
		}
	}
	return nil
}

// validateMeta checks that meta fits memberlist's metadata limit and that
// every field decodes on the other nodes.
func validateMeta(siteID string, meta Meta) error {
	for _, f := range []struct{ name, value string }{{"PeerAddr", meta.PeerAddr}, {"MQTTAddr", meta.MQTTAddr}} {
		if len(f.value) > maxMetaString || !utf8.ValidString(f.value) {
			return configErrorf("Config.Meta.%s must be valid UTF-8 of at most %d bytes", f.name, maxMetaString)
		}
	}
	if n := len(encodeMeta(siteID, meta)); n > memberlist.MetaMaxSize {
		return configErrorf("Config.Meta encodes to %d bytes, more than memberlist's limit of %d: shorten PeerAddr or MQTTAddr", n, memberlist.MetaMaxSize)
	}
	return nil
}

// withDefaults returns a copy of c with zero fields replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Profile == "" {
		c.Profile = ProfileLAN
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// encrypted reports whether gossip uses a key.
func (c *Config) encrypted() bool { return len(c.GossipKey) > 0 }

// seedPort returns the port for Join entries without one.
func (c *Config) seedPort() int {
	bind, err := netip.ParseAddrPort(c.BindAddr)
	if err != nil || bind.Port() == 0 {
		return DefaultGossipPort
	}
	return int(bind.Port())
}

func validateNodeName(name string) error {
	if name == "" {
		return configErrorf("Config.NodeName is required: set it to a name that is unique in the cluster and stable across restarts, such as the pod name")
	}
	if len(name) > maxNodeNameLen {
		return configErrorf("Config.NodeName is %d bytes, more than %d", len(name), maxNodeNameLen)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == '/' {
			return configErrorf("Config.NodeName %q contains %q: use letters, digits, '-', '_' or '.'", name, r)
		}
	}
	return nil
}

// parseBindAddr parses Config.BindAddr, which must be an IP and a port.
func parseBindAddr(addr string) (netip.AddrPort, error) {
	if addr == "" {
		return netip.AddrPort{}, configErrorf("Config.BindAddr is required, for example 127.0.0.1:%d", DefaultGossipPort)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.AddrPort{}, configErrorf("Config.BindAddr %q is not an IP:port (memberlist binds IP addresses only): %v", addr, err)
	}
	return ap, nil
}

// splitAdvertiseAddr splits Config.AdvertiseAddr into host and port; port is
// 0 when the address has none.
func splitAdvertiseAddr(addr string) (host string, port int, err error) {
	host, port, err = splitHostOptionalPort(addr, 0)
	if err != nil {
		return "", 0, configErrorf("Config.AdvertiseAddr: %v", err)
	}
	if ip, perr := netip.ParseAddr(host); perr == nil && ip.IsUnspecified() {
		return "", 0, configErrorf("Config.AdvertiseAddr %q is an unspecified address: other nodes cannot dial it, so give this node's own address", addr)
	}
	return host, port, nil
}

// splitSeed splits a Join entry into host and port, using defaultPort when
// the entry has no port.
func splitSeed(seed string, defaultPort int) (host string, port int, err error) {
	if strings.Contains(seed, "/") {
		return "", 0, fmt.Errorf("%q contains '/': give a host, host:port, or a DNS name", seed)
	}
	return splitHostOptionalPort(seed, defaultPort)
}

// splitHostOptionalPort splits "host", "host:port", "[v6]" or "[v6]:port".
func splitHostOptionalPort(addr string, defaultPort int) (string, int, error) {
	if addr == "" {
		return "", 0, fmt.Errorf("empty address")
	}
	if ip, err := netip.ParseAddr(strings.Trim(addr, "[]")); err == nil {
		return ip.String(), defaultPort, nil
	}
	if !strings.Contains(addr, ":") {
		return addr, defaultPort, nil
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("invalid address %q: %v", addr, err)
	}
	if host == "" {
		return "", 0, fmt.Errorf("invalid address %q: the host is empty", addr)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("invalid address %q: the port must be 1 to 65535", addr)
	}
	return host, port, nil
}

// isLoopbackHost reports whether host is a loopback IP or "localhost". Other
// names count as not loopback, because what they resolve to can change.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
