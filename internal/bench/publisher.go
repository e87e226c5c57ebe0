package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// publisher is one publishing client. Two goroutines use it: the sender
// (send) and the acknowledgement reader (readAcks), both started and awaited
// by the run. The sender stops when its context ends or its count is
// reached, and the reader stops when the run closes the connection.
type publisher struct {
	index  uint32
	conn   *conn
	topic  string
	qos    byte
	window int // unconfirmed messages allowed, see Config.Inflight

	// pingBatch is the number of QoS 0 messages each PINGREQ confirms.
	pingBatch int

	// slots holds one token per unconfirmed message. The sender puts a token
	// in before each PUBLISH and blocks when the window is full. The reader
	// takes tokens out on PUBACK, PUBCOMP or, for QoS 0, PINGRESP.
	slots chan struct{}

	// pings contains, for each PINGREQ in flight, the number of QoS 0
	// messages its PINGRESP confirms, 0 for a keep alive ping. The broker
	// sends PINGRESPs in the order of the PINGREQs, so a FIFO is enough.
	pings chan int

	// packetIDs has bit id set while packet id is in flight. The sender sets
	// bits and the reader clears them.
	packetIDs [65536 / 64]atomic.Uint64

	sent       atomic.Uint64
	confirmed  atomic.Uint64
	rejected   atomic.Uint64 // MQTT 5.0 PUBACK or PUBREC with a reason code >= 0x80
	unexpected atomic.Uint64 // acknowledgements for packet ids not in flight, unrequested PINGRESPs

	// Owned by the sender goroutine.
	header       []byte
	payload      []byte
	maxLag       time.Duration // largest delay behind the --rate schedule
	nextPacketID uint16
	lastWrite    time.Time
	reachedCount bool // the sender stopped because it sent plan.count messages

	// ackBuf is the PUBREL scratch of the reader goroutine.
	ackBuf []byte
}

// maxPendingPings bounds the PINGREQs in flight on one connection.
const maxPendingPings = 8

// pingreqPacket is a PINGREQ. It is shared and never modified.
var pingreqPacket = []byte{typePingreq << 4, 0}

func newPublisher(index int, c *conn, topic string, cfg *Config) *publisher {
	window := cfg.Inflight
	if cfg.QoS > 0 {
		window = min(window, int(c.receiveMaximum))
	}
	p := &publisher{
		index:     uint32(index),
		conn:      c,
		topic:     topic,
		qos:       cfg.QoS,
		window:    window,
		pingBatch: max(1, window/2),
		slots:     make(chan struct{}, window),
		pings:     make(chan int, maxPendingPings),
		payload:   newPayload(cfg.PayloadSize),
		header:    make([]byte, 0, 16+len(topic)),
		ackBuf:    make([]byte, 0, 4),
	}
	return p
}

// sendPlan is the schedule that the run gives every sender.
type sendPlan struct {
	epoch  time.Time // zero of the payload timestamps
	runTag uint32
	count  uint64 // messages to send; 0 means until ctx ends

	// start, offset and interval define the --rate schedule: message n is
	// due at start+offset+n*interval. interval 0 means saturating.
	start    time.Time
	offset   time.Duration
	interval time.Duration
}

// send publishes until ctx ends or plan.count messages are out, and then
// flushes. It returns the first write error; a context that ends is not an
// error. Before it blocks, on a full window or a rate schedule, it flushes the
// write buffer, so messages never wait in the buffer while it sleeps.
func (p *publisher) send(ctx context.Context, plan sendPlan) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	p.lastWrite = time.Now()

	unconfirmed, err := p.sendLoop(ctx, plan, timer)
	if err != nil {
		return err
	}

	// A last PINGREQ confirms the final partial batch, so that the drain
	// phase can tell when the broker has read every QoS 0 message. It is
	// skipped when maxPendingPings are in flight, because waiting for room
	// could block past the end of the run.
	if p.qos == 0 && unconfirmed > 0 {
		select {
		case p.pings <- unconfirmed:
			if err := p.conn.write(pingreqPacket); err != nil {
				return fmt.Errorf("ping from %s: %w", p.conn.clientID, err)
			}
		default:
		}
	}
	if err := p.conn.flush(); err != nil {
		return fmt.Errorf("publish from %s: %w", p.conn.clientID, err)
	}
	return nil
}

