package e2e

import (
	"fmt"
	"testing"
	"time"
)

// Keepalive and connect-timeout enforcement.

// keepaliveSlack is the time allowed past 1.5 x keepalive before the close
// must have happened: the broker's timer granularity plus scheduling delay on
// a loaded machine.
const keepaliveSlack = 2500 * time.Millisecond

// keepaliveDeadline returns how long after a client's last packet the broker
// must have closed the connection: 1.5 x keepalive plus slack.
func keepaliveDeadline(t testing.TB, keepalive time.Duration) time.Duration {
	d := keepalive*3/2 + timingSlack(keepaliveSlack)
	if knownMosquittoGap(t, "keepalive checked only every few seconds, so the close comes late") {
		d += 5 * time.Second
	}
	return d
}

func TestKeepalive_ClosedAfterOneAndHalfTimes(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	for _, version := range []byte{4, 5} {
		t.Run(map[byte]string{4: "v3", 5: "v5"}[version], func(t *testing.T) {
			t.Parallel()
			const keepalive = 2 * time.Second

			// [MQTT-3.1.2-24] (5.0: [MQTT-3.1.2-22]) Without any packet from
			// the client for 1.5 x keepalive the server closes the connection;
			// it must not close before 1.0 x.
			c := dialRaw(t, b, "ka", version)
			spec := connectSpec{Version: version, ClientID: fmt.Sprintf("ka-silent-%d", version), Clean: true, Keepalive: uint16(keepalive / time.Second)}
			c.connect(spec)

			// A PINGREQ restarts the timer: ping twice at 0.75 x keepalive.
			for i := 0; i < 2; i++ {
				time.Sleep(keepalive * 3 / 4)
				c.ping()
			}
			lastPacket := time.Now()

			closed, before := c.closedWithin(keepaliveDeadline(t, keepalive))
			elapsed := time.Since(lastPacket)
			if !closed {
				t.Fatalf("still connected %v after the last packet, keepalive %v", elapsed, keepalive)
			}
			if elapsed < keepalive {
				t.Fatalf("closed %v after the last packet, before 1.0 x keepalive (%v)", elapsed, keepalive)
			}
			// 5.0 may name the reason: DISCONNECT 0x8D (keep alive timeout).
			for _, p := range before {
				if p.Type != typeDisconnect || disconnectReason(p) != rcKeepAliveTimeout {
					t.Fatalf("unexpected %v before the keepalive close", p)
				}
			}
			t.Logf("closed %v after the last packet (keepalive %v)", elapsed.Round(10*time.Millisecond), keepalive)
		})
	}
}

func TestKeepalive_ZeroNeverTimesOut(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	// Keepalive 0 turns the mechanism off (section 3.1.2.10 of 3.1.1 and
	// 5.0): a silent client stays connected.
	c := dialRaw(t, b, "ka-zero", 4)
	c.connect(connectSpec{Version: 4, ClientID: "ka-zero", Clean: true, Keepalive: 0})
	c.expectOpen(4 * time.Second)
	c.ping()
}

func TestConnect_IdleSocketClosedAfterConnectTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	b := startBroker(t, brokerOptions{ConnectTimeout: timeout})

	// A socket that never sends CONNECT holds resources for nothing: the
	// server closes it after keepalive.connect_timeout. The specification
	// only recommends that a server close such a connection within a
	// reasonable time (3.1.1 section 3.1, 5.0 section 3.1).
	c := dialRaw(t, b, "idle", 4)
	start := time.Now()
	closed, before := c.closedWithin(timeout + keepaliveSlack)
	elapsed := time.Since(start)
	if !closed {
		t.Fatalf("socket without CONNECT still open after %v (connect_timeout %v)", elapsed, timeout)
	}
	if len(before) != 0 {
		t.Fatalf("server sent %v to a client that never sent CONNECT", before)
	}
	if elapsed < timeout/2 {
		t.Fatalf("closed after %v, well before connect_timeout %v", elapsed, timeout)
	}

	// A client that connects in time is not affected.
	ok := dialRaw(t, b, "prompt", 4)
	ok.connect(v3("prompt", true))
	ok.expectOpen(timeout + time.Second)
	ok.ping()
}
