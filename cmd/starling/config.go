package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/starling-mqtt/starling/node"
	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/storage"
)

// fileConfig is the YAML configuration file. Every key is optional; a missing
// key keeps the default. Unknown keys are rejected so that a typo never passes
// silently.
type fileConfig struct {
	NodeName    string         `yaml:"node_name"`
	DataDir     string         `yaml:"data_dir"`
	Durability  string         `yaml:"durability"`
	Listeners   []fileListener `yaml:"listeners"`
	Log         fileLog        `yaml:"log"`
	KeepAlive   fileKeepAlive  `yaml:"keepalive"`
	Write       fileWrite      `yaml:"write"`
	Limits      fileLimits     `yaml:"limits"`
	Features    fileFeatures   `yaml:"features"`
	SysInterval duration       `yaml:"sys_interval"`
	GCHeapFloor int64          `yaml:"gc_heap_floor"`
	Auth        fileAuth       `yaml:"auth"`
	Cluster     fileCluster    `yaml:"cluster"`
}

type fileListener struct {
	Name                string   `yaml:"name"`
	URL                 string   `yaml:"url"`
	AllowAnonymous      *bool    `yaml:"allow_anonymous"`
	CertIdentity        string   `yaml:"cert_identity"`
	CertRequireClientID bool     `yaml:"cert_require_client_id"`
	TLS                 *fileTLS `yaml:"tls"`
	Allow               []string `yaml:"allow"`
	Deny                []string `yaml:"deny"`
	ProxyProtocol       bool     `yaml:"proxy_protocol"`
	TrustedProxies      []string `yaml:"trusted_proxies"`
	MaxConnections      int      `yaml:"max_connections"`
	MaxConnRate         float64  `yaml:"max_conn_rate"`
}

type fileTLS struct {
	CertFile     string   `yaml:"cert_file"`
	KeyFile      string   `yaml:"key_file"`
	ClientAuth   string   `yaml:"client_auth"`
	ClientCAFile string   `yaml:"client_ca_file"`
	CRLFiles     []string `yaml:"crl_files"`
	ReloadEvery  duration `yaml:"reload_every"`
}

type fileAuth struct {
	JWT          *fileJWT         `yaml:"jwt"`
	DefaultAllow bool             `yaml:"default_allow"`
	Throttle     fileThrottle     `yaml:"throttle"`
	Groups       []auth.Group     `yaml:"groups"`
	Roles        []fileRole       `yaml:"roles"`
	Users        []fileUser       `yaml:"users"`
	Rules        []fileGlobalRule `yaml:"rules"`
}

type fileJWT struct {
	KeyFiles []struct {
		Path string `yaml:"path"`
		ID   string `yaml:"id"`
		Alg  string `yaml:"alg"`
	} `yaml:"key_files"`
	JWKSFiles     []string `yaml:"jwks_files"`
	Issuer        string   `yaml:"issuer"`
	Audience      string   `yaml:"audience"`
	UsernameClaim string   `yaml:"username_claim"`
	GroupsClaim   string   `yaml:"groups_claim"`
	RolesClaim    string   `yaml:"roles_claim"`
	ACLClaim      string   `yaml:"acl_claim"`
	Leeway        duration `yaml:"leeway"`
	MaxLifetime   duration `yaml:"max_lifetime"`
}

// config converts the file's JWT section, keeping defaults for unset keys.
func (f *fileJWT) config() *auth.JWTConfig {
	if f == nil {
		return nil
	}
	c := auth.DefaultJWTConfig()
	for _, k := range f.KeyFiles {
		c.KeyFiles = append(c.KeyFiles, auth.KeyFile{Path: k.Path, ID: k.ID, Alg: k.Alg})
	}
	c.JWKSFiles = f.JWKSFiles
	c.Issuer, c.Audience = f.Issuer, f.Audience
	override(&c.UsernameClaim, f.UsernameClaim)
	override(&c.GroupsClaim, f.GroupsClaim)
	override(&c.RolesClaim, f.RolesClaim)
	override(&c.ACLClaim, f.ACLClaim)
	if f.Leeway != 0 {
		c.Leeway = time.Duration(f.Leeway)
	}
	c.MaxLifetime = time.Duration(f.MaxLifetime)
	return &c
}

