package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// deleteEvery is how many acknowledged sequence numbers a busy sender
// collects before it deletes them from the outbox in one range delete.
const deleteEvery = 1024

// overloadLogInterval is the least time between two overload warnings of
// one peer.
const overloadLogInterval = 10 * time.Second

// errHelloTimeout ends a stream whose peer sent no first response within
// Config.HelloTimeout.
var errHelloTimeout = errors.New("forward: no response to the hello")

// stream is the client side of one Forward stream.
type stream = clusterpb.Peer_ForwardClient

// run is the body of p's sender goroutine: it keeps a stream to the peer
// open, reconnecting with capped exponential backoff, until ctx ends. Its
// owner is the Forwarder: startLocked starts it and stopLocked or Close
// stops it through ctx.
func (p *peer) run(ctx context.Context) {
	var (
		attempt  int  // failures since the last established stream
		warned   bool // the current run of failures was logged at Warn
		overload overloadReport
	)
	for {
		established, err := p.session(ctx, &overload)
		p.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		p.setLastErr(err)
		if established {
			attempt, warned = 0, false
		}
		attempt++

		delay := p.backoff(attempt)
		switch {
		case status.Code(err) == codes.FailedPrecondition:
			// The peer has another site id: it came back with an empty
			// disk, so this outbox is not for it. Only DropPeer or a new
			// SetPeers resolves that, so retry slowly.
			delay = jitter(p.f.cfg.RejectedRetry)
			p.log.Warn("peer rejected the forward stream because its site id differs", keyErr, err, keyRetryIn, delay)
		case !warned:
			warned = true
			p.log.Warn("forward stream failed, retrying", keyErr, err, keyRetryIn, delay, keyAttempts, attempt)
		default:
			p.log.Debug("forward stream failed, retrying", keyErr, err, keyRetryIn, delay, keyAttempts, attempt)
		}
		overload.check(p)

		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// backoff returns the delay before reconnect attempt n (1 for the first):
// MinBackoff doubled per attempt up to MaxBackoff, with jitter.
func (p *peer) backoff(n int) time.Duration {
	d := p.f.cfg.MinBackoff
	for i := 1; i < n && d < p.f.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return jitter(min(d, p.f.cfg.MaxBackoff))
}

// jitter returns a random duration between d/2 and d, so that nodes that
// lost a peer at the same moment do not reconnect in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// session runs one stream: hello, resend from the outbox, then live
// sending until the stream or ctx ends. It reports whether the stream was
// established, and why it ended.
func (p *peer) session(ctx context.Context, overload *overloadReport) (bool, error) {
	if err := p.ensureSeq(); err != nil {
		return false, err
	}
	info := p.info()
	client, err := p.f.cfg.Dial(ctx, info)
	if err != nil {
		return false, fmt.Errorf("dial %s at %s: %w", info.Name, info.Addr, err)
	}

	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	st, err := client.Forward(sctx)
	if err != nil {
		return false, fmt.Errorf("open forward stream: %w", err)
	}
	highWater, err := p.hello(sctx, cancel, st, info)
	if err != nil {
		return false, err
	}

	p.connected.Store(true)
	p.acked.Store(max(p.acked.Load(), highWater))
	if err := p.deleteThrough(highWater); err != nil {
		return true, err
	}
	sent := p.sent.Load()
	p.log.Info("forward stream connected", keyHighWater, highWater, keyResend, sent-min(sent, highWater))
	if highWater > sent {
		p.log.Warn("peer acknowledged sequence numbers this node never sent", keyHighWater, highWater, "sent", sent)
	}

	acksDone := make(chan error, 1)
	go func() {
		err := p.readAcks(st)
		cancel(err)
		acksDone <- err
	}()
	err = p.sendLoop(sctx, st, highWater, overload)
	cancel(err)
	<-acksDone
	if cause := context.Cause(sctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	return true, err
}

// hello sends the hello and returns the peer's high-water mark from its
// first response.
func (p *peer) hello(ctx context.Context, cancel context.CancelCauseFunc, st stream, info Peer) (uint64, error) {
	timer := time.AfterFunc(p.f.cfg.HelloTimeout, func() { cancel(errHelloTimeout) })
	defer timer.Stop()

	err := st.Send(&clusterpb.ForwardRequest{Hello: &clusterpb.ForwardHello{
		SenderName:     p.f.cfg.SelfName,
		SenderSiteId:   p.f.cfg.SelfSiteID,
		ReceiverSiteId: info.SiteID,
	}})
	// Send returns io.EOF when the stream has ended, and Recv then
	// returns the status the peer ended it with.
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("send hello: %w", err)
	}
	resp, err := st.Recv()
	if err != nil {
		if errors.Is(context.Cause(ctx), errHelloTimeout) {
			return 0, errHelloTimeout
		}
		return 0, err
	}
	return resp.AckedSeq, nil
}

// readAcks reads the cumulative acknowledgements of one stream until it
// ends, and deletes acknowledged entries from the outbox every deleteEvery
// sequence numbers.
func (p *peer) readAcks(st stream) error {
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		acked := resp.AckedSeq
		if acked <= p.acked.Load() {
			continue
		}
		p.acked.Store(acked)
		if acked-p.deletedThrough() >= deleteEvery {
			if err := p.deleteThrough(acked); err != nil {
				return err
			}
		}
	}
}

func (p *peer) deletedThrough() uint64 {
	p.deleteMu.Lock()
	defer p.deleteMu.Unlock()
	return p.deleted
}

// deleteThrough deletes the outbox entries up to seq unless that was done.
func (p *peer) deleteThrough(seq uint64) error {
	p.deleteMu.Lock()
	defer p.deleteMu.Unlock()
	if seq <= p.deleted {
		return nil
	}
	if err := p.f.cfg.Store.DeleteOutboxThrough(p.site, seq); err != nil {
		return fmt.Errorf("delete acknowledged outbox entries: %w", err)
	}
	p.deleted = seq
	return nil
}

// sendLoop resends the outbox entries the peer has not acknowledged, then
// sends released messages until ctx ends or a send fails.
func (p *peer) sendLoop(ctx context.Context, st stream, highWater uint64, overload *overloadReport) error {
	var buf []*clusterpb.ForwardMessage
	if sent := p.sent.Load(); highWater < sent {
		n, err := p.sendFromDisk(st, &buf, highWater, sent)
		p.resent.Add(uint64(n))
		if err != nil {
			return err
		}
	}

	idle := time.NewTimer(p.f.cfg.DeleteInterval)
	defer idle.Stop()
	for {
		msgs, diskMode := p.takeQueued(buf[:0])
		buf = msgs
		if len(msgs) > 0 {
			if err := p.send(st, msgs); err != nil {
				return err
			}
			continue
		}
		if diskMode {
			overload.check(p)
			if err := p.catchUp(st, &buf); err != nil {
				return err
			}
			continue
		}

		idle.Reset(p.f.cfg.DeleteInterval)
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-p.notify:
		case <-idle.C:
			if err := p.deleteThrough(p.acked.Load()); err != nil {
				return err
			}
			overload.check(p)
		}
	}
}

