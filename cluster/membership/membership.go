package membership

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Membership is a running gossip member. Its methods are safe for
// concurrent use.
type Membership struct {
	ml     *memberlist.Memberlist
	logger *slog.Logger
	name   string // Config.NodeName
	siteID string // Config.SiteID
	view   *eventDelegate
	events *eventQueue
	meta   *metaDelegate

	// stopJoin cancels the join loop; joinDone is closed when it has
	// returned. joinDone is nil when Config.Join is empty.
	stopJoin context.CancelFunc
	joinDone chan struct{}

	closeOnce sync.Once
	closeErr  error

	// mu serializes Leave and UpdateMeta with Close, because memberlist
	// panics on Leave after Shutdown.
	mu struct {
		sync.Mutex
		closed bool
	}
}

// Start validates cfg, starts gossip on cfg.BindAddr and, when cfg.Join is
// set, a background join loop. It does not wait for the join. ctx bounds
// only the work inside Start (resolving a host name in AdvertiseAddr), and
// the membership runs until Close, which the caller must call.
func Start(ctx context.Context, cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	logger := cfg.Logger.With(keyComponent, componentName)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("membership: start: %w", err)
	}

	mc, err := memberlistConfig(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	meta := &metaDelegate{}
	meta.set(encodeMeta(cfg.SiteID, cfg.Meta))
	events := newEventQueue(cfg.EventBuffer, logger)
	watcher := &claimWatcher{name: cfg.NodeName}
	mc.Delegate = meta
	view := newEventDelegate(logger, events)
	mc.Events = view
	mc.Merge = watcher
	mc.Conflict = watcher
	mc.Logger = newLogBridge(cfg.Logger)

	if cfg.Insecure {
		logger.Warn("insecure mode: gossip and the peer port may run without encryption or TLS off loopback", keyEncrypted, cfg.encrypted())
	}

	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: start gossip on %s: %w", cfg.BindAddr, err)
	}
	// Create has reported this node's own join, so the view has its address.
	local, _ := view.member(cfg.NodeName)
	self, err := netip.ParseAddrPort(local.Addr)
	if err != nil {
		_ = ml.Shutdown()
		return nil, fmt.Errorf("membership: read the advertised address %q: %w", local.Addr, err)
	}
	watcher.self.Store(&self)

	m := &Membership{
		ml:     ml,
		logger: logger,
		name:   cfg.NodeName,
		siteID: cfg.SiteID,
		view:   view,
		events: events,
		meta:   meta,
	}
	logger.Info("membership started", keyNode, cfg.NodeName, keySiteID, cfg.SiteID, keyAddr, self.String(),
		keyBind, formatAddrPort(mc.BindAddr, mc.BindPort), keyEncrypted, cfg.encrypted(), keyProfile, string(cfg.Profile))

	if len(cfg.Join) > 0 {
		loopCtx, cancel := context.WithCancel(context.Background())
		m.stopJoin = cancel
		m.joinDone = make(chan struct{})
		j := newJoiner(ml, &cfg, watcher, self, logger)
		go func() {
			defer close(m.joinDone)
			j.run(loopCtx)
		}()
	}
	return m, nil
}

// memberlistConfig builds memberlist's configuration from a validated cfg.
func memberlistConfig(ctx context.Context, cfg *Config) (*memberlist.Config, error) {
	bind, err := parseBindAddr(cfg.BindAddr)
	if err != nil {
		return nil, err
	}

	// DefaultLANConfig reads the host name and binds 0.0.0.0:7946; every
	// field that could reach beyond this node's configuration is set below.
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	mc.BindAddr = bind.Addr().String()
	mc.BindPort = int(bind.Port())
	mc.AdvertiseAddr = ""
	mc.AdvertisePort = int(bind.Port())
	cfg.Profile.timings().apply(mc)

	if cfg.AdvertiseAddr != "" {
		host, port, err := splitAdvertiseAddr(cfg.AdvertiseAddr)
		if err != nil {
			return nil, err
		}
		ip, err := resolveAdvertiseHost(ctx, cfg.Resolver, host)
		if err != nil {
			return nil, err
		}
		mc.AdvertiseAddr = ip.String()
		if port != 0 {
			// NOTE: with BindAddr port 0, memberlist replaces this with the
			// port it bound.
			mc.AdvertisePort = port
		}
	}

	if cfg.encrypted() {
		mc.SecretKey = slices.Clone(cfg.GossipKey)
	}
	return mc, nil
}

