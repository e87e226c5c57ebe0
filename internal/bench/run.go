package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons a publishing phase ends, as context causes.
var (
	errDurationReached = errors.New("bench: duration reached")
	errRunFailed       = errors.New("bench: a client failed")
)

// maxErrors bounds the error messages a Result lists; the rest are counted.
const maxErrors = 10

// connectParallelism bounds the connection handshakes in progress at once.
const connectParallelism = 16

// Run connects the clients of cfg, publishes until cfg.Duration or cfg.Count,
// waits up to cfg.Drain for the last acknowledgements and deliveries, then
// disconnects and returns what it measured.
//
// It returns an error only when the configuration is invalid or a client
// cannot connect or subscribe. A client that fails later ends the publishing
// phase early, and the Result lists the error. When ctx ends, publishing
// stops, the drain phase is skipped and the partial Result is returned.
//
// Run starts, per publisher, a sender and an acknowledgement reader, per
// subscriber a reader, and one progress printer, and it waits for all of
// them before it returns.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench: invalid configuration: %w", err)
	}
	ct, err := newClientTLS(cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: invalid configuration: %w", err)
	}
	switch cfg.Scenario {
	case ScenarioStorm:
		return runStorm(ctx, cfg, ct), nil
	case ScenarioIdle:
		return runIdle(ctx, cfg, ct), nil
	}
	r := &run{
		cfg:    cfg,
		tls:    ct,
		topo:   cfg.topology(),
		runTag: rand.Uint32(),
		epoch:  time.Now(),
	}
	if err := r.connect(ctx); err != nil {
		r.closeAll()
		return nil, err
	}
	return r.execute(ctx), nil
}

// run is the state of one Run call.
type run struct {
	cfg    Config
	tls    *clientTLS // nil without TLS
	topo   topology
	runTag uint32
	epoch  time.Time

	pubs []*publisher
	subs []*subscriber

	// readers tracks the reader goroutines, which stop when closeAll closes
	// their connections. Once closing is set, a reader's error is expected
	// and not recorded.
	readers sync.WaitGroup
	closing atomic.Bool

	// failPublishing ends the publishing phase with errRunFailed.
	failPublishing context.CancelCauseFunc
	failed         atomic.Bool

	errMu struct {
		sync.Mutex
		list    []string
		dropped int
	}
}

// connect dials every subscriber and subscribes it, then dials every
// publisher. Subscribers come first so that no early message goes unheard.
func (r *run) connect(ctx context.Context) error {
	cfg := &r.cfg
	opts := dialOptions{
		addr:           cfg.Addr,
		version:        cfg.Version,
		keepAlive:      cfg.KeepAlive,
		connectTimeout: cfg.ConnectTimeout,
		username:       cfg.Username,
		password:       cfg.Password,
		readBuffer:     cfg.PayloadSize + len(cfg.TopicPrefix) + 64,
		tls:            r.tls.forAddr(cfg.Addr),
		tlsRun:         r.tls,
	}

	subOpts := opts
	if cfg.SubAddr != "" {
		subOpts.addr = cfg.SubAddr
		subOpts.tls = r.tls.forAddr(cfg.SubAddr)
	}
	r.subs = make([]*subscriber, r.topo.subscribers)
	err := forEachParallel(ctx, len(r.subs), func(j int) error {
		var expiry uint32
		if cfg.Persistent && cfg.Version == Version5 {
			expiry = uint32(cfg.SessionExpiry / time.Second)
		}
		c, _, err := dial(ctx, subOpts, fmt.Sprintf("%s-sub-%d", cfg.ClientPrefix, j), !cfg.Persistent, expiry)
		if err != nil {
			return err
		}
		first, n := r.topo.sources(j)
		s := newSubscriber(c, r.topo.subscriberFilter(cfg.TopicPrefix, j), cfg.QoS, first, n, r.runTag, r.epoch)
		r.subs[j] = s
		if c.maximumQoS < cfg.QoS {
			return fmt.Errorf("connect %s: broker supports QoS %d at most, requested %d", c.clientID, c.maximumQoS, cfg.QoS)
		}
		return s.subscribe(cfg.ConnectTimeout)
	})
	if err != nil {
		return err
	}

	r.pubs = make([]*publisher, r.topo.publishers)
	return forEachParallel(ctx, len(r.pubs), func(i int) error {
		c, _, err := dial(ctx, opts, fmt.Sprintf("%s-pub-%d", cfg.ClientPrefix, i), true, 0)
		if err != nil {
			return err
		}
		topic := r.topo.publisherTopic(cfg.TopicPrefix, i)
		r.pubs[i] = newPublisher(i, c, topic, cfg)
		if c.maximumQoS < cfg.QoS {
			return fmt.Errorf("connect %s: broker supports QoS %d at most, requested %d", c.clientID, c.maximumQoS, cfg.QoS)
		}
		size := len(appendPublishHeader(nil, cfg.Version, cfg.QoS, topic, 1, cfg.PayloadSize)) + cfg.PayloadSize
		if c.maximumPacket != 0 && uint64(size) > uint64(c.maximumPacket) {
			return fmt.Errorf("connect %s: a PUBLISH of %d bytes exceeds the broker's Maximum Packet Size of %d bytes: use a smaller payload size", c.clientID, size, c.maximumPacket)
		}
		return nil
	})
}

