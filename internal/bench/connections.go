package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Connection scenarios (storm and idle) open many connections that carry
// almost nothing, so their clients use small buffers instead of the 64 KiB
// ones of publishers and subscribers: 50,000 connections would otherwise
// need 6 GiB in this process.
const smallBufferSize = 256

// connectionsPerSource is how many connections of a storm or idle run come
// from one local address. One source address has about 28,000 ephemeral
// ports (Linux's default ip_local_port_range is 32768–60999), and the
// connections a run closes stay in TIME_WAIT for a minute. So when the
// broker is on an IPv4 loopback address, the scenarios spread their
// connections over 127.1.0.1, 127.1.0.2 and so on.
const connectionsPerSource = 1000

// fileLimitMargin is the descriptors a run keeps free for everything other
// than its connections.
const fileLimitMargin = 64

// ConnectionStats is the outcome of a storm or idle run.
type ConnectionStats struct {
	Requested   int     `json:"requested"`        // connections to open (Clients)
	Opened      int     `json:"opened"`           // connections the broker accepted with a CONNACK
	Failed      int     `json:"failed"`           // attempts that failed: TCP connect, CONNACK timeout or rejection
	SourceAddrs int     `json:"source_addresses"` // local 127.0.0.0/8 addresses used; 0 when the broker is not on IPv4 loopback
	FileLimit   uint64  `json:"file_limit"`       // soft RLIMIT_NOFILE of this process during the run
	OpenSecs    float64 `json:"open_seconds"`     // from the first attempt to the last CONNACK or failure
	AcceptRate  float64 `json:"accept_rate"`      // Opened per second of OpenSecs

	// ConnectLatency is from the start of the TCP connect to the CONNACK,
	// in microseconds, of the accepted connections.
	ConnectLatency LatencySummary `json:"connect_latency_us"`

	// HoldSecs is how long the idle scenario held its connections open.
	HoldSecs float64 `json:"hold_seconds,omitempty"`

	// AliveAfterHold counts the idle connections that replied to a PINGREQ at
	// the end of the hold, so that a broker that dropped connections does
	// not look cheap.
	AliveAfterHold int `json:"alive_after_hold,omitempty"`

	// RSSPerConnBytes is the broker's resident memory after the hold minus
	// before the first connection, divided by Opened (idle, with a broker
	// PID only).
	RSSPerConnBytes float64 `json:"rss_per_connection_bytes,omitempty"`

	// BrokerGC reports that the broker collected its garbage and returned
	// free memory to the operating system, through Config.BrokerGCURL, right
	// before both memory samples of RSSPerConnBytes (idle only).
	BrokerGC bool `json:"broker_gc,omitempty"`
}

// connRun is the state of one storm or idle run.
type connRun struct {
	cfg    Config
	tls    *clientTLS // nil without TLS
	opts   dialOptions
	source func(i int) *net.TCPAddr
	conns  []*conn // index i is connection i, nil until it opened
	stats  ConnectionStats

	errMu struct {
		sync.Mutex
		list    []string
		dropped int
	}
}

func newConnRun(cfg Config, ct *clientTLS) *connRun {
	cr := &connRun{
		cfg: cfg,
		tls: ct,
		opts: dialOptions{
			addr:           cfg.Addr,
			version:        cfg.Version,
			keepAlive:      cfg.KeepAlive,
			connectTimeout: cfg.ConnectTimeout,
			username:       cfg.Username,
			password:       cfg.Password,
			smallBuffers:   true,
			tls:            ct.forAddr(cfg.Addr),
			tlsRun:         ct,
		},
		conns: make([]*conn, cfg.Clients),
	}
	cr.stats.Requested = cfg.Clients
	cr.source, cr.stats.SourceAddrs = loopbackSources(cfg.Addr, cfg.Clients)
	return cr
}

// runStorm opens cfg.Clients connections, at most cfg.ConnectParallelism
// handshakes at a time, until all are open or cfg.Duration passes, then
// closes them. A failed attempt is counted and the storm goes on.
func runStorm(ctx context.Context, cfg Config, ct *clientTLS) *Result {
	cr := newConnRun(cfg, ct)
	res := cr.newResult()
	cr.raiseFileLimit()

	before, brokerErr := cr.sampleBroker()
	toolBefore := selfCPU()

	openCtx, cancel := context.WithTimeoutCause(ctx, cfg.Duration, errDurationReached)
	defer cancel()
	res.StoppedBy = cr.open(openCtx, ctx, false)
	res.PublishSecs = cr.stats.OpenSecs

	after, afterErr := cr.sampleBroker()
	res.ToolCPU = (selfCPU() - toolBefore).Seconds()
	cr.closeAll()

	cr.finish(res, before, after, errors.Join(brokerErr, afterErr))
	return res
}

