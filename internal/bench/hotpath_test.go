package bench

import (
	"bufio"
	"io"
	"testing"
	"time"
)

// newDiscardConn returns a conn whose writes go nowhere, for testing the
// per-message paths without a socket.
func newDiscardConn(version byte) *conn {
	c := &conn{version: version, clientID: "test", receiveMaximum: 65535, maximumQoS: 2}
	c.mu.w = bufio.NewWriterSize(io.Discard, writeBufferSize)
	return c
}

func TestPublisher_PublishAllocatesNothing(t *testing.T) {
	for _, version := range []byte{Version311, Version5} {
		cfg := DefaultConfig()
		cfg.QoS = 1
		p := newPublisher(0, newDiscardConn(version), "bench/0", &cfg)
		plan := sendPlan{epoch: time.Now(), runTag: 1}
		var seq uint32
		allocs := testing.AllocsPerRun(1000, func() {
			p.slots <- struct{}{} // the slot that complete frees
			if err := p.publish(plan, seq); err != nil {
				t.Fatal(err)
			}
			p.complete(p.nextPacketID)
			seq++
		})
		if allocs != 0 {
			t.Errorf("version %d: publish allocated %v times per message", version, allocs)
		}
	}
}

func TestSubscriber_HandleAllocatesNothing(t *testing.T) {
	epoch := time.Now()
	for _, version := range []byte{Version311, Version5} {
		s := newSubscriber(newDiscardConn(version), "bench/0", 1, 0, 1, 7, epoch)
		payload := newPayload(64)
		packet := appendPublishHeader(nil, version, 1, "bench/0", 1, len(payload))
		packet = append(packet, payload...)
		body := packet[2:] // one byte of fixed header and one of remaining length

		var seq uint32
		allocs := testing.AllocsPerRun(1000, func() {
			putStamp(body[len(body)-len(payload):], stamp{sequence: seq, runTag: 7})
			if err := s.handle(frame{header: packet[0], body: body}, time.Now()); err != nil {
				t.Fatal(err)
			}
			seq++
		})
		if allocs != 0 {
			t.Errorf("version %d: handle allocated %v times per message", version, allocs)
		}
		if s.counts.unique == 0 || s.counts.duplicates != 0 || s.stale != 0 {
			t.Errorf("version %d: counts %+v, stale %d: the test frame was not parsed as this run's message", version, s.counts, s.stale)
		}
	}
}
