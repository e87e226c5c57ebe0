package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/starling-mqtt/starling/internal/tlsutil"
)

// acceptQueueSize bounds the prepared connections waiting for Accept. When
// it is full, handshake goroutines wait and the accept goroutine stops
// taking plain TCP connections, so a caller that stops calling Accept
// pushes back on the kernel's backlog instead of growing memory.
const acceptQueueSize = 64

// warnInterval is the shortest time between two warnings about the same
// rejection reason.
const warnInterval = 10 * time.Second

// Listener accepts client connections on one address and prepares them
// for MQTT: it checks the address lists and limits, reads the PROXY header,
// runs the TLS handshake and the WebSocket upgrade, and hands out ready
// connections through Accept. It implements net.Listener.
//
// Goroutines: the accept goroutine takes sockets and applies the checks
// that need no I/O. Each socket that needs a PROXY header, a TLS handshake
// or an upgrade gets a handshake goroutine of its own. The timeouts of
// Config bound these in time, and MaxConnections bounds their number. The
// Listener owns all of them, and Close stops them and waits.
//
// Lock order: mu only. The connections it tracks are closed outside it.
type Listener struct {
	cfg       Config
	ep        endpoint
	log       *slog.Logger
	ln        net.Listener
	tlsConfig *tls.Config       // nil for tcp and ws
	reloader  *tlsutil.Reloader // nil for tcp and ws
	upgrader  *websocket.Upgrader
	access    accessList
	trusted   prefixSet

	bucket   *tokenBucket // used by the accept goroutine only
	slots    slots
	from     connFrom // listener fields that every Conn of the listener refers to
	counters counters
	warn     warnLimiter

	ready     chan *Conn    // prepared connections, at most acceptQueueSize
	closed    chan struct{} // closed when Close starts
	closeDone chan struct{} // closed when Close has finished
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // the accept goroutine and the handshake goroutines

	mu struct {
		sync.Mutex
		closing bool
		// pending holds the sockets in a handshake, so that Close can
		// interrupt them.
		pending map[net.Conn]struct{}
	}
}

// Listen validates cfg, loads the TLS files, binds the address and starts
// accepting. Errors name the invalid field, or the address that could not
// be bound.
func Listen(cfg Config) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ep, _ := parseURL(cfg.URL)
	allow, _ := parsePrefixes("Allow", cfg.Allow)
	deny, _ := parsePrefixes("Deny", cfg.Deny)
	trusted, _ := parsePrefixes("TrustedProxies", cfg.TrustedProxies)

	l := &Listener{
		cfg:       cfg,
		ep:        ep,
		log:       cfg.Logger.With("component", "transport", "listener", cfg.Name),
		access:    accessList{allow: allow, deny: deny},
		trusted:   trusted,
		bucket:    newTokenBucket(cfg.MaxConnRate, cfg.MaxConnBurst, time.Now()),
		warn:      warnLimiter{interval: warnInterval},
		ready:     make(chan *Conn, acceptQueueSize),
		closed:    make(chan struct{}),
		closeDone: make(chan struct{}),
	}
	l.slots.max = int64(cfg.MaxConnections)
	l.from = connFrom{listener: cfg.Name, transport: ep.transport, slots: &l.slots}
	l.mu.pending = make(map[net.Conn]struct{})
	if ep.transport == TransportWS || ep.transport == TransportWSS {
		l.upgrader = newUpgrader(cfg.WSHandshakeTimeout)
	}

	if cfg.TLS != nil {
		opts := *cfg.TLS
		if ep.transport == TransportWSS && len(opts.NextProtos) == 0 {
			opts.NextProtos = []string{"http/1.1"}
		}
		if opts.Logger == nil {
			opts.Logger = cfg.Logger
		}
		tc, r, err := tlsutil.ServerConfig(opts)
		if err != nil {
			return nil, fmt.Errorf("transport: listener %s: %w", cfg.Name, err)
		}
		l.tlsConfig, l.reloader = tc, r
	}

	lc := listenConfig()
	ln, err := lc.Listen(context.Background(), "tcp", ep.address)
	if err != nil {
		if l.reloader != nil {
			l.reloader.Close()
		}
		return nil, fmt.Errorf("transport: listen on %s: %w", cfg.URL, err)
	}
	l.ln = ln

	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Accept waits for the next prepared connection and returns it as a