// runIdle opens cfg.Clients connections like runStorm but stops at the first
// failure, which is usually a limit (file descriptors, ports, the broker's
// maximum connections). It then holds the connections open for cfg.Hold,
// sending only the PINGREQs keep alive needs, checks which are still alive,
// and closes them.
func runIdle(ctx context.Context, cfg Config, ct *clientTLS) *Result {
	cr := newConnRun(cfg, ct)
	res := cr.newResult()
	cr.raiseFileLimit()

	gcBefore := cr.brokerGC(ctx, "before the first connection")
	before, brokerErr := cr.sampleBroker()
	toolBefore := selfCPU()

	openCtx, cancel := context.WithTimeoutCause(ctx, cfg.Duration, errDurationReached)
	defer cancel()
	res.StoppedBy = cr.open(openCtx, ctx, true)
	res.PublishSecs = cr.stats.OpenSecs

	holdStart := time.Now()
	pings := cr.hold(ctx)
	cr.stats.HoldSecs = time.Since(holdStart).Seconds()
	if ctx.Err() != nil {
		res.StoppedBy = "interrupted"
	}

	gcAfter := cr.brokerGC(ctx, "after the hold")
	cr.stats.BrokerGC = gcBefore && gcAfter
	after, afterErr := cr.sampleBroker()
	res.ToolCPU = (selfCPU() - toolBefore).Seconds()
	if ctx.Err() == nil {
		cr.stats.AliveAfterHold = cr.checkAlive(pings)
	}
	cr.closeAll()

	cr.finish(res, before, after, errors.Join(brokerErr, afterErr))
	if res.Broker != nil && cr.stats.Opened > 0 {
		grown := res.Broker.RSSAfterBytes - res.Broker.RSSBeforeBytes
		cr.stats.RSSPerConnBytes = float64(grown) / float64(cr.stats.Opened)
	}
	return res
}

func (cr *connRun) newResult() *Result {
	protocol := "3.1.1"
	if cr.cfg.Version == Version5 {
		protocol = "5.0"
	}
	return &Result{
		Scenario:     cr.cfg.Scenario,
		Protocol:     protocol,
		CleanSession: true,
		Connections:  &cr.stats,
	}
}

// finish fills the broker usage and the errors of res.
func (cr *connRun) finish(res *Result, before, after procSample, brokerErr error) {
	if cr.cfg.BrokerPID != 0 {
		if brokerErr != nil {
			cr.recordError(fmt.Errorf("broker usage: %w", brokerErr))
		} else {
			res.Broker = brokerUsage(cr.cfg.BrokerPID, before, after, 0)
		}
	}
	res.TLS = cr.tls.info()
	res.Errors = cr.errorList()
}

// brokerGC makes the broker free memory through cfg.BrokerGCURL, when it
// is set, and reports whether the request succeeded. A failure is recorded as an error of
// the run, whose memory figure then includes uncollected garbage.
func (cr *connRun) brokerGC(ctx context.Context, when string) bool {
	if cr.cfg.BrokerGCURL == "" || ctx.Err() != nil {
		return false
	}
	if err := postBrokerGC(ctx, cr.cfg.BrokerGCURL); err != nil {
		cr.recordError(fmt.Errorf("broker garbage collection %s: %w", when, err))
		return false
	}
	return true
}

func (cr *connRun) sampleBroker() (procSample, error) {
	if cr.cfg.BrokerPID == 0 {
		return procSample{}, nil
	}
	return sampleProcess(cr.cfg.BrokerPID)
}

// raiseFileLimit raises the soft RLIMIT_NOFILE of this process to what the
// run needs, up to the hard limit. A limit that stays too low is not an
// error here: the run stops at the first failed connection and reports how
// many it opened.
func (cr *connRun) raiseFileLimit() {
	limit, err := raiseFileLimit(uint64(cr.cfg.Clients) + fileLimitMargin)
	if err != nil {
		cr.recordError(err)
	}
	cr.stats.FileLimit = limit
}

