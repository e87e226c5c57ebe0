package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// rawClient is an MQTT client on a plain TCP socket that sends exactly the
// bytes a test gives it and reports exactly what the broker sends back. It is
// used by one goroutine at a time.
type rawClient struct {
	t       testing.TB
	name    string
	version byte // protocol level: selects how acks and properties are decoded
	conn    net.Conn
	r       *bufio.Reader
	nextID  uint16
	// pending holds packets read while a test awaited another type, in the
	// order they arrived; next returns them first.
	pending []*packet
}

// dialRaw opens a TCP connection to the broker without sending anything.
func dialRaw(t testing.TB, b *broker, name string, version byte) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", b.Addr(), ioTimeout)
	if err != nil {
		t.Fatalf("%s: dial %s: %v", name, b.Addr(), err)
	}
	c := &rawClient{t: t, name: name, version: version, conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	t.Cleanup(func() { conn.Close() })
	return c
}

// connectRaw dials, sends the CONNECT of spec and requires CONNACK success.
// name only labels the client in failure messages.
func connectRaw(t testing.TB, b *broker, name string, spec connectSpec) (*rawClient, connack) {
	t.Helper()
	if spec.Version == 0 {
		spec.Version = 4
	}
	c := dialRaw(t, b, name, spec.Version)
	ca := c.connect(spec)
	if ca.Code != 0 {
		t.Fatalf("%s: CONNACK code %#x, expected 0", name, ca.Code)
	}
	return c, ca
}

// v3 and v5 build the CONNECT specs that most tests use: a 3.1.1 or 5.0
// client with the given id, clean flag and a 60 s keepalive.
func v3(id string, clean bool) connectSpec {
	return connectSpec{Version: 4, ClientID: id, Clean: clean, Keepalive: 60}
}

func v5(id string, clean bool, p ...[]byte) connectSpec {
	return connectSpec{Version: 5, ClientID: id, Clean: clean, Keepalive: 60, Props: p}
}

// connect sends CONNECT and returns the decoded CONNACK.
func (c *rawClient) connect(spec connectSpec) connack {
	c.t.Helper()
	c.version = spec.Version
	c.send(spec.encode())
	p := c.await(typeConnack, ioTimeout)
	ca, err := decodeConnack(c.version, p)
	if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	return ca
}

// send writes raw bytes and fails the test if the write fails.
func (c *rawClient) send(data ...[]byte) {
	c.t.Helper()
	for _, d := range data {
		if err := c.write(d); err != nil {
			c.t.Fatalf("%s: write: %v", c.name, err)
		}
	}
}

// write writes raw bytes and returns the error, for tests that expect the
// broker to have closed the connection already.
func (c *rawClient) write(data []byte) error {
	c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := c.conn.Write(data)
	return err
}

// next returns the next packet, from pending first, waiting at most timeout.
func (c *rawClient) next(timeout time.Duration) (*packet, error) {
	if len(c.pending) > 0 {
		p := c.pending[0]
		c.pending = c.pending[1:]
		return p, nil
	}
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	return readPacket(c.r)
}

// await returns the first packet of type typ, keeping packets of other types
// in pending. It fails the test on timeout or close.
func (c *rawClient) await(typ byte, timeout time.Duration) *packet {
	c.t.Helper()
	for i, p := range c.pending {
		if p.Type == typ {
			c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
			return p
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		c.conn.SetReadDeadline(deadline)
		p, err := readPacket(c.r)
		if err != nil {
			c.t.Fatalf("%s: waiting for %s: %v (pending %v)", c.name, typeNames[typ], err, c.pending)
		}
		if p.Type == typ {
			return p
		}
		c.pending = append(c.pending, p)
	}
}

// expectPublish returns the next PUBLISH.
func (c *rawClient) expectPublish(timeout time.Duration) publishMsg {
	c.t.Helper()
	m, err := decodePublish(c.version, c.await(typePublish, timeout))
	if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	return m
}

// expectNoPublish fails if a PUBLISH arrives within d.
func (c *rawClient) expectNoPublish(d time.Duration) {
	c.t.Helper()
	for _, p := range c.pending {
		if p.Type == typePublish {
			c.t.Fatalf("%s: unexpected %v", c.name, p)
		}
	}
	deadline := time.Now().Add(d)
	for {
		c.conn.SetReadDeadline(deadline)
		p, err := readPacket(c.r)
		if isTimeout(err) {
			return
		}
		if err != nil {
			c.t.Fatalf("%s: connection failed while expecting silence: %v", c.name, err)
		}
		if p.Type == typePublish {
			m, _ := decodePublish(c.version, p)
			c.t.Fatalf("%s: unexpected PUBLISH topic=%q payload=%q qos=%d retain=%v", c.name, m.Topic, m.Payload, m.QoS, m.Retain)
		}
		c.pending = append(c.pending, p)
	}
}

// expectClosed reads until the broker closes the connection and returns the
// packets it sent first. It fails if the connection is still open after
// timeout.
func (c *rawClient) expectClosed(timeout time.Duration) []*packet {
	c.t.Helper()
	got := c.pending
	c.pending = nil
	deadline := time.Now().Add(timeout)
	for {
		c.conn.SetReadDeadline(deadline)
		p, err := readPacket(c.r)
		if err == nil {
			got = append(got, p)
			continue
		}
		if isTimeout(err) {
			c.t.Fatalf("%s: connection still open after %v (received %v)", c.name, timeout, got)
		}
		if !isClosed(err) {
			c.t.Fatalf("%s: read failed with %v, expected a close", c.name, err)
		}
		return got
	}
}

// expectOpen fails if the broker closes the connection or sends anything
// within d.
func (c *rawClient) expectOpen(d time.Duration) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	p, err := readPacket(c.r)
	if isTimeout(err) {
		return
	}
	if err != nil {
		c.t.Fatalf("%s: connection closed within %v: %v", c.name, d, err)
	}
	c.t.Fatalf("%s: unexpected %v", c.name, p)
}

