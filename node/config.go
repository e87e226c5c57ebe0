package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/starling-mqtt/starling/internal/tlsutil"
	"github.com/starling-mqtt/starling/node/transport"
	"github.com/starling-mqtt/starling/storage"
)

// Config configures one broker node. The zero value of every field means its
// default (see DefaultConfig); Validate reports the first invalid field by name.
type Config struct {
	// NodeName names this node in logs. Default: the host name.
	NodeName string

	// Listeners are the addresses the node accepts clients on. Default: one TCP
	// listener on 127.0.0.1:1883.
	Listeners []ListenerConfig

	// DataDir is the directory of the Pebble store. Default: ./data.
	DataDir string

	// Durability decides when a QoS 1/2 acknowledgement may be sent: after an fsync
	// (storage.DurabilitySync, the default) or after the write is queued
	// (storage.DurabilityRelaxed, which can lose the last few milliseconds on a
	// crash).
	Durability storage.Durability

	// ConnectTimeout bounds how long a new socket may stay open without a
	// complete CONNECT. Default: 10 s.
	ConnectTimeout time.Duration

	// WriteTimeout bounds one write to a client socket; a client that does not
	// read for this long is disconnected. Default: 30 s.
	WriteTimeout time.Duration

	// SysInterval is how often the $SYS/broker topics are published. Default:
	// 10 s. A negative value turns them off.
	SysInterval time.Duration

	// WillsByHome is set in a cluster, where the home node of a client id
	// publishes the will of a client whose node died (cluster/home.go): a
	// restarted node then leaves the wills of the sessions that were
	// connected when it went down to the home, so none is published twice.
	WillsByHome bool

	// ExportLease bounds how long a session exported to another node stays
	// frozen here waiting for FinishExport. When it runs out (the other
	// node failed in the middle of the move), the session is unfrozen with
	// what it held, so nothing it had is lost. Default: three times the
	// longest takeover (30 s).
	ExportLease time.Duration

	// Limits bounds what one client and the node may use.
	Limits Limits

	// Features switches optional MQTT features and announces them in the MQTT
	// 5.0 CONNACK.
	Features Features

	// Auth configures authentication and authorization.
	Auth AuthConfig

	// Logger receives the node's logs. Default: slog.Default().
	Logger *slog.Logger
}

// ListenerConfig is one client listener.
type ListenerConfig struct {
	// URL is tcp://HOST:PORT, tls://HOST:PORT, ws://HOST:PORT/PATH or
	// wss://HOST:PORT/PATH (path default /mqtt). Port 0 picks a free port.
	URL string

	// Name identifies the listener in logs, metrics and authentication
	// requests. Default: the URL.
	Name string

	// AllowAnonymous admits clients without credentials. Nil means true for a
	// loopback-only address and false otherwise, so that a node reachable from
	// the network never accepts anonymous clients unless configured to.
	AllowAnonymous *bool

	// CertIdentity is the client certificate field that becomes the user
	// name: "cn" (default), "san-dns", "san-email" or "san-uri".
	CertIdentity string

	// CertRequireClientID requires the client id to equal the certificate's
	// identity, so one device cannot pose as another.
	CertRequireClientID bool

	// TLS is required for tls:// and wss:// listeners.
	TLS *TLSConfig

	// Allow and Deny are CIDR ranges of client addresses; Deny wins, and an
	// empty Allow admits every address Deny does not name.
	Allow, Deny []string

	// ProxyProtocol accepts PROXY protocol v1 and v2 headers, only from
	// TrustedProxies, so that rules, bans and logs see the real client.
	ProxyProtocol  bool
	TrustedProxies []string

	// MaxConnections bounds the listener's open connections and MaxConnRate
	// its new connections per second. Zero means transport's defaults
	// (100,000 and 1,000/s).
	MaxConnections int
	MaxConnRate    float64
}