// takeQueued appends up to BatchMax queued messages to dst. With an empty
// queue it reports whether the sender must read the outbox from disk.
func (p *peer) takeQueued(dst []*clusterpb.ForwardMessage) ([]*clusterpb.ForwardMessage, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.queue.len() == 0 {
		return dst, p.mu.diskMode
	}
	return p.mu.queue.take(dst, p.f.cfg.BatchMax, int64(p.f.cfg.BatchMaxBytes)), false
}

// send sends msgs as one request and advances sent. It clears msgs so that
// the sent messages can be freed.
//
// sent advances even when Send fails, because the messages have left the
// queue: the next stream resends their QoS 1 and 2 part from the outbox,
// and the QoS 0 part is lost, as QoS 0 allows.
func (p *peer) send(st stream, msgs []*clusterpb.ForwardMessage) error {
	n := len(msgs)
	p.sent.Store(msgs[n-1].Seq)
	err := st.Send(&clusterpb.ForwardRequest{Messages: msgs})
	clear(msgs)
	if err != nil {
		return fmt.Errorf("send %d messages: %w", n, err)
	}
	return nil
}

// catchUp sends, from the outbox, the QoS 1 and 2 messages released while
// the queue was over its bound, and returns to the queue.
//
// It reads up to the highest released number. Then, under one lock, it
// clears diskMode and notes the highest released number again. Every
// message released after that point goes to the queue, so one more read up
// to the noted number leaves no gap, and no message is both read and
// queued.
func (p *peer) catchUp(st stream, buf *[]*clusterpb.ForwardMessage) error {
	p.mu.Lock()
	target := p.mu.frontier - 1
	p.mu.Unlock()
	if _, err := p.sendFromDisk(st, buf, p.sent.Load(), target); err != nil {
		return err
	}

	p.mu.Lock()
	p.mu.diskMode = false
	target = p.mu.frontier - 1
	p.mu.Unlock()
	_, err := p.sendFromDisk(st, buf, p.sent.Load(), target)
	return err
}