type fileThrottle struct {
	FreeFailures int      `yaml:"free_failures"`
	MaxDelay     duration `yaml:"max_delay"`
	BanAfter     int      `yaml:"ban_after"`
	BanFor       duration `yaml:"ban_for"`
}

type fileRole struct {
	Name  string     `yaml:"name"`
	Rules []fileRule `yaml:"rules"`
}

type fileRule struct {
	Action     string `yaml:"action"`
	Permission string `yaml:"permission"`
	Topic      string `yaml:"topic"`
	MaxQoS     *byte  `yaml:"max_qos"`
	Retain     *bool  `yaml:"retain"`
	Priority   int    `yaml:"priority"`
}

// fileGlobalRule is a rule with a subject: all, anonymous, user:NAME,
// group:NAME, role:NAME, client:PATTERN or cert:PATTERN.
type fileGlobalRule struct {
	Subject  string `yaml:"subject"`
	fileRule `yaml:",inline"`
}

// fileUser is a user defined in the configuration file. Only a password hash
// is accepted (make one with `starling user add` on a scratch data directory,
// or with any PHC-format tool): a plain password must never sit in a file.
type fileUser struct {
	Name         string     `yaml:"name"`
	PasswordHash string     `yaml:"password_hash"`
	Groups       []string   `yaml:"groups"`
	Roles        []string   `yaml:"roles"`
	Rules        []fileRule `yaml:"rules"`
}

type fileLog struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

type fileKeepAlive struct {
	ConnectTimeout duration `yaml:"connect_timeout"`
}

type fileWrite struct {
	Timeout duration `yaml:"timeout"`
}

type fileLimits struct {
	MaxPacketSize             uint32 `yaml:"max_packet_size"`
	ReceiveMaximum            uint16 `yaml:"receive_maximum"`
	MaxInflight               uint16 `yaml:"max_inflight"`
	MaxQueuedMessages         int    `yaml:"max_queued_messages"`
	MaxQueuedBytes            int64  `yaml:"max_queued_bytes"`
	QueueOverflow             string `yaml:"queue_overflow"`
	MaxSubscriptionsPerClient int    `yaml:"max_subscriptions_per_client"`
	MaxTopicLength            int    `yaml:"max_topic_length"`
	MaxTopicLevels            int    `yaml:"max_topic_levels"`
	MaxTopicAlias             uint16 `yaml:"max_topic_alias"`
	MaxRetainedMessages       int    `yaml:"max_retained_messages"`
	MaxRetainedBytes          int64  `yaml:"max_retained_bytes"`
	MaxDiskBytes              int64  `yaml:"max_disk_bytes"`
	MaxOutboundBytes          int    `yaml:"max_outbound_bytes"`
	MaxClientIDLength         int    `yaml:"max_client_id_length"`
}

// duration reads YAML values such as "10s" or "1m30s".
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q: use a value such as 10s or 1m", n.Line, n.Value)
	}
	*d = duration(v)
	return nil
}

// loadFile reads a YAML configuration file.
func loadFile(path string) (fileConfig, error) {
	var fc fileConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("read config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fc, fmt.Errorf("config file %s: %w", path, err)
	}
	return fc, nil
}

// settings are the command-line and environment values that override the file.
type settings struct {
	configPath string
	listen     []string
	dataDir    string
	nodeName   string
	durability string
	logLevel   string
	logFormat  string
}