// Limits bounds memory, disk and protocol sizes. Zero means the default.
type Limits struct {
	// MaxPacketSize is the largest packet accepted from a client, in bytes,
	// also sent as Maximum Packet Size in the MQTT 5.0 CONNACK. Default: 1 MiB.
	MaxPacketSize uint32

	// ReceiveMaximum is how many QoS 1/2 PUBLISH packets a client may have
	// unacknowledged towards the node (MQTT 5.0 Receive Maximum). Default: 256.
	ReceiveMaximum uint16

	// MaxInflight caps the outbound QoS 1/2 window per client; the window is the
	// smaller of this and the client's Receive Maximum. Default: 64.
	MaxInflight uint16

	// MaxQueuedMessages and MaxQueuedBytes bound the messages waiting for one
	// session beyond its inflight window (offline or slow). Defaults: 1,000 and
	// 16 MiB.
	MaxQueuedMessages int
	MaxQueuedBytes    int64

	// QueueOverflow is the policy for a message that arrives at a full queue:
	// "drop_oldest" (default) removes the oldest waiting message, "drop_newest"
	// discards the arriving one. Either way the drop is counted and logged.
	QueueOverflow string

	// MaxSubscriptionsPerClient bounds the topic filters of one session.
	// Default: 1,000.
	MaxSubscriptionsPerClient int

	// MaxTopicLength (bytes) and MaxTopicLevels bound topic names and filters.
	// Defaults: 1,024 and 32.
	MaxTopicLength int
	MaxTopicLevels int

	// MaxTopicAlias is the Topic Alias Maximum the node accepts from a client.
	// Default: 64.
	MaxTopicAlias uint16

	// MaxRetainedMessages and MaxRetainedBytes bound the retained store; a new
	// retained topic beyond them is not stored (QoS 1/2: PUBACK 0x97 in MQTT 5.0).
	// Defaults: 100,000 and 256 MiB.
	MaxRetainedMessages int
	MaxRetainedBytes    int64

	// MaxDiskBytes bounds the store on disk; above it QoS 1/2 publishes that need
	// a write are refused. Default: 0, no limit beyond the disk itself.
	MaxDiskBytes int64

	// MaxOutboundBytes bounds the bytes of QoS 0 messages buffered for one
	// client's socket; beyond it QoS 0 messages wait in the session queue.
	// Default: 1 MiB.
	MaxOutboundBytes int

	// MaxClientIDLength bounds client identifiers, in bytes. Default: 256.
	MaxClientIDLength int
}

// Queue overflow policies.
const (
	OverflowDropOldest = "drop_oldest"
	OverflowDropNewest = "drop_newest"
)

// DefaultConfig returns the configuration of `starling serve` with no flags.
func DefaultConfig() Config {
	cfg := Config{}
	cfg.setDefaults()
	return cfg
}