// sendFromDisk sends the outbox entries with numbers in (after, through],
// in requests of up to BatchMax messages, and returns how many it sent.
// Every number up to through must be released or aborted. Afterwards sent
// is at least through, since the numbers without an entry are aborted or
// QoS 0 messages that were dropped.
func (p *peer) sendFromDisk(st stream, buf *[]*clusterpb.ForwardMessage, after, through uint64) (int, error) {
	total := 0
	for after < through {
		msgs := (*buf)[:0]
		size, full := 0, false
		err := p.f.cfg.Store.ScanOutbox(p.site, after, p.f.cfg.BatchMax, func(seq uint64, value []byte) error {
			if seq > through {
				return errScanDone
			}
			if len(msgs) > 0 && size+len(value) > p.f.cfg.BatchMaxBytes {
				full = true
				return errScanDone
			}
			size += len(value)
			m := new(clusterpb.ForwardMessage)
			if err := proto.Unmarshal(value, m); err != nil {
				return fmt.Errorf("decode outbox entry %d: %w", seq, err)
			}
			msgs = append(msgs, m)
			return nil
		})
		*buf = msgs
		if err != nil && !errors.Is(err, errScanDone) {
			return total, fmt.Errorf("read outbox: %w", err)
		}
		if len(msgs) == 0 {
			break
		}
		n := len(msgs)
		if err := p.send(st, msgs); err != nil {
			return total, err
		}
		total += n
		after = p.sent.Load()
		if n < p.f.cfg.BatchMax && !full {
			break
		}
	}
	if through > p.sent.Load() {
		p.sent.Store(through)
	}
	return total, nil
}

// overloadReport rate-limits the warning that a peer's queue overflowed.
// It belongs to the sender goroutine.
type overloadReport struct {
	last     time.Time
	dropped  uint64 // droppedQoS0 at the last warning
	switches uint64 // diskSwitches at the last warning
}

func (o *overloadReport) check(p *peer) {
	dropped, switches := p.droppedQoS0.Load(), p.diskSwitches.Load()
	if dropped == o.dropped && switches == o.switches {
		return
	}
	if time.Since(o.last) < overloadLogInterval {
		return
	}
	o.last, o.dropped, o.switches = time.Now(), dropped, switches
	p.log.Warn("forward queue over its bound: dropping QoS 0 messages and reading QoS 1 and 2 from the outbox",
		keyDroppedQoS0, dropped, keyDiskReads, switches)
}