// applyEnv fills settings that no flag set from STARLING_* variables.
func (st *settings) applyEnv(setByFlag map[string]bool) {
	env := func(flagName, key string, dst *string) {
		if v, ok := os.LookupEnv(key); ok && !setByFlag[flagName] {
			*dst = v
		}
	}
	env("config", "STARLING_CONFIG", &st.configPath)
	env("data-dir", "STARLING_DATA_DIR", &st.dataDir)
	env("node-name", "STARLING_NODE_NAME", &st.nodeName)
	env("durability", "STARLING_DURABILITY", &st.durability)
	env("log-level", "STARLING_LOG_LEVEL", &st.logLevel)
	env("log-format", "STARLING_LOG_FORMAT", &st.logFormat)
	if v, ok := os.LookupEnv("STARLING_LISTEN"); ok && !setByFlag["listen"] {
		st.listen = splitList(v)
	}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// buildConfig merges defaults, the file and the overrides, in that order.
func buildConfig(fc fileConfig, st settings) (node.Config, logSettings, error) {
	cfg := node.Config{
		NodeName:       fc.NodeName,
		DataDir:        fc.DataDir,
		ConnectTimeout: time.Duration(fc.KeepAlive.ConnectTimeout),
		WriteTimeout:   time.Duration(fc.Write.Timeout),
		Limits:         node.Limits(fc.Limits),
		Features:       node.Features(fc.Features),
		SysInterval:    time.Duration(fc.SysInterval),
	}
	for _, l := range fc.Listeners {
		lc := node.ListenerConfig{
			Name: l.Name, URL: l.URL, AllowAnonymous: l.AllowAnonymous,
			CertIdentity: l.CertIdentity, CertRequireClientID: l.CertRequireClientID,
			Allow: l.Allow, Deny: l.Deny, ProxyProtocol: l.ProxyProtocol, TrustedProxies: l.TrustedProxies,
			MaxConnections: l.MaxConnections, MaxConnRate: l.MaxConnRate,
		}
		if l.TLS != nil {
			lc.TLS = &node.TLSConfig{
				CertFile: l.TLS.CertFile, KeyFile: l.TLS.KeyFile, ClientAuth: l.TLS.ClientAuth,
				ClientCAFile: l.TLS.ClientCAFile, CRLFiles: l.TLS.CRLFiles, ReloadEvery: time.Duration(l.TLS.ReloadEvery),
			}
		}
		cfg.Listeners = append(cfg.Listeners, lc)
	}
	seed, err := fc.Auth.seed()
	if err != nil {
		return cfg, logSettings{}, err
	}
	cfg.Auth = node.AuthConfig{
		DefaultAllow: fc.Auth.DefaultAllow,
		Throttle: node.ThrottleConfig{
			FreeFailures: fc.Auth.Throttle.FreeFailures, MaxDelay: time.Duration(fc.Auth.Throttle.MaxDelay),
			BanAfter: fc.Auth.Throttle.BanAfter, BanFor: time.Duration(fc.Auth.Throttle.BanFor),
		},
		Seed: seed,
		JWT:  fc.Auth.JWT.config(),
	}
	logs := logSettings{level: fc.Log.Level, format: fc.Log.Format}
	durability := fc.Durability

	if len(st.listen) > 0 {
		cfg.Listeners = nil
		for _, u := range st.listen {
			cfg.Listeners = append(cfg.Listeners, node.ListenerConfig{URL: u})
		}
	}
	override(&cfg.DataDir, st.dataDir)
	override(&cfg.NodeName, st.nodeName)
	override(&durability, st.durability)
	override(&logs.level, st.logLevel)
	override(&logs.format, st.logFormat)

	switch durability {
	case "", "sync":
		cfg.Durability = storage.DurabilitySync
	case "relaxed":
		cfg.Durability = storage.DurabilityRelaxed
	default:
		return cfg, logs, fmt.Errorf("durability: %q is invalid: use sync or relaxed", durability)
	}
	if err := logs.validate(); err != nil {
		return cfg, logs, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, logs, err
	}
	return cfg, logs, nil
}

func override(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

type fileFeatures struct {
	MaxQoS                       *byte  `yaml:"max_qos"`
	DisableRetain                bool   `yaml:"disable_retain"`
	DisableWildcardSubscriptions bool   `yaml:"disable_wildcard_subscriptions"`
	DisableSubscriptionIDs       bool   `yaml:"disable_subscription_ids"`
	DisableSharedSubscriptions   bool   `yaml:"disable_shared_subscriptions"`
	MaxKeepAlive                 uint16 `yaml:"max_keepalive"`
	MaxSessionExpiry             uint32 `yaml:"max_session_expiry"`
	ResponseInformation          string `yaml:"response_information"`
	SharedStrategy               string `yaml:"shared_strategy"`
	SharedRedelivery             string `yaml:"shared_redelivery"`
}

func (r fileRule) rule() auth.Rule {
	return auth.Rule{Action: auth.Action(r.Action), Permission: auth.Permission(r.Permission), Topic: r.Topic,
		MaxQoS: r.MaxQoS, Retain: r.Retain, Priority: r.Priority}
}

func rulesOf(in []fileRule) []auth.Rule {
	var out []auth.Rule
	for _, r := range in {
		out = append(out, r.rule())
	}
	return out
}

// seed converts the users, groups and roles of the file, checking each.
func (a fileAuth) seed() (node.AuthSeed, error) {
	var seed node.AuthSeed
	for i, g := range a.Groups {
		if err := auth.ValidateGroup(g); err != nil {
			return seed, fmt.Errorf("auth.groups[%d]: %w", i, err)
		}
		seed.Groups = append(seed.Groups, g)
	}
	for i, r := range a.Roles {
		role := auth.Role{Name: r.Name, Rules: rulesOf(r.Rules)}
		if err := auth.ValidateRole(role); err != nil {
			return seed, fmt.Errorf("auth.roles[%d]: %w", i, err)
		}
		seed.Roles = append(seed.Roles, role)
	}
	if a.Rules != nil {
		seed.Rules = []auth.GlobalRule{}
	}
	for i, r := range a.Rules {
		subj, err := auth.ParseSubject(r.Subject)
		if err != nil {
			return seed, fmt.Errorf("auth.rules[%d].subject: %w", i, err)
		}
		seed.Rules = append(seed.Rules, auth.GlobalRule{Subject: subj, Rule: r.rule()})
	}
	if err := auth.ValidateGlobalRules(seed.Rules); err != nil {
		return seed, fmt.Errorf("auth.rules: %w", err)
	}
	for i, u := range a.Users {
		user := auth.User{Name: u.Name, Groups: u.Groups, Roles: u.Roles, Rules: rulesOf(u.Rules)}
		if u.PasswordHash != "" {
			if err := user.ImportHash(u.PasswordHash); err != nil {
				return seed, fmt.Errorf("auth.users[%d].password_hash: %w", i, err)
			}
		}
		if err := auth.ValidateUser(user); err != nil {
			return seed, fmt.Errorf("auth.users[%d]: %w", i, err)
		}
		seed.Users = append(seed.Users, user)
	}
	return seed, nil
}

// defaultGCHeapFloor is the heap size below which the garbage collector does
// not start a cycle (gctune.Floor). 32 MiB cut the broker CPU per message by
// a quarter to a third in the saturating benchmarks, and the resident memory
// after such a run grew from about 37 to about 75 MiB. 64 MiB saved no more
// CPU there.
const defaultGCHeapFloor = 32 << 20

// gcHeapFloor returns the heap floor in bytes for the gc_heap_floor key: 0
// means the default, and a negative value turns the floor off.
func gcHeapFloor(v int64) uint64 {
	switch {
	case v == 0:
		return defaultGCHeapFloor
	case v < 0:
		return 0
	}
	return uint64(v)
}