// raiseFileLimit sets the soft RLIMIT_NOFILE to at least needed, capped at
// the hard limit, and returns the soft limit in effect.
func raiseFileLimit(needed uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open file limit: %w", err)
	}
	if lim.Cur >= needed || lim.Cur >= lim.Max {
		return lim.Cur, nil
	}
	old := lim.Cur
	lim.Cur = min(needed, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return old, fmt.Errorf("raise the open file limit from %d to %d: %w", old, lim.Cur, err)
	}
	return lim.Cur, nil
}

// loopbackSources returns the local address of connection i, and how many
// distinct addresses n connections use. When addr is not an IPv4 loopback
// address, the kernel picks the source and the function returns nil.
func loopbackSources(addr string, n int) (func(i int) *net.TCPAddr, int) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return func(int) *net.TCPAddr { return nil }, 0
	}
	ip := net.ParseIP(host).To4()
	if ip == nil || !ip.IsLoopback() {
		return func(int) *net.TCPAddr { return nil }, 0
	}
	source := func(i int) *net.TCPAddr {
		k := i / connectionsPerSource
		// 127.1.0.1 to 127.1.0.254, then 127.1.1.1 and so on: never an
		// address ending in 0 or 255 and never the broker's 127.0.0.1.
		return &net.TCPAddr{IP: net.IPv4(127, 1, byte(k/254), byte(k%254+1))}
	}
	return source, (n + connectionsPerSource - 1) / connectionsPerSource
}

// open dials every connection on cfg.ConnectParallelism goroutines until all
// are open, openCtx ends, or (with stopOnFailure) one attempt fails. It
// returns what stopped it: count, duration, interrupted (parent ended) or
// limit. Connection i gets the client identifier PREFIX-conn-i.
func (cr *connRun) open(openCtx, parent context.Context, stopOnFailure bool) string {
	var (
		next      atomic.Int64
		opened    atomic.Int64
		failed    atomic.Int64
		stop      atomic.Bool
		lastDone  atomic.Int64 // nanoseconds since start
		wg        sync.WaitGroup
		latencyMu sync.Mutex
		latency   histogram
	)
	start := time.Now()
	n := len(cr.conns)
	for range min(n, cr.cfg.ConnectParallelism) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local histogram
			for !stop.Load() && openCtx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					break
				}
				opts := cr.opts
				opts.localAddr = cr.source(i)
				began := time.Now()
				c, _, err := dial(openCtx, opts, fmt.Sprintf("%s-conn-%d", cr.cfg.ClientPrefix, i), true, 0)
				lastDone.Store(int64(time.Since(start)))
				if err != nil {
					if openCtx.Err() != nil {
						break // the bound, not the broker, ended this attempt
					}
					failed.Add(1)
					cr.recordError(err)
					if stopOnFailure {
						stop.Store(true)
					}
					continue
				}
				local.record(int64(time.Since(began)))
				cr.conns[i] = c
				opened.Add(1)
			}
			latencyMu.Lock()
			latency.merge(&local)
			latencyMu.Unlock()
		}()
	}
	wg.Wait()

	cr.stats.Opened = int(opened.Load())
	cr.stats.Failed = int(failed.Load())
	cr.stats.OpenSecs = time.Duration(lastDone.Load()).Seconds()
	if cr.stats.OpenSecs > 0 {
		cr.stats.AcceptRate = float64(cr.stats.Opened) / cr.stats.OpenSecs
	}
	cr.stats.ConnectLatency = summarize(&latency)

	switch {
	case parent.Err() != nil:
		return "interrupted"
	case stop.Load():
		return "limit"
	case openCtx.Err() != nil && cr.stats.Opened+cr.stats.Failed < n:
		return "duration"
	}
	return "count"
}

// hold waits cfg.Hold or until ctx ends. When the keep alive interval is
// shorter than the hold, it sends a PINGREQ on every open connection each
// half interval, as an idle client must [MQTT-3.1.2-24]. It returns the
// PINGREQs sent on each connection, whose PINGRESPs checkAlive skips.
func (cr *connRun) hold(ctx context.Context) []int {
	pings := make([]int, len(cr.conns))
	timer := time.NewTimer(cr.cfg.Hold)
	defer timer.Stop()

	var tick <-chan time.Time
	if interval := cr.cfg.KeepAlive / 2; interval > 0 && interval < cr.cfg.Hold {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		select {
		case <-ctx.Done():
			return pings
		case <-timer.C:
			return pings
		case <-tick:
			for i, c := range cr.conns {
				if c == nil {
					continue
				}
				_ = c.nc.SetWriteDeadline(time.Now().Add(cr.cfg.ConnectTimeout))
				if c.write(pingreqPacket) == nil && c.flush() == nil {
					pings[i]++
				}
			}
		}
	}
}

