package peer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-mqtt/starling/internal/tlsutil"
)

// ALPN protocol names offered on the peer port. grpc-go's client requires
// "h2" to be negotiated, and the Raft dialer offers only raftALPN.
const (
	grpcALPN = "h2"
	raftALPN = "starling-raft"
)

// First bytes that tell the two protocols apart after the TLS handshake.
// The Raft dialer writes raftByte before anything else; the HTTP/2 client
// preface ("PRI * HTTP/2.0") starts with grpcByte.
const (
	raftByte byte = 'R'
	grpcByte byte = 'P'
)

// Backoff of the accept loop after a temporary error such as EMFILE, as in
// net/http.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// Port is the node's peer port: one TCP listener that carries both Raft and
// gRPC, optionally behind mutual TLS. Its methods are safe for concurrent
// use.
type Port struct {
	cfg    Config
	ln     net.Listener
	logger *slog.Logger

	// advertise is Config.Advertise with port 0 replaced by the bound
	// port; empty when Config.Advertise is.
	advertise string

	// TLS configurations and their Reloaders, all nil in plaintext. The
	// Reloaders belong to the port and are closed by Close.
	serverTLS    *tls.Config
	clientTLS    *tls.Config
	serverReload *tlsutil.Reloader
	clientReload *tlsutil.Reloader

	raft *virtualListener
	grpc *virtualListener

	// ctx is cancelled by Close, which ends every pending handshake.
	ctx    context.Context
	cancel context.CancelFunc

	// pending limits the connections between accept and hand-off. The
	// accept loop takes a slot and admit releases it.
	pending chan struct{}

	// wg tracks the accept loop and every admit goroutine.
	wg sync.WaitGroup

	// raftConns holds the inbound connections handed to Raft, which Close
	// closes: hashicorp/raft's transport does not close them itself, so
	// its reading goroutines would outlive the port until the other node
	// hung up.
	raftConns struct {
		sync.Mutex
		m      map[*raftConn]struct{}
		closed bool
	}

	rejectLog logLimiter
	stats     struct {
		raftConns, grpcConns, rejected atomic.Uint64
	}

	closeOnce sync.Once
}

// Stats are a port's connection counters, for metrics.
type Stats struct {
	// RaftConns and GRPCConns count inbound connections handed to Raft and
	// gRPC.
	RaftConns uint64
	GRPCConns uint64
	// Rejected counts inbound connections closed before the hand-off: a
	// failed handshake, a bad first byte, a timeout or too many pending
	// connections.
	Rejected uint64
}

