package bench

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// subscriber is one subscribing client. After subscribe returns, only its
// reader goroutine (receive) touches it, until the run closes the connection
// and receive returns. The run reads the counters after that, except for
// received, which it also reads live.
type subscriber struct {
	conn   *conn
	filter string
	qos    byte
	runTag uint32
	epoch  time.Time

	// firstSource is the index of the first publisher this subscriber hears,
	// and streams[i] tracks publisher firstSource+i.
	firstSource uint32
	streams     []stream

	// received counts first deliveries of this run's messages.
	received atomic.Uint64

	counts  deliveryCounts
	stale   uint64 // messages without this run's stamp, such as queued by an earlier run
	foreign uint64 // this run's messages from a publisher this subscriber should not hear
	latency histogram
	ackBuf  []byte
	hadPing bool // a PINGREQ is waiting to be flushed
}

func newSubscriber(c *conn, filter string, qos byte, firstSource, sources int, runTag uint32, epoch time.Time) *subscriber {
	return &subscriber{
		conn:        c,
		filter:      filter,
		qos:         qos,
		runTag:      runTag,
		epoch:       epoch,
		firstSource: uint32(firstSource),
		streams:     make([]stream, sources),
		ackBuf:      make([]byte, 0, 4),
	}
}

// subscribe sends the SUBSCRIBE and waits for its SUBACK. Messages that
// arrive first, which a persistent session may have queued, are handled as
// usual (counted as stale and acknowledged). It fails when the broker
// rejects the filter or grants a lower QoS than requested, because either
// would make the run measure something other than what was asked.
func (s *subscriber) subscribe(timeout time.Duration) error {
	const packetID = 1
	c := s.conn
	if err := c.nc.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if err := c.write(appendSubscribe(nil, c.version, packetID, s.filter, s.qos)); err != nil {
		return fmt.Errorf("subscribe %s to %q: %w", c.clientID, s.filter, err)
	}
	if err := c.flush(); err != nil {
		return fmt.Errorf("subscribe %s to %q: %w", c.clientID, s.filter, err)
	}

	for {
		f, err := c.readFrame()
		if err != nil {
			return fmt.Errorf("subscribe %s to %q: read SUBACK: %w", c.clientID, s.filter, err)
		}
		if f.packetType() != typeSuback {
			if err := s.handle(f, time.Now()); err != nil {
				return fmt.Errorf("subscribe %s to %q: %w", c.clientID, s.filter, err)
			}
			continue
		}

		id, code, reason, err := parseSuback(f, c.version)
		switch {
		case err != nil:
			return fmt.Errorf("subscribe %s to %q: %w", c.clientID, s.filter, err)
		case id != packetID:
			return fmt.Errorf("subscribe %s to %q: SUBACK for packet id %d, expected %d", c.clientID, s.filter, id, packetID)
		case code >= 0x80:
			return fmt.Errorf("subscribe %s to %q: broker rejected the subscription: code 0x%02X %s", c.clientID, s.filter, code, reason)
		case code < s.qos:
			return fmt.Errorf("subscribe %s to %q: broker granted QoS %d, requested %d", c.clientID, s.filter, code, s.qos)
		}
		if err := c.flush(); err != nil {
			return fmt.Errorf("subscribe %s to %q: %w", c.clientID, s.filter, err)
		}
		return c.nc.SetDeadline(time.Time{})
	}
}

// receive reads and acknowledges messages until the connection closes, and
// returns the error that ended it. Acknowledgements are flushed whenever the
// read buffer runs empty, so one write carries the acknowledgements of every
// message that one read brought in.
//
// With keep alive on, it sends a PINGREQ every half interval, also while
// messages keep arriving: a QoS 0 subscriber sends nothing else, and the
// broker counts only what the client sends [MQTT-3.1.2-24].
func (s *subscriber) receive() error {
	c := s.conn
	interval := c.keepAlive / 2
	var nextPing time.Time
	if interval > 0 {
		nextPing = time.Now().Add(interval)
		if err := c.nc.SetReadDeadline(nextPing); err != nil {
			return err
		}
	}

	for {
		f, err := c.readFrame()
		now := time.Now()
		switch {
		case err == nil:
			if err := s.handle(f, now); err != nil {
				return fmt.Errorf("subscriber %s: %w", c.clientID, err)
			}
		case interval > 0 && errors.Is(err, os.ErrDeadlineExceeded):
			// Nothing arrived for half the keep alive interval. The
			// PINGREQ below is due, and the read is simply repeated.
		default:
			return err
		}

		if interval > 0 && !now.Before(nextPing) {
			if err := c.write(pingreqPacket); err != nil {
				return fmt.Errorf("subscriber %s: ping: %w", c.clientID, err)
			}
			s.hadPing = true
			nextPing = now.Add(interval)
			if err := c.nc.SetReadDeadline(nextPing); err != nil {
				return err
			}
		}
		if (s.qos > 0 || s.hadPing) && !c.inputPending() {
			if err := c.flush(); err != nil {
				return fmt.Errorf("subscriber %s: send acknowledgements: %w", c.clientID, err)
			}
			s.hadPing = false
		}
	}
}

// handle processes one packet from the broker: a PUBLISH is counted and
// acknowledged, a PUBREL completed, a PINGRESP ignored.
func (s *subscriber) handle(f frame, now time.Time) error {
	switch t := f.packetType(); t {
	case typePublish:
		p, err := parsePublish(f, s.conn.version)
		if err != nil {
			return err
		}
		s.count(p.payload, now)
		switch p.qos {
		case 1:
			return s.sendAck(typePuback, p.packetID)
		case 2:
			return s.sendAck(typePubrec, p.packetID)
		}
		return nil

	case typePubrel:
		a, err := parseAck(f)
		if err != nil {
			return err
		}
		return s.sendAck(typePubcomp, a.packetID)

	case typePingresp:
		return nil

	case typeDisconnect:
		return fmt.Errorf("broker sent DISCONNECT with reason code 0x%02X", parseDisconnect(f))

	default:
		return fmt.Errorf("unexpected packet type %d", t)
	}
}

// count classifies one payload and records its latency if it is a first
// delivery of this run's messages.
func (s *subscriber) count(payload []byte, now time.Time) {
	st, ok := readStamp(payload)
	if !ok || st.runTag != s.runTag {
		s.stale++
		return
	}
	i := st.publisher - s.firstSource
	if int64(i) >= int64(len(s.streams)) || st.publisher < s.firstSource {
		s.foreign++
		return
	}

	d := s.streams[i].record(st.sequence)
	s.counts.add(d)
	if d == deliveryDuplicate {
		return
	}
	s.received.Add(1)
	s.latency.record(int64(now.Sub(s.epoch)) - st.sentAt)
}

func (s *subscriber) sendAck(packetType byte, packetID uint16) error {
	s.ackBuf = appendAck(s.ackBuf[:0], packetType, packetID)
	return s.conn.write(s.ackBuf)
}