func (c *Config) setDefaults() {
	if len(c.Listeners) == 0 {
		c.Listeners = []ListenerConfig{{URL: "tcp://127.0.0.1:1883"}}
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.SysInterval == 0 {
		c.SysInterval = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Limits.setDefaults()
	c.Features.setDefaults()
	c.Auth.Throttle.setDefaults()
	for i := range c.Listeners {
		setIfZero(&c.Listeners[i].Name, c.Listeners[i].URL)
	}
}

func (l *Limits) setDefaults() {
	setIfZero(&l.MaxPacketSize, 1<<20)
	setIfZero(&l.ReceiveMaximum, 256)
	setIfZero(&l.MaxInflight, 64)
	setIfZero(&l.MaxQueuedMessages, 1000)
	setIfZero(&l.MaxQueuedBytes, 16<<20)
	setIfZero(&l.QueueOverflow, OverflowDropOldest)
	setIfZero(&l.MaxSubscriptionsPerClient, 1000)
	setIfZero(&l.MaxTopicLength, 1024)
	setIfZero(&l.MaxTopicLevels, 32)
	setIfZero(&l.MaxTopicAlias, 64)
	setIfZero(&l.MaxRetainedMessages, 100000)
	setIfZero(&l.MaxRetainedBytes, 256<<20)
	setIfZero(&l.MaxOutboundBytes, 1<<20)
	setIfZero(&l.MaxClientIDLength, 256)
}

func setIfZero[T comparable](field *T, value T) {
	var zero T
	if *field == zero {
		*field = value
	}
}

// Validate fills in defaults and checks every field, naming the first invalid
// one and the accepted range.
func (c *Config) Validate() error {
	c.setDefaults()
	for i := range c.Listeners {
		tc, err := c.Listeners[i].transportConfig(nil, c.Limits.MaxPacketSize)
		if err == nil {
			err = tc.Validate()
		}
		if err != nil {
			return fmt.Errorf("listeners[%d]: %w", i, err)
		}
		switch c.Listeners[i].CertIdentity {
		case "", "cn", "san-dns", "san-email", "san-uri":
		default:
			return fmt.Errorf("listeners[%d].cert_identity: %q is invalid: use cn, san-dns, san-email or san-uri", i, c.Listeners[i].CertIdentity)
		}
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if err := c.Features.validate(); err != nil {
		return err
	}
	if c.Durability != storage.DurabilitySync && c.Durability != storage.DurabilityRelaxed {
		return fmt.Errorf("durability: unknown value %d", c.Durability)
	}
	return nil
}

// validate checks limits that setDefaults has completed.
func (l *Limits) validate() error {
	switch {
	case l.MaxPacketSize < 64:
		return fmt.Errorf("limits.max_packet_size: %d is too small: use at least 64 bytes", l.MaxPacketSize)
	case l.MaxPacketSize > 268435460:
		return fmt.Errorf("limits.max_packet_size: %d exceeds the MQTT maximum of 268435460 bytes", l.MaxPacketSize)
	case l.QueueOverflow != OverflowDropOldest && l.QueueOverflow != OverflowDropNewest:
		return fmt.Errorf("limits.queue_overflow: %q is invalid: use %q or %q", l.QueueOverflow, OverflowDropOldest, OverflowDropNewest)
	case l.MaxQueuedMessages < 0 || l.MaxQueuedBytes < 0 || l.MaxRetainedMessages < 0 || l.MaxRetainedBytes < 0 || l.MaxDiskBytes < 0:
		return errors.New("limits: queue, retained and disk limits must not be negative")
	case l.MaxTopicLength < 1 || l.MaxTopicLength > 65535:
		return fmt.Errorf("limits.max_topic_length: %d is out of range 1..65535", l.MaxTopicLength)
	case l.MaxTopicLevels < 1:
		return fmt.Errorf("limits.max_topic_levels: %d must be at least 1", l.MaxTopicLevels)
	case l.MaxClientIDLength < 23 || l.MaxClientIDLength > 65535:
		return fmt.Errorf("limits.max_client_id_length: %d is out of range 23..65535", l.MaxClientIDLength)
	}
	return nil
}

// TLSConfig is the TLS setting of a tls:// or wss:// listener. Certificate,
// key, CA and CRL files are reloaded when they change.
type TLSConfig struct {
	CertFile     string
	KeyFile      string
	ClientAuth   string        // "none" (default), "optional" or "required"
	ClientCAFile string        // CA bundle that client certificates must chain to
	CRLFiles     []string      // revocation lists, PEM or DER
	ReloadEvery  time.Duration // how often files are checked for changes; default 5 s
}

// transportConfig converts a listener's settings for package transport.
func (l ListenerConfig) transportConfig(log *slog.Logger, maxPacket uint32) (transport.Config, error) {
	tc := transport.Config{
		Name:             l.Name,
		URL:              l.URL,
		Allow:            l.Allow,
		Deny:             l.Deny,
		ProxyProtocol:    l.ProxyProtocol,
		TrustedProxies:   l.TrustedProxies,
		MaxConnections:   l.MaxConnections,
		MaxConnRate:      l.MaxConnRate,
		WSMaxMessageSize: int64(maxPacket) + 5,
		Logger:           log,
	}
	if l.TLS != nil {
		auth, err := tlsutil.ParseClientAuth(l.TLS.ClientAuth)
		if err != nil {
			return tc, fmt.Errorf("tls.client_auth: %w", err)
		}
		tc.TLS = &tlsutil.ServerOptions{
			CertFile:       l.TLS.CertFile,
			KeyFile:        l.TLS.KeyFile,
			ClientAuth:     auth,
			ClientCAFile:   l.TLS.ClientCAFile,
			CRLFiles:       l.TLS.CRLFiles,
			ReloadInterval: l.TLS.ReloadEvery,
			Logger:         log,
		}
	}
	return tc, nil
}