// *Conn. It returns net.ErrClosed once Close has been called. Rejected
// connections are closed and counted in Stats, never returned.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptConn()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptConn is Accept without the conversion to net.Conn.
func (l *Listener) AcceptConn() (*Conn, error) {
	select {
	case c := <-l.ready:
		if l.isClosed() {
			// Close started while c was queued, and no connection is
			// handed out after Close.
			c.Close()
			return nil, net.ErrClosed
		}
		l.counters.accepted.Add(1)
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Addr returns the bound address, with the port the kernel picked for
// port 0.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Name returns Config.Name.
func (l *Listener) Name() string { return l.cfg.Name }

// Transport returns TransportTCP, TransportTLS, TransportWS or
// TransportWSS.
func (l *Listener) Transport() string { return l.ep.transport }

// Loopback reports whether every client of the listener is on this host:
// the bound address is a loopback address and no PROXY protocol is in use.
// A listener that takes PROXY headers reports false even on loopback,
// because its clients are wherever the proxy's clients are.
//
// NOTE: a reverse proxy on this host that forwards without a PROXY header
// makes a loopback listener reachable from the network, and Loopback cannot
// see that.
func (l *Listener) Loopback() bool {
	if l.cfg.ProxyProtocol {
		return false
	}
	return addrOf(l.ln.Addr()).IsLoopback()
}

// Stats returns a snapshot of the counters.
func (l *Listener) Stats() Stats {
	s := Stats{
		Accepted: l.counters.accepted.Load(),
		Current:  l.slots.used.Load(),
	}
	for r := range s.Rejected {
		s.Rejected[r] = l.counters.rejected[r].Load()
	}
	return s
}

// Reloader returns the TLS reloader of a tls or wss listener, for its
// Stats and LastError, or nil. The Listener closes it.
func (l *Listener) Reloader() *tlsutil.Reloader { return l.reloader }

// Close stops accepting, interrupts the handshakes in progress, closes the
// connections that were prepared but not yet returned by Accept, waits for
// every goroutine of the Listener to return, and stops the TLS reloader.
// Connections that Accept returned stay open: their owner closes them.
// Close is idempotent, and a concurrent call waits for the first one.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		defer close(l.closeDone)

		l.mu.Lock()
		l.mu.closing = true
		pending := make([]net.Conn, 0, len(l.mu.pending))
		for nc := range l.mu.pending {
			pending = append(pending, nc)
		}
		l.mu.Unlock()

		close(l.closed)
		l.closeErr = l.ln.Close()
		for _, nc := range pending {
			nc.Close()
		}
		l.wg.Wait()

		// The goroutines that send to ready have returned, so this drain
		// closes every connection left.
		for drained := false; !drained; {
			select {
			case c := <-l.ready:
				c.Close()
			default:
				drained = true
			}
		}
		if l.reloader != nil {
			l.reloader.Close()
		}
	})
	<-l.closeDone
	return l.closeErr
}

func (l *Listener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// acceptLoop takes sockets until the listener closes. It backs off on
// errors such as running out of file descriptors, from 5 ms up to 1 s.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	backoff := time.Duration(0)
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if l.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Error("accept failed; retrying", "err", err, "backoff", backoff)
			if !l.sleep(backoff) {
				return
			}
			continue
		}
		backoff = 0
		l.admit(nc)
	}
}

// sleep waits for d and reports false when the listener closed first.
func (l *Listener) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.closed:
		return false
	}
}

// admit applies the checks that need no I/O to a new socket, in order of
// cost: the address lists (unless a PROXY header will name the client),
// the rate, then the connection count. A socket that passes either goes
// straight to the accept queue or gets a handshake goroutine.
func (l *Listener) admit(nc net.Conn) {
	if !l.cfg.ProxyProtocol {
		if r := l.access.check(addrOf(nc.RemoteAddr())); r != reasonNone {
			l.rejectEarly(nc, r)
			return
		}
	}
	if !l.bucket.take(time.Now()) {
		l.rejectEarly(nc, ReasonRate)
		return
	}
	if !l.slots.acquire() {
		l.rejectEarly(nc, ReasonMaxConnections)
		return
	}

	if l.ep.transport == TransportTCP && !l.cfg.ProxyProtocol {
		// Nothing to read before MQTT, so no goroutine is needed. The send
		// blocks while the queue is full, which is the intended backpressure.
		l.deliver(l.newConn(nc, nc.RemoteAddr(), nil, nil))
		return
	}

	l.mu.Lock()
	if l.mu.closing {
		l.mu.Unlock()
		nc.Close()
		l.slots.release()
		return
	}
	l.mu.pending[nc] = struct{}{}
	l.mu.Unlock()

	l.wg.Add(1)
	go l.handshake(nc)
}

// rejectEarly closes a socket rejected before any handshake. It resets the
// connection (SO_LINGER 0) rather than closing it gracefully, so that a
// flood of rejected sockets leaves no TIME_WAIT state on this host.
func (l *Listener) rejectEarly(nc net.Conn, r Reason) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	nc.Close()
	l.countReject(r, nc.RemoteAddr(), nil)
}

// countReject counts a rejection and logs it: at Warn, rate-limited, when
// a limit of the listener was reached, and at Debug otherwise, because
// clients can cause those at will.
func (l *Listener) countReject(r Reason, remote net.Addr, err error) {
	l.counters.rejected[r].Add(1)
	switch r {
	case ReasonRate, ReasonMaxConnections:
		if l.warn.allow(r, time.Now()) {
			l.log.Warn("rejecting connections: listener limit reached", "reason", r.String(),
				"rejected", l.counters.rejected[r].Load(), "current", l.slots.used.Load(),
				"max_connections", l.cfg.MaxConnections, "max_conn_rate", l.cfg.MaxConnRate)
		}
	case ReasonPanic:
		l.log.Error("preparing a connection panicked; it was closed", "remote", remote.String(), "err", err)
	default:
		l.log.Debug("connection rejected", "reason", r.String(), "remote", remote.String(), "err", err)
	}
}

// deliver queues a prepared connection for Accept, or closes it when the
// listener closes first.
func (l *Listener) deliver(c *Conn) {
	select {
	case l.ready <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *Listener) newConn(stream net.Conn, remote, proxy net.Addr, certs []*x509.Certificate) *Conn {
	c := &Conn{conn: stream, remote: remote, from: &l.from}
	if proxy != nil || certs != nil {
		c.extra = &connExtra{proxy: proxy, peerCerts: certs}
	}
	return c
}