// sendLoop publishes until ctx ends or plan.count messages are out. It
// returns the number of QoS 0 messages sent since the last PINGREQ.
func (p *publisher) sendLoop(ctx context.Context, plan sendPlan, timer *time.Timer) (int, error) {
	unconfirmed := 0
	deadline, hasDeadline := ctx.Deadline()
	for seq := uint64(0); plan.count == 0 || seq < plan.count; seq++ {
		// A sender that runs late must not keep sending after the end, so
		// the context is checked even when nothing blocks.
		select {
		case <-ctx.Done():
			return unconfirmed, nil
		default:
		}

		if plan.interval > 0 {
			due := plan.start.Add(plan.offset + time.Duration(seq)*plan.interval)
			if hasDeadline && !due.Before(deadline) {
				return unconfirmed, nil
			}
			if err := p.waitUntil(ctx, timer, due); err != nil {
				return unconfirmed, ignoreDone(ctx, err)
			}
		}
		if err := p.acquire(ctx); err != nil {
			return unconfirmed, ignoreDone(ctx, err)
		}
		if err := p.publish(plan, uint32(seq)); err != nil {
			return unconfirmed, fmt.Errorf("publish from %s: %w", p.conn.clientID, err)
		}

		if p.qos == 0 {
			unconfirmed++
			if unconfirmed == p.pingBatch {
				if err := p.ping(ctx, unconfirmed); err != nil {
					return unconfirmed, ignoreDone(ctx, err)
				}
				unconfirmed = 0
			}
		}
		if plan.interval > 0 {
			if err := p.conn.flush(); err != nil {
				return unconfirmed, fmt.Errorf("publish from %s: %w", p.conn.clientID, err)
			}
		}
	}
	p.reachedCount = true
	return unconfirmed, nil
}

// publish writes message seq into the write buffer.
func (p *publisher) publish(plan sendPlan, seq uint32) error {
	var packetID uint16
	if p.qos > 0 {
		packetID = p.takePacketID()
	}
	putStamp(p.payload, stamp{
		sentAt:    int64(time.Since(plan.epoch)),
		sequence:  seq,
		publisher: p.index,
		runTag:    plan.runTag,
	})
	p.header = appendPublishHeader(p.header[:0], p.conn.version, p.qos, p.topic, packetID, len(p.payload))
	if err := p.conn.writePacket(p.header, p.payload); err != nil {
		return err
	}
	p.sent.Add(1)
	return nil
}

