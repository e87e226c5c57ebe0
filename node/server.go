package node

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/node/transport"
	"github.com/starling-mqtt/starling/router"
	"github.com/starling-mqtt/starling/storage"
)

// Server is one broker node. Create it with New, start it with Start and stop it
// with Shutdown; a Server is not reusable after Shutdown.
type Server struct {
	cfg       Config
	log       *slog.Logger
	store     *storage.Store
	trie      *router.Trie
	retained  *router.Tree[*message]
	reg       *registry
	sec       *security
	bans      banList
	shared    sharedPicker
	stats     stats
	persister persister
	routes    routeTable
	cluster   Cluster // nil on a single node; set by SetCluster before Start

	sharedTurn atomic.Uint64 // picks among the nodes that serve a share group
	drained    func()        // see OnDrained

	authSeedPending atomic.Bool // the file's auth section is not yet in the cluster (UseClusterAuth)

	// limits is cfg.Limits as in force: ReloadLimits swaps it while the
	// node runs, so the paths that read a limit load it here.
	limits atomic.Pointer[Limits]

	// retainedIdx holds the clocks of the retained topics and tombstones,
	// for last-writer-wins and digests in a cluster (retained_cluster.go).
	retainedIdx retainedIndex

	matchPool  sync.Pool // *[]router.Entry scratch for route
	indexPool  sync.Pool // map[string]int scratch for route
	clientWarn rateLimitedLog
	// busyWarn logs the connections refused because the node is overloaded
	// (CONNACK 0x89), apart from clientWarn, so that a flood of client
	// errors cannot hide an overload.
	busyWarn rateLimitedLog

	name      string    // Config.NodeName or the host name
	startedAt time.Time // set by Start

	// idle parks idle plain TCP connections without a goroutine (conn.go,
	// poll_linux.go). Start creates it; nil before Start, and where epoll
	// is unavailable. Shutdown closes it after every connection ended.
	idle *idlePoller

	closing atomic.Bool
	stop    chan struct{}  // closed by Shutdown to stop background loops
	wg      sync.WaitGroup // accept loops, connection readers and background loops

	mu struct {
		sync.Mutex
		listeners []*transport.Listener
		conns     map[*conn]struct{}
	}
}

// New opens the store in cfg.DataDir and restores persistent sessions and
// retained messages from it. It does not listen yet.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("node: invalid configuration: %w", err)
	}
	store, err := storage.Open(storage.Config{
		Dir:          cfg.DataDir,
		Durability:   cfg.Durability,
		MaxDiskBytes: cfg.Limits.MaxDiskBytes,
		Logger:       cfg.Logger,
	})
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("node: data directory %s is in use by another process (is a node already running on it?): %w", cfg.DataDir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("node: open store: %w", err)
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "node"),
		store:      store,
		trie:       router.NewTrie(),
		retained:   router.NewTree[*message](),
		reg:        newRegistry(),
		clientWarn: rateLimitedLog{interval: time.Second},
		busyWarn:   rateLimitedLog{interval: time.Second},
		shared:     sharedPicker{seed: maphash.MakeSeed()},
	}
	lim := cfg.Limits
	s.limits.Store(&lim)
	s.name = cfg.NodeName
	if s.name == "" {
		s.name, _ = os.Hostname()
	}
	if cfg.NodeName != "" {
		s.log = s.log.With(keyNode, cfg.NodeName)
	}
	s.matchPool.New = func() any { b := make([]router.Entry, 0, 16); return &b }
	s.indexPool.New = func() any { return make(map[string]int) }
	s.mu.conns = make(map[*conn]struct{})
	s.stop = make(chan struct{})
	s.persister.srv = s
	if err := s.initSecurity(); err != nil {
		store.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := s.loadBans(); err != nil {
		s.sec.close()
		store.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := s.restore(); err != nil {
		s.sec.close()
		store.Close()
		return nil, fmt.Errorf("node: restore state from %s: %w", cfg.DataDir, err)
	}
	return s, nil
}

// Start binds every listener and starts accepting clients. If one listener
// fails to bind, the ones already bound are closed and the error returned.
func (s *Server) Start() error {
	if p, err := newIdlePoller(s.log); err == nil {
		s.idle = p
	} else {
		s.log.Info("idle connections keep a goroutine each", keyErr, err)
	}
	for _, lc := range s.cfg.Listeners {
		// transport and tlsutil name their own components in the logs.
		tc, err := lc.transportConfig(s.cfg.Logger, s.cfg.Limits.MaxPacketSize)
		if err != nil {
			s.closeListeners()
			s.idle.close()
			return fmt.Errorf("node: listener %s: %w", lc.Name, err)
		}
		ln, err := transport.Listen(tc)
		if err != nil {
			s.closeListeners()
			s.idle.close()
			return fmt.Errorf("node: listen on %s: %w", lc.URL, err)
		}
		// Behind a PROXY protocol proxy the clients are wherever the proxy's
		// are, so transport reports such a listener as not loopback-only.
		anon := ln.Loopback()
		if lc.AllowAnonymous != nil {
			anon = *lc.AllowAnonymous
		}
		if anon && !ln.Loopback() {
			s.log.Warn("listener admits anonymous clients from the network", keyListener, lc.Name)
		}
		ls := &listenerState{name: lc.Name, loopback: ln.Loopback(), anon: anon, chain: s.chainFor(&lc, anon)}
		s.mu.Lock()
		s.mu.listeners = append(s.mu.listeners, ln)
		s.mu.Unlock()
		s.log.Info("listening", keyListener, lc.Name, "addr", ln.Addr().String(), "transport", ln.Transport(), "anonymous", anon)
		if !anon {
			s.warnIfNoUsers(lc.Name)
		}
		s.wg.Add(1)
		go s.acceptLoop(ln, ls)
	}
	s.startedAt = time.Now()
	if s.cfg.SysInterval > 0 {
		s.wg.Add(1)
		go s.sysLoop(s.cfg.SysInterval, s.stop)
	}
	return nil
}

// OnDrained sets a function that Shutdown calls once every client is gone
// and before the store closes: the cluster stops there, so a publish
// accepted during the shutdown still reaches its outbox. Call it before
// Start.
func (s *Server) OnDrained(fn func()) { s.drained = fn }

// Addrs returns the bound listener addresses, in configuration order.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, len(s.mu.listeners))
	for i, ln := range s.mu.listeners {
		out[i] = ln.Addr()
	}
	return out
}