// Listen validates cfg, loads the TLS files and starts accepting on
// cfg.Bind. It rejects plaintext on a non-loopback address unless
// cfg.Insecure is set (ErrPlaintext), and a TLS certificate that does not
// name cfg.NodeName. The caller must Close the port.
func Listen(cfg Config) (*Port, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	host, _, _ := net.SplitHostPort(cfg.Bind) // Validate checked it
	loopback := isLoopbackHost(host)
	if cfg.TLS == nil && !loopback && !cfg.Insecure {
		return nil, fmt.Errorf("%w: Bind is %q: configure the peer TLS files (peer CA, node certificate and key), bind a loopback address, or set the insecure flag to allow plaintext", ErrPlaintext, cfg.Bind)
	}
	if cfg.Advertise == "" {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return nil, fmt.Errorf("peer: Config.Advertise is empty but Bind %q is an unspecified address: set Advertise to the host:port other nodes dial", cfg.Bind)
		}
	}

	logger := cfg.Logger.With(keyComponent, componentName)
	p := &Port{cfg: cfg, logger: logger, pending: make(chan struct{}, cfg.MaxPendingConns)}
	if cfg.TLS != nil {
		if err := p.loadTLS(); err != nil {
			return nil, err
		}
	}

	ln, err := net.Listen("tcp", cfg.Bind)
	if err != nil {
		p.closeReloaders()
		return nil, fmt.Errorf("peer: listen on %s: %w", cfg.Bind, err)
	}
	p.ln = ln
	p.advertise = cfg.Advertise
	if host, port, _ := net.SplitHostPort(cfg.Advertise); port == "0" {
		p.advertise = net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.raft = newVirtualListener(p.raftAddr())
	p.grpc = newVirtualListener(ln.Addr())

	logger.Info("peer port listening", keyNode, cfg.NodeName, keyAddr, ln.Addr().String(), keyAdvertise, p.raftAddr().String(), keyTLS, cfg.TLS != nil)
	if cfg.Insecure && cfg.TLS == nil {
		logger.Warn("insecure mode: the peer port runs without TLS, so any host that reaches it can join Raft and call gRPC",
			keyNode, cfg.NodeName, keyAddr, ln.Addr().String(), keyLoopback, loopback)
	}

	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// loadTLS builds the server and client TLS configurations and checks that
// the node certificate names this node.
func (p *Port) loadTLS() error {
	files := p.cfg.TLS
	serverTLS, serverReload, err := tlsutil.ServerConfig(tlsutil.ServerOptions{
		CertFile:     files.CertFile,
		KeyFile:      files.KeyFile,
		ClientAuth:   tlsutil.ClientAuthRequired,
		ClientCAFile: files.CAFile,
		CRLFiles:     files.CRLFiles,
		NextProtos:   []string{grpcALPN, raftALPN},
		VerifyIdentity: func(leaf *x509.Certificate) error {
			_, err := certNodeName(leaf)
			return err
		},
		ReloadInterval: p.cfg.ReloadInterval,
		Logger:         p.cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("peer: load server TLS files: %w", err)
	}
	clientTLS, clientReload, err := tlsutil.ClientConfig(tlsutil.ClientOptions{
		CertFile:       files.CertFile,
		KeyFile:        files.KeyFile,
		CAFile:         files.CAFile,
		CRLFiles:       files.CRLFiles,
		ReloadInterval: p.cfg.ReloadInterval,
		Logger:         p.cfg.Logger,
	})
	if err != nil {
		_ = serverReload.Close()
		return fmt.Errorf("peer: load client TLS files: %w", err)
	}
	p.serverTLS, p.serverReload = serverTLS, serverReload
	p.clientTLS, p.clientReload = clientTLS, clientReload

	// NOTE: only the certificate loaded at start is checked against
	// NodeName; a reloaded certificate that names another node is used
	// as is.
	cert, err := serverTLS.GetCertificate(&tls.ClientHelloInfo{})
	if err == nil {
		err = tlsutil.VerifyPeerName(cert.Leaf, p.cfg.NodeName)
	}
	if err != nil {
		p.closeReloaders()
		return fmt.Errorf("peer: node certificate %s: %w", files.CertFile, err)
	}
	return nil
}

// Addr returns the address the port listens on, with the actual port when
// Bind asked for port 0.
func (p *Port) Addr() net.Addr {
	return p.ln.Addr()
}

// raftAddr is the address Raft advertises: Config.Advertise, or the bound
// address.
func (p *Port) raftAddr() net.Addr {
	if p.advertise != "" {
		return advertisedAddr(p.advertise)
	}
	return p.ln.Addr()
}

// Stats returns a copy of the connection counters.
func (p *Port) Stats() Stats {
	return Stats{
		RaftConns: p.stats.raftConns.Load(),
		GRPCConns: p.stats.grpcConns.Load(),
		Rejected:  p.stats.rejected.Load(),
	}
}

// ReloadTLS rereads the TLS files now, as the poller does every
// Config.ReloadInterval, and returns the load errors of the server and
// client sides joined. A side that fails keeps its previous material. In
// plaintext, ReloadTLS does nothing.
func (p *Port) ReloadTLS() error {
	if p.serverReload == nil {
		return nil
	}
	return errors.Join(p.serverReload.Reload(), p.clientReload.Reload())
}

// Close stops accepting, closes the listener and both virtual listeners,
// ends every pending handshake and waits for the port's goroutines.
// Connections already handed to gRPC belong to it and stay open; those
// handed to Raft are closed.
// Close is idempotent and returns the listener's close error, if any.
//
// Close the Raft transport and stop the gRPC server first: Raft's accept
// loop logs an error for every failed Accept until its transport is closed.
func (p *Port) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.cancel()
		err = p.ln.Close()
		p.raft.Close()
		p.grpc.Close()
		p.wg.Wait()
		p.closeRaftConns()
		p.closeReloaders()
		p.logger.Info("peer port closed", keyNode, p.cfg.NodeName, keyAddr, p.ln.Addr().String())
	})
	return err
}

func (p *Port) closeReloaders() {
	if p.serverReload != nil {
		_ = p.serverReload.Close()
	}
	if p.clientReload != nil {
		_ = p.clientReload.Close()
	}
}

// acceptLoop accepts TCP connections until Close and hands each to its own
// admit goroutine, so a slow peer never delays the next accept.
func (p *Port) acceptLoop() {
	defer p.wg.Done()

	var backoff time.Duration
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			p.logger.Warn("peer port accept failed; retrying", keyErr, err, keyRetryIn, backoff)
			if !p.sleep(backoff) {
				return
			}
			continue
		}
		backoff = 0

		select {
		case p.pending <- struct{}{}:
		default:
			p.reject(conn, slog.LevelWarn, "", "too many connections in the handshake", nil)
			continue
		}
		p.wg.Add(1)
		go p.admit(conn)
	}
}

// sleep waits for d or until Close, and reports whether the port is open.
func (p *Port) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// reject closes conn, counts it and logs one rate-limited line with the
// remote address and, when its certificate was verified, the node name.
func (p *Port) reject(conn net.Conn, level slog.Level, node, reason string, err error) {
	defer func() { _ = conn.Close() }()
	defer p.stats.rejected.Add(1) // after the log line, which tests wait for

	suppressed, ok := p.rejectLog.allow(time.Now())
	if !ok {
		return
	}
	attrs := []any{keyRemote, conn.RemoteAddr().String()}
	if node != "" {
		attrs = append(attrs, keyNode, node)
	}
	attrs = append(attrs, keyReason, reason)
	if err != nil {
		attrs = append(attrs, keyErr, err)
	}
	if suppressed > 0 {
		attrs = append(attrs, keySuppressed, suppressed)
	}
	p.logger.Log(context.Background(), level, "peer connection rejected", attrs...)
}