// checkAlive sends a PINGREQ on every open connection and returns how many
// replied with a PINGRESP within cfg.ConnectTimeout. The earlier PINGRESPs
// of hold are read first.
func (cr *connRun) checkAlive(pings []int) int {
	var alive atomic.Int64
	_ = forEachParallel(context.Background(), len(cr.conns), func(i int) error {
		c := cr.conns[i]
		if c == nil {
			return nil
		}
		if err := cr.ping(c, pings[i]+1); err != nil {
			cr.recordError(fmt.Errorf("idle connection %s after the hold: %w", c.clientID, err))
			return nil
		}
		alive.Add(1)
		return nil
	})
	return int(alive.Load())
}

// ping sends one PINGREQ and reads PINGRESPs until want of them arrived.
func (cr *connRun) ping(c *conn, want int) error {
	if err := c.nc.SetDeadline(time.Now().Add(cr.cfg.ConnectTimeout)); err != nil {
		return err
	}
	if err := c.write(pingreqPacket); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	for got := 0; got < want; {
		f, err := c.readFrame()
		if err != nil {
			return fmt.Errorf("read PINGRESP: %w", err)
		}
		switch f.packetType() {
		case typePingresp:
			got++
		case typeDisconnect:
			return fmt.Errorf("broker sent DISCONNECT with reason code 0x%02X", parseDisconnect(f))
		default:
			return fmt.Errorf("unexpected packet type %d on an idle connection", f.packetType())
		}
	}
	return c.nc.SetDeadline(time.Time{})
}

// closeAll disconnects every open connection.
func (cr *connRun) closeAll() {
	_ = forEachParallel(context.Background(), len(cr.conns), func(i int) error {
		if c := cr.conns[i]; c != nil {
			c.disconnect()
		}
		return nil
	})
}

func (cr *connRun) recordError(err error) {
	cr.errMu.Lock()
	defer cr.errMu.Unlock()
	if len(cr.errMu.list) < maxErrors {
		cr.errMu.list = append(cr.errMu.list, err.Error())
	} else {
		cr.errMu.dropped++
	}
}

func (cr *connRun) errorList() []string {
	cr.errMu.Lock()
	defer cr.errMu.Unlock()
	list := append([]string(nil), cr.errMu.list...)
	if cr.errMu.dropped > 0 {
		list = append(list, fmt.Sprintf("%d more errors", cr.errMu.dropped))
	}
	return list
}

// writeConnectionsText writes the report of a storm or idle run.
func (r *Result) writeConnectionsText(row func(name, format string, args ...any)) {
	s := r.Connections
	row("scenario", "%s: %d connections requested, MQTT %s", r.Scenario, s.Requested, r.Protocol)
	r.writeTLSText(row)
	row("opened", "%d in %.2f s (%.0f connections/s), stopped by %s", s.Opened, s.OpenSecs, s.AcceptRate, r.StoppedBy)
	row("failed", "%d", s.Failed)
	row("sources", "%d local addresses, open file limit %d", s.SourceAddrs, s.FileLimit)
	l := s.ConnectLatency
	row("connect latency", "p50 %s  p99 %s  max %s", formatMicros(l.P50), formatMicros(l.P99), formatMicros(l.Max))
	if r.Scenario == ScenarioIdle {
		row("held", "%.2f s, %d alive after the hold", s.HoldSecs, s.AliveAfterHold)
	}
	if b := r.Broker; b != nil {
		row("broker cpu", "%.2f s, pid %d", b.CPUSeconds, b.PID)
		row("broker rss", "%s before, %s after", formatBytes(b.RSSBeforeBytes), formatBytes(b.RSSAfterBytes))
		if r.Scenario == ScenarioIdle {
			gc := "without a forced garbage collection"
			if s.BrokerGC {
				gc = "each sample after a forced garbage collection"
			}
			row("rss per connection", "%.2f KiB, %s", s.RSSPerConnBytes/1024, gc)
		}
	}
	row("tool cpu", "%.2f s", r.ToolCPU)
	for _, e := range r.Errors {
		row("error", "%s", e)
	}
}