// acceptLoop accepts connections until the listener closes. Temporary accept
// errors (such as running out of file descriptors) back off up to one second.
func (s *Server) acceptLoop(ln *transport.Listener, ls *listenerState) {
	defer s.wg.Done()
	backoff := time.Duration(0)
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Error("accept failed; retrying", keyListener, ln.Addr().String(), keyErr, err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := newConn(s, nc, ls)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.mu.conns[c] = struct{}{}
		s.mu.Unlock()
		// The connection's last owner calls connFinished, which releases
		// this slot.
		s.wg.Add(1)
		go c.serve()
	}
}

// connFinished forgets a connection that has ended.
func (s *Server) connFinished(c *conn) {
	s.mu.Lock()
	delete(s.mu.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.mu.listeners {
		ln.Close()
	}
}

// Shutdown stops accepting, disconnects every client (MQTT 5.0 clients get
// DISCONNECT 0x8B, Server shutting down), publishes the wills that are due, and
// closes the store. Everything acknowledged is on disk when it returns. If ctx
// ends first, the remaining connections are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.closing.CompareAndSwap(false, true) {
		return errors.New("node: already shut down")
	}
	s.log.Info("shutting down")
	close(s.stop)
	s.closeListeners()

	s.mu.Lock()
	conns := make([]*conn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.kick(packet.ReasonServerShuttingDown)
	}

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("shutdown deadline passed; closing remaining connections")
		for _, c := range conns {
			c.closeSocket()
		}
		<-done
	}
	s.idle.close()

	s.persister.wg.Wait()
	s.stopTimers()
	s.sec.close()
	if s.drained != nil {
		// No client is left to publish: the cluster may stop forwarding
		// now, and what it has not sent stays in the outboxes.
		s.drained()
	}
	if err := s.store.Close(); err != nil {
		return fmt.Errorf("node: close store: %w", err)
	}
	s.log.Info("shut down")
	return nil
}

// stopTimers stops will and expiry timers so none fires after the store closes.
// Their state is in storage and is rescheduled at the next start.
func (s *Server) stopTimers() {
	for _, ss := range s.reg.all() {
		ss.mu.Lock()
		stopTimer(&ss.mu.willTimer)
		stopTimer(&ss.mu.expiryTimer)
		ss.mu.ended = true
		ss.mu.Unlock()
	}
}

// publishWill publishes a will on behalf of its client, like a PUBLISH from
// it, if the rules allow the client to publish there at this moment.
func (s *Server) publishWill(clientID string, w *willMsg) {
	if w == nil {
		return
	}
	if !s.willAccess(clientID, w).mayPublishWill(w.Will) {
		s.stats.denied[deniedWill].Add(1)
		s.clientWarn.log(s.log, "will not published: topic not authorized", keyClientID, clientID, "username", w.username, keyTopic, w.Topic)
		return
	}
	msg := &message{
		topic:     w.Topic,
		payload:   w.Payload,
		qos:       w.QoS,
		retain:    w.Retain,
		props:     forwardedProperties(&w.Properties),
		publisher: clientID,
	}
	if w.Properties.HasMessageExpiry {
		msg.expiresAt = time.Now().Add(time.Duration(w.Properties.MessageExpiry) * time.Second)
	}
	if err := s.publishMessage(msg); err != nil {
		s.log.Error("will not published", keyClientID, clientID, keyErr, err)
		return
	}
	s.log.Debug("will published", keyClientID, clientID, keyTopic, w.Topic)
}

// commitNoSync commits a batch whose loss in a crash causes at most a harmless
// redelivery; a failure is logged and counted.
func (s *Server) commitNoSync(b *storage.Batch, clientID string) {
	if b.Empty() {
		return
	}
	if err := b.CommitNoSync(); err != nil {
		s.stats.storageErrors.Add(1)
		s.log.Error("storage write failed", keyClientID, clientID, keyErr, err)
	}
}

// commitSync commits a batch durably; a failure is logged and counted.
func (s *Server) commitSync(b *storage.Batch, clientID string) {
	if b.Empty() {
		return
	}
	if err := b.Commit(); err != nil {
		s.stats.storageErrors.Add(1)
		s.log.Error("storage write failed", keyClientID, clientID, keyErr, err)
	}
}