// acquire takes a window slot, flushing first when it has to wait.
func (p *publisher) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	if err := p.conn.flush(); err != nil {
		return fmt.Errorf("publish from %s: %w", p.conn.clientID, err)
	}
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitUntil sleeps until due. When keep alive is on and the wait is long, it
// wakes every half keep alive interval to send a PINGREQ, because a publisher
// at a low rate may otherwise send nothing for longer than the interval.
func (p *publisher) waitUntil(ctx context.Context, timer *time.Timer, due time.Time) error {
	if time.Until(due) > 0 {
		if err := p.conn.flush(); err != nil {
			return fmt.Errorf("publish from %s: %w", p.conn.clientID, err)
		}
	}
	for {
		wait := time.Until(due)
		if wait <= 0 {
			p.maxLag = max(p.maxLag, -wait)
			return nil
		}
		if ka := p.conn.keepAlive; ka > 0 {
			if idle := time.Since(p.lastWrite); idle >= ka/2 {
				if err := p.keepAlivePing(); err != nil {
					return err
				}
				continue
			}
			wait = min(wait, ka/2-time.Since(p.lastWrite))
		}

		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ping sends a PINGREQ whose PINGRESP confirms n QoS 0 messages.
func (p *publisher) ping(ctx context.Context, n int) error {
	select {
	case p.pings <- n:
	default:
		if err := p.conn.flush(); err != nil {
			return fmt.Errorf("ping from %s: %w", p.conn.clientID, err)
		}
		select {
		case p.pings <- n:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := p.conn.write(pingreqPacket); err != nil {
		return fmt.Errorf("ping from %s: %w", p.conn.clientID, err)
	}
	p.lastWrite = time.Now()
	return nil
}

// keepAlivePing sends a PINGREQ that confirms nothing, unless maxPendingPings
// are already in flight, in which case the broker has more than enough
// traffic from this client to keep the connection alive.
func (p *publisher) keepAlivePing() error {
	p.lastWrite = time.Now()
	select {
	case p.pings <- 0:
	default:
		return nil
	}
	if err := p.conn.write(pingreqPacket); err != nil {
		return fmt.Errorf("ping from %s: %w", p.conn.clientID, err)
	}
	return p.conn.flush()
}

// takePacketID returns the next packet id that is not in flight and marks it
// in flight. One is always free: the window (at most MaxInflight) bounds the
// ids in flight below 65,535.
func (p *publisher) takePacketID() uint16 {
	for {
		p.nextPacketID++
		if p.nextPacketID == 0 {
			p.nextPacketID = 1
		}
		id := p.nextPacketID
		bit := uint64(1) << (id % 64)
		if p.packetIDs[id/64].Or(bit)&bit == 0 {
			return id
		}
	}
}

// releasePacketID clears id and reports whether it was in flight.
func (p *publisher) releasePacketID(id uint16) bool {
	bit := uint64(1) << (id % 64)
	return p.packetIDs[id/64].And(^bit)&bit != 0
}

// isInFlight reports whether packet id is in flight.
func (p *publisher) isInFlight(id uint16) bool {
	bit := uint64(1) << (id % 64)
	return p.packetIDs[id/64].Load()&bit != 0
}

// unconfirmed returns the number of messages sent and not yet confirmed.
func (p *publisher) unconfirmed() int { return len(p.slots) }

// ignoreDone returns nil for the error of an ended context, because an ended
// context is the normal way to stop a sender.
func ignoreDone(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil
	}
	return err
}

// readAcks reads the broker's packets to this publisher until the connection
// closes, and returns the error that ended it. For QoS 2 it sends a PUBREL
// for each PUBREC.
func (p *publisher) readAcks() error {
	for {
		f, err := p.conn.readFrame()
		if err != nil {
			return err
		}
		if err := p.handleAck(f); err != nil {
			return fmt.Errorf("publisher %s: %w", p.conn.clientID, err)
		}
		if p.qos == 2 && !p.conn.inputPending() {
			if err := p.conn.flush(); err != nil {
				return fmt.Errorf("publisher %s: send PUBREL: %w", p.conn.clientID, err)
			}
		}
	}
}

func (p *publisher) handleAck(f frame) error {
	switch t := f.packetType(); t {
	case typePuback, typePubcomp:
		a, err := parseAck(f)
		if err != nil {
			return err
		}
		if (t == typePuback) != (p.qos == 1) {
			return fmt.Errorf("unexpected packet type %d for a QoS %d publish", t, p.qos)
		}
		if a.reason >= 0x80 {
			p.rejected.Add(1)
		}
		p.complete(a.packetID)

	case typePubrec:
		a, err := parseAck(f)
		if err != nil {
			return err
		}
		if p.qos != 2 {
			return fmt.Errorf("unexpected PUBREC for a QoS %d publish", p.qos)
		}
		if !p.isInFlight(a.packetID) {
			p.unexpected.Add(1)
			return nil
		}
		if a.reason >= 0x80 {
			// A failed PUBREC ends the QoS 2 flow without PUBREL.
			p.rejected.Add(1)
			p.complete(a.packetID)
			return nil
		}
		p.ackBuf = appendAck(p.ackBuf[:0], typePubrel, a.packetID)
		if err := p.conn.write(p.ackBuf); err != nil {
			return fmt.Errorf("send PUBREL: %w", err)
		}

	case typePingresp:
		p.pong()

	case typeDisconnect:
		return fmt.Errorf("broker sent DISCONNECT with reason code 0x%02X", parseDisconnect(f))

	default:
		return fmt.Errorf("unexpected packet type %d", t)
	}
	return nil
}

// complete ends the flow of packetID and frees its window slot. An id that is
// not in flight is counted as unexpected and frees nothing.
func (p *publisher) complete(packetID uint16) {
	if !p.releasePacketID(packetID) {
		p.unexpected.Add(1)
		return
	}
	p.confirmed.Add(1)
	<-p.slots
}

// pong handles a PINGRESP: it confirms the QoS 0 messages of the oldest
// PINGREQ in flight and frees their slots.
func (p *publisher) pong() {
	select {
	case n := <-p.pings:
		for range n {
			<-p.slots
		}
		p.confirmed.Add(uint64(n))
	default:
		p.unexpected.Add(1)
	}
}
