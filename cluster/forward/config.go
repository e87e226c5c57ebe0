package forward

import (
	"context"
	"log/slog"
	"time"

	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage"
)

// Defaults of the Config fields that are left zero.
const (
	DefaultMaxQueueBytes     = 64 << 20
	DefaultBatchMax          = 256
	DefaultBatchMaxBytes     = 1 << 20
	DefaultMaxOutboxBytes    = 1 << 30
	DefaultMaxOutboxMessages = 1_000_000
	DefaultSeqBlock          = 1 << 16
	DefaultMinBackoff        = 100 * time.Millisecond
	DefaultMaxBackoff        = 5 * time.Second
	DefaultRejectedRetry     = 30 * time.Second
	DefaultHelloTimeout      = 10 * time.Second
	DefaultDeleteInterval    = 100 * time.Millisecond
)

// Peer is another node of the cluster that this node forwards to.
type Peer struct {
	Name   string // node name, as in memberlist; sent to Dial and logged
	SiteID string // the node's site id; keys its sequence numbers and outbox
	Addr   string // host:port of its peer port, for Dial
}

// Dialer returns a client for p's Peer service. The Forwarder calls it
// before every stream and never closes what it returns: the dialer owns the
// connection, which other services to the same peer may share. ctx bounds
// the dial only.
type Dialer func(ctx context.Context, p Peer) (clusterpb.PeerClient, error)

// Config configures a Forwarder. New reads it once; nothing in it can be
// changed later.
type Config struct {
	// Store holds the outboxes and the sequence ceilings. Required. One
	// Forwarder at a time may use a Store.
	Store *storage.Store

	// SelfName and SelfSiteID are this node's name and site id, sent in the
	// hello of every stream. Required.
	SelfName   string
	SelfSiteID string

	// Dial connects to a peer. Required.
	Dial Dialer

	// Logger receives the forwarder's log lines. Default: slog.Default().
	Logger *slog.Logger

	// MaxQueueBytes bounds the in-memory send queue of each peer, counted
	// as encoded message sizes. Over it, QoS 0 messages are dropped and the
	// sender reads QoS 1 and 2 messages from the outbox until it catches
	// up. Default: DefaultMaxQueueBytes (64 MiB).
	MaxQueueBytes int64

	// BatchMax is the largest number of messages in one request. Default:
	// DefaultBatchMax.
	BatchMax int

	// BatchMaxBytes bounds the encoded size of the messages of one
	// request; a single larger message still goes alone. It keeps every
	// request under the receiver's gRPC message limit, which the peer port
	// sets above the largest MQTT packet. Default: DefaultBatchMaxBytes.
	BatchMaxBytes int

	// MaxOutboxBytes and MaxOutboxMessages bound each peer's outbox on
	// disk: at either, Full reports true. Defaults: DefaultMaxOutboxBytes
	// (1 GiB) and DefaultMaxOutboxMessages.
	MaxOutboxBytes    int64
	MaxOutboxMessages int64

	// SeqBlock is how many sequence numbers one synced write reserves. A
	// restart skips the unused rest of a block. Default: DefaultSeqBlock.
	SeqBlock uint64

	// MinBackoff and MaxBackoff bound the delay between reconnect
	// attempts, which doubles from MinBackoff after each failure, with
	// jitter. Defaults: DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff time.Duration
	MaxBackoff time.Duration

	// RejectedRetry is the delay before the next attempt after a peer
	// rejected the stream because its site id is not the expected one.
	// Default: DefaultRejectedRetry.
	RejectedRetry time.Duration

	// HelloTimeout bounds the wait for the peer's first response. Default:
	// DefaultHelloTimeout.
	HelloTimeout time.Duration

	// DeleteInterval is how long an idle sender waits before it deletes
	// acknowledged entries from the outbox. Busy senders delete every
	// deleteEvery acknowledged sequence numbers. Default:
	// DefaultDeleteInterval.
	DeleteInterval time.Duration
}

// Validate returns an error that wraps ErrInvalidConfig and names the first
// invalid field, or nil.
func (c *Config) Validate() error {
	switch {
	case c.Store == nil:
		return configErrorf("Config.Store is required")
	case c.SelfName == "":
		return configErrorf("Config.SelfName is required")
	case c.SelfSiteID == "":
		return configErrorf("Config.SelfSiteID is required")
	case c.Dial == nil:
		return configErrorf("Config.Dial is required")
	case c.MaxQueueBytes < 0:
		return configErrorf("Config.MaxQueueBytes %d is negative: use 0 for the default", c.MaxQueueBytes)
	case c.BatchMax < 0:
		return configErrorf("Config.BatchMax %d is negative: use 0 for the default", c.BatchMax)
	case c.MaxOutboxBytes < 0:
		return configErrorf("Config.MaxOutboxBytes %d is negative: use 0 for the default", c.MaxOutboxBytes)
	case c.MaxOutboxMessages < 0:
		return configErrorf("Config.MaxOutboxMessages %d is negative: use 0 for the default", c.MaxOutboxMessages)
	case c.MinBackoff < 0, c.MaxBackoff < 0, c.RejectedRetry < 0, c.HelloTimeout < 0, c.DeleteInterval < 0:
		return configErrorf("Config durations must not be negative: use 0 for the defaults")
	case c.MaxBackoff != 0 && c.MaxBackoff < c.MinBackoff:
		return configErrorf("Config.MaxBackoff %v is below Config.MinBackoff %v", c.MaxBackoff, c.MinBackoff)
	}
	return nil
}

// withDefaults returns a copy of c with zero fields replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if c.BatchMax == 0 {
		c.BatchMax = DefaultBatchMax
	}
	if c.BatchMaxBytes <= 0 {
		c.BatchMaxBytes = DefaultBatchMaxBytes
	}
	if c.MaxOutboxBytes == 0 {
		c.MaxOutboxBytes = DefaultMaxOutboxBytes
	}
	if c.MaxOutboxMessages == 0 {
		c.MaxOutboxMessages = DefaultMaxOutboxMessages
	}
	if c.SeqBlock == 0 {
		c.SeqBlock = DefaultSeqBlock
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.MinBackoff)
	}
	if c.RejectedRetry == 0 {
		c.RejectedRetry = DefaultRejectedRetry
	}
	if c.HelloTimeout == 0 {
		c.HelloTimeout = DefaultHelloTimeout
	}
	if c.DeleteInterval == 0 {
		c.DeleteInterval = DefaultDeleteInterval
	}
	return c
}