// closedWithin waits up to timeout for the broker to close the connection
// and reports whether it did, without failing the test.
func (c *rawClient) closedWithin(timeout time.Duration) (closed bool, before []*packet) {
	deadline := time.Now().Add(timeout)
	for {
		c.conn.SetReadDeadline(deadline)
		p, err := readPacket(c.r)
		switch {
		case err == nil:
			before = append(before, p)
		case isTimeout(err):
			return false, before
		default:
			return true, before
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isClosed reports whether err means the peer closed the connection (FIN or RST).
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// newID returns the next non-zero packet identifier.
func (c *rawClient) newID() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// subscribe subscribes to one filter and returns the SUBACK code. options is
// the subscription options byte (the QoS for version 4).
func (c *rawClient) subscribe(filter string, options byte) byte {
	c.t.Helper()
	codes := c.subscribeMany(subscription{Filter: filter, Options: options})
	return codes[0]
}

// subscribeMany sends one SUBSCRIBE and returns the SUBACK codes.
func (c *rawClient) subscribeMany(subs ...subscription) []byte {
	c.t.Helper()
	id := c.newID()
	c.send(encodeSubscribe(c.version, id, subs))
	a, err := decodeAck(c.version, c.await(typeSuback, ioTimeout))
	if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	if a.ID != id {
		c.t.Fatalf("%s: SUBACK id %d, expected %d [MQTT-3.8.4-2]", c.name, a.ID, id)
	}
	if len(a.Codes) != len(subs) {
		c.t.Fatalf("%s: SUBACK has %d codes for %d filters [MQTT-3.8.4-5]", c.name, len(a.Codes), len(subs))
	}
	return a.Codes
}

// mustSubscribe subscribes and requires the requested QoS to be granted.
func (c *rawClient) mustSubscribe(filter string, qos byte) {
	c.t.Helper()
	if code := c.subscribe(filter, qos); code != qos {
		c.t.Fatalf("%s: SUBSCRIBE %q QoS %d got SUBACK code %#x", c.name, filter, qos, code)
	}
}

// unsubscribe sends UNSUBSCRIBE and waits for the UNSUBACK.
func (c *rawClient) unsubscribe(filters ...string) {
	c.t.Helper()
	id := c.newID()
	c.send(encodeUnsubscribe(c.version, id, filters...))
	a, err := decodeAck(c.version, c.await(typeUnsuback, ioTimeout))
	if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	if a.ID != id {
		c.t.Fatalf("%s: UNSUBACK id %d, expected %d", c.name, a.ID, id)
	}
}

// publish sends a PUBLISH and completes its QoS flow. It returns the reason
// code of the PUBACK or PUBREC (0 for QoS 0 and for version 4).
func (c *rawClient) publish(topic string, qos byte, retain bool, payload string, p ...[]byte) byte {
	c.t.Helper()
	spec := publishSpec{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload), Props: p}
	if qos > 0 {
		spec.ID = c.newID()
	}
	c.send(encodePublish(c.version, spec))
	switch qos {
	case 1:
		return c.awaitAck(typePuback, spec.ID)
	case 2:
		code := c.awaitAck(typePubrec, spec.ID)
		if code >= 0x80 {
			return code
		}
		c.send(encodeAck(typePubrel, spec.ID))
		c.awaitAck(typePubcomp, spec.ID)
		return code
	}
	return 0
}

// awaitAck waits for an acknowledgement of the given type and packet id and
// returns its reason code.
func (c *rawClient) awaitAck(typ byte, id uint16) byte {
	c.t.Helper()
	a, err := decodeAck(c.version, c.await(typ, ioTimeout))
	if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	if a.ID != id {
		c.t.Fatalf("%s: %s for id %d, expected id %d [MQTT-2.3.1-6]", c.name, typeNames[typ], a.ID, id)
	}
	return a.Codes[0]
}

// ack completes the receiver side of a delivered message's QoS flow.
func (c *rawClient) ack(m publishMsg) {
	c.t.Helper()
	switch m.QoS {
	case 1:
		c.send(encodeAck(typePuback, m.ID))
	case 2:
		c.send(encodeAck(typePubrec, m.ID))
		rel, err := decodeAck(c.version, c.await(typePubrel, ioTimeout))
		if err != nil {
			c.t.Fatalf("%s: %v", c.name, err)
		}
		if rel.ID != m.ID {
			c.t.Fatalf("%s: PUBREL id %d, expected %d", c.name, rel.ID, m.ID)
		}
		c.send(encodeAck(typePubcomp, m.ID))
	}
}

// receive returns the next PUBLISH after acknowledging it.
func (c *rawClient) receive(timeout time.Duration) publishMsg {
	c.t.Helper()
	m := c.expectPublish(timeout)
	c.ack(m)
	return m
}

// receiveN collects n messages, acknowledging each one.
func (c *rawClient) receiveN(n int, timeout time.Duration) []publishMsg {
	c.t.Helper()
	out := make([]publishMsg, 0, n)
	deadline := time.Now().Add(timeout)
	for len(out) < n {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("%s: received %d of %d messages within %v", c.name, len(out), n, timeout)
		}
		out = append(out, c.receive(left))
	}
	return out
}

// ping sends PINGREQ and waits for PINGRESP.
func (c *rawClient) ping() {
	c.t.Helper()
	c.send(encodePingreq())
	c.await(typePingresp, ioTimeout)
}

// disconnect sends a normal DISCONNECT and closes the socket.
func (c *rawClient) disconnect() {
	c.t.Helper()
	c.send(encodeDisconnect(c.version, 0))
	c.conn.Close()
}

// close drops the TCP connection without DISCONNECT, as a network failure would.
func (c *rawClient) close() { c.conn.Close() }

// String names the client in failure messages.
func (c *rawClient) String() string { return fmt.Sprintf("%s(v%d)", c.name, c.version) }

// expectRefused reads until the broker closes a connection whose CONNECT it
// must refuse. A CONNACK before the close is allowed only with one of the
// given codes and Session Present 0 [MQTT-3.2.2-4]; no other packet may come.
// It returns the CONNACK, or nil if the broker closed without one.
func (c *rawClient) expectRefused(codes ...byte) *connack {
	c.t.Helper()
	got := c.expectClosed(ioTimeout)
	var refusal *connack
	for _, p := range got {
		if p.Type != typeConnack || refusal != nil {
			c.t.Fatalf("%s: expected at most a CONNACK before the close, got %v", c.name, got)
		}
		ca, err := decodeConnack(c.version, p)
		if err != nil {
			c.t.Fatalf("%s: %v", c.name, err)
		}
		if !containsByte(codes, ca.Code) {
			c.t.Fatalf("%s: CONNACK code %#x, expected one of % x", c.name, ca.Code, codes)
		}
		if ca.SessionPresent {
			c.t.Fatalf("%s: refusing CONNACK has Session Present 1 [MQTT-3.2.2-4]", c.name)
		}
		refusal = &ca
	}
	return refusal
}

// expectProtocolClose reads until the broker closes the connection after a
// malformed packet or protocol error. A 3.1.1 server never sends DISCONNECT,
// so nothing may arrive. A 5.0 server should send DISCONNECT with one of the
// given reason codes first [MQTT-4.13.1-1]. The specification only recommends
// it, but Starling promises it, so the DISCONNECT is required there.
func (c *rawClient) expectProtocolClose(reasons ...byte) {
	c.t.Helper()
	got := c.expectClosed(ioTimeout)
	if c.version != 5 {
		if len(got) > 0 {
			c.t.Fatalf("%s: expected a close without any packet, got %v", c.name, got)
		}
		return
	}
	if len(got) == 0 {
		if isStarling() {
			c.t.Fatalf("%s: closed without DISCONNECT; expected a reason code in % x", c.name, reasons)
		}
		c.t.Logf("%s: closed without DISCONNECT (allowed by the specification)", c.name)
		return
	}
	if len(got) != 1 || got[0].Type != typeDisconnect {
		c.t.Fatalf("%s: expected only DISCONNECT before the close, got %v", c.name, got)
	}
	if r := disconnectReason(got[0]); !containsByte(reasons, r) {
		c.t.Fatalf("%s: DISCONNECT reason %#x, expected one of % x", c.name, r, reasons)
	}
}

func containsByte(list []byte, b byte) bool {
	for _, x := range list {
		if x == b {
			return true
		}
	}
	return false
}