// forEachParallel calls fn(0) to fn(n-1) on up to connectParallelism
// goroutines, which it waits for. It stops starting calls after the first
// error, which it returns, or when ctx ends.
func forEachParallel(ctx context.Context, n int, fn func(i int) error) error {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		stop     atomic.Bool
	)
	for range min(n, connectParallelism) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := ctx.Err()
				if err == nil {
					err = fn(i)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// execute runs the publishing and drain phases on connected clients and
// returns the result.
func (r *run) execute(ctx context.Context) *Result {
	failCtx, failPublishing := context.WithCancelCause(ctx)
	defer failPublishing(nil)
	r.failPublishing = failPublishing

	for _, s := range r.subs {
		r.goReader(s.receive)
	}
	for _, p := range r.pubs {
		r.goReader(p.readAcks)
	}

	var brokerBefore procSample
	var brokerErr error
	if r.cfg.BrokerPID != 0 {
		brokerBefore, brokerErr = sampleProcess(r.cfg.BrokerPID)
	}
	toolBefore := selfCPU()

	start := time.Now()
	pubCtx, cancel := context.WithDeadlineCause(failCtx, start.Add(r.cfg.Duration), errDurationReached)
	defer cancel()

	stopProgress := r.startProgress(start)
	r.runSenders(pubCtx, start)
	phase := phaseTimes{publish: time.Since(start), receivedAtStop: r.totalReceived()}
	stoppedBy := r.stopReason(ctx, failCtx)

	drainStart := time.Now()
	if stoppedBy != "interrupted" && stoppedBy != "error" {
		r.drain(ctx)
	}
	phase.drain = time.Since(drainStart)

	var brokerAfter procSample
	if r.cfg.BrokerPID != 0 && brokerErr == nil {
		brokerAfter, brokerErr = sampleProcess(r.cfg.BrokerPID)
	}
	toolCPU := selfCPU() - toolBefore
	stopProgress()

	r.closeAll()
	r.readers.Wait()

	res := r.result(stoppedBy, phase, toolCPU)
	res.TLS = r.tls.info()
	if r.cfg.BrokerPID != 0 {
		if brokerErr != nil {
			r.recordError(fmt.Errorf("broker usage: %w", brokerErr))
		} else {
			res.Broker = brokerUsage(r.cfg.BrokerPID, brokerBefore, brokerAfter, res.Received)
		}
	}
	res.Errors = r.errorList()
	return res
}

// phaseTimes are the lengths of the phases of a run.
type phaseTimes struct {
	publish        time.Duration
	drain          time.Duration
	receivedAtStop uint64 // first deliveries when publishing stopped
}

// runSenders starts one sender per publisher and waits for them. When ctx
// ends and a sender is still blocked in a write (a broker that stopped
// reading), it waits up to the drain time, then closes every connection,
// which is the only way to interrupt the write.
func (r *run) runSenders(ctx context.Context, start time.Time) {
	var interval time.Duration
	if r.cfg.Rate > 0 {
		interval = max(time.Duration(float64(len(r.pubs))/r.cfg.Rate*float64(time.Second)), 1)
	}

	var senders sync.WaitGroup
	for i, p := range r.pubs {
		plan := sendPlan{
			epoch:    r.epoch,
			runTag:   r.runTag,
			count:    r.cfg.Count,
			start:    start,
			offset:   interval * time.Duration(i) / time.Duration(len(r.pubs)),
			interval: interval,
		}
		senders.Add(1)
		go func() {
			defer senders.Done()
			if err := p.send(ctx, plan); err != nil {
				r.fail(err)
			}
		}()
	}

	done := make(chan struct{})
	go func() {
		senders.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}

	grace := max(r.cfg.Drain, time.Second)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		r.fail(fmt.Errorf("publishers still blocked in a write %v after publishing ended: closing every connection", grace))
		r.closeAll()
		<-done
	}
}