// resolveAdvertiseHost returns host as an IP, looking it up when it is a
// name. With several addresses it takes the first IPv4 one, or the first.
func resolveAdvertiseHost(ctx context.Context, r Resolver, host string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap(), nil
	}
	lookupCtx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	hosts, err := r.LookupHost(lookupCtx, host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("membership: resolve Config.AdvertiseAddr %q: %w", host, err)
	}
	var first netip.Addr
	for _, h := range hosts {
		ip, err := netip.ParseAddr(h)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		if ip.Is4() {
			return ip, nil
		}
		if !first.IsValid() {
			first = ip
		}
	}
	if !first.IsValid() {
		return netip.Addr{}, fmt.Errorf("membership: resolve Config.AdvertiseAddr %q: no IP address in %v", host, hosts)
	}
	return first, nil
}

// formatAddrPort formats a memberlist host and port for logs.
func formatAddrPort(host string, port int) string {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host + ":" + strconv.Itoa(port)
	}
	return netip.AddrPortFrom(ip, uint16(port)).String()
}

// Members returns the alive members, this node included, sorted by name.
// A suspect member counts as alive (see StateAlive). A member whose
// metadata does not decode is listed with an empty SiteID.
func (m *Membership) Members() []Member {
	return m.view.alive()
}

// LocalNode returns this node as it publishes itself. After Leave its State
// is StateGone.
func (m *Membership) LocalNode() Member {
	member, _ := m.view.member(m.name)
	return member
}

// Events returns the channel of join, leave and update events. It is
// bounded (Config.EventBuffer): when the consumer falls behind, the oldest
// events are dropped and counted by DroppedEvents, because memberlist's
// goroutines must never block on a consumer. A consumer must therefore
// treat events as hints and reconcile its state from Members. The channel
// is closed by Close. Every call returns the same channel.
func (m *Membership) Events() <-chan Event {
	return m.events.ch
}

// DroppedEvents returns how many events were dropped because Events was
// full.
func (m *Membership) DroppedEvents() uint64 {
	return m.events.dropped.Load()
}

// UpdateMeta publishes new metadata for this node, for example the MQTT
// address once a listener with port 0 has bound. It waits up to timeout for
// the update to reach one peer, when there is one.
func (m *Membership) UpdateMeta(meta Meta, timeout time.Duration) error {
	if err := validateMeta(m.siteID, meta); err != nil {
		return err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return ErrClosed
	}
	m.meta.set(encodeMeta(m.siteID, meta))
	if err := m.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("membership: publish metadata: %w", err)
	}
	return nil
}

// Leave stops the join loop and announces that this node is leaving
// for good, then waits up to timeout for the message to reach one peer.
// The other members then see it as left rather than dead, so a successor
// may reclaim its name at once. Gossip keeps running until Close, which the
// caller still must call. A plain shutdown or a crash is not a leave: call
// Leave only when the node leaves the cluster.
func (m *Membership) Leave(timeout time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return ErrClosed
	}
	m.stopJoinLoop()
	if err := m.ml.Leave(timeout); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	m.logger.Info("left cluster")
	return nil
}

// Close stops the join loop and gossip, without a leave message, and closes
// the Events channel. The other members see the node as failed after their
// suspicion timeout. Close is idempotent; every call waits until the first
// has finished. It can wait up to the profile's TCPTimeout (10 s for
// ProfileLAN) for a join attempt that is dialling a seed.
//
// NOTE: memberlist v0.6.0's Shutdown does not wait for a failure probe in
// progress. One of its goroutines can therefore outlive Close by up to a
// probe interval, or longer when memberlist has slowed its probes under
// load. Its sends then fail on the closed sockets.
func (m *Membership) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.mu.closed = true
		m.mu.Unlock()

		m.stopJoinLoop()
		if err := m.ml.Shutdown(); err != nil {
			m.closeErr = fmt.Errorf("membership: stop gossip: %w", err)
		}
		m.events.close()
		m.logger.Info("membership stopped")
	})
	return m.closeErr
}

// stopJoinLoop cancels the join loop and waits for it to return. It is safe
// to call more than once.
func (m *Membership) stopJoinLoop() {
	if m.joinDone == nil {
		return
	}
	m.stopJoin()
	<-m.joinDone
}