// stopReason names what ended the publishing phase. It must run after
// every sender has returned.
func (r *run) stopReason(parent, failCtx context.Context) string {
	switch {
	case context.Cause(failCtx) == errRunFailed:
		return "error"
	case parent.Err() != nil:
		return "interrupted"
	}
	for _, p := range r.pubs {
		if !p.reachedCount {
			return "duration"
		}
	}
	return "count"
}

// drain waits until every message is confirmed and delivered, cfg.Drain
// passes, ctx ends or a client fails.
func (r *run) drain(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.Drain)
	for !r.settled() {
		if ctx.Err() != nil || r.failed.Load() || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settled reports whether every publisher has nothing unconfirmed and every
// subscriber has received all it should.
func (r *run) settled() bool {
	for _, p := range r.pubs {
		if p.unconfirmed() > 0 {
			return false
		}
	}
	if r.topo.shareGroup != "" {
		return r.totalReceived() >= r.totalSent()
	}
	for j, s := range r.subs {
		if s.received.Load() < r.expected(j) {
			return false
		}
	}
	return true
}

func (r *run) totalSent() uint64 {
	var total uint64
	for _, p := range r.pubs {
		total += p.sent.Load()
	}
	return total
}

// expected returns how many messages subscriber j should receive: every
// message of the publishers it hears. In a shared subscription group each
// member receives only a part of them, so settled and result count the
// group as a whole instead.
func (r *run) expected(j int) uint64 {
	first, n := r.topo.sources(j)
	var total uint64
	for _, p := range r.pubs[first : first+n] {
		total += p.sent.Load()
	}
	return total
}

func (r *run) totalReceived() uint64 {
	var total uint64
	for _, s := range r.subs {
		total += s.received.Load()
	}
	return total
}

// goReader runs read on a reader goroutine tracked by r.readers. An error
// before closeAll fails the run.
func (r *run) goReader(read func() error) {
	r.readers.Add(1)
	go func() {
		defer r.readers.Done()
		if err := read(); err != nil && !r.closing.Load() {
			r.fail(err)
		}
	}()
}

// fail records err and ends the publishing phase.
func (r *run) fail(err error) {
	r.recordError(err)
	r.failed.Store(true)
	if r.failPublishing != nil {
		r.failPublishing(errRunFailed)
	}
}

func (r *run) recordError(err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if len(r.errMu.list) < maxErrors {
		r.errMu.list = append(r.errMu.list, err.Error())
	} else {
		r.errMu.dropped++
	}
}

func (r *run) errorList() []string {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	list := append([]string(nil), r.errMu.list...)
	if r.errMu.dropped > 0 {
		list = append(list, fmt.Sprintf("%d more errors", r.errMu.dropped))
	}
	return list
}

// closeAll disconnects every connected client. It may run more than once:
// closing a closed socket does nothing.
func (r *run) closeAll() {
	r.closing.Store(true)
	for _, s := range r.subs {
		if s != nil {
			s.conn.disconnect()
		}
	}
	for _, p := range r.pubs {
		if p != nil {
			p.conn.disconnect()
		}
	}
}

// startProgress prints a progress line to cfg.Progress every second until
// the returned function is called; that function waits for the printer to
// stop. Without cfg.Progress it does nothing.
func (r *run) startProgress(start time.Time) (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.printProgress(r.cfg.Progress, start, done)
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func (r *run) printProgress(w io.Writer, start time.Time, done <-chan struct{}) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	var lastSent, lastReceived uint64
	last := start
	for {
		select {
		case <-done:
			return
		case now := <-ticker.C:
			var sent uint64
			unconfirmed := 0
			for _, p := range r.pubs {
				sent += p.sent.Load()
				unconfirmed += p.unconfirmed()
			}
			received := r.totalReceived()
			secs := now.Sub(last).Seconds()
			fmt.Fprintf(w, "%6.1fs  sent %d (%.0f msg/s)  received %d (%.0f msg/s)  unconfirmed %d\n",
				now.Sub(start).Seconds(), sent, float64(sent-lastSent)/secs,
				received, float64(received-lastReceived)/secs, unconfirmed)
			lastSent, lastReceived, last = sent, received, now
		}
	}
}
