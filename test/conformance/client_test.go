package conformance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// Protocol versions as the tests name them.
const (
	v3 = packet.Version311
	v5 = packet.Version5
)

// versionName returns "3.1.1" or "5.0" for messages.
func versionName(v byte) string {
	if v == v5 {
		return "5.0"
	}
	return "3.1.1"
}

// frame is one packet the broker sent, as bytes and decoded.
type frame struct {
	raw []byte        // fixed header and body, exactly as received
	p   packet.Packet // nil when decoding failed
	err error         // decoding error; the broker sent a malformed packet
	at  time.Time
}

// client is a raw MQTT client on one TCP or WebSocket connection. It sends packets
// encoded by node/packet or hand-built bytes, and a reader goroutine frames
// and decodes everything the broker sends, keeping the raw bytes, so tests
// can check both. Methods must be called from the test's goroutine.
type client struct {
	t       testing.TB
	b       *broker
	id      string // client identifier sent in CONNECT
	version byte
	conn    net.Conn

	frames  chan frame    // filled by readLoop
	readErr error         // why readLoop stopped; valid once frames is closed
	done    chan struct{} // closed by close(), stops readLoop
	pending []frame       // read while waiting for another packet
	closed  bool          // the broker closed the connection
	pid     uint16        // last packet identifier used
	once    sync.Once
}

// dial opens a TCP connection to the broker; version decides how received
// packets are decoded. The connection closes when the test ends.
func dial(t testing.TB, b *broker, version byte) *client {
	t.Helper()
	return dialAddr(t, b, b.addr, version)
}

// dialAddr is dial to a given listener address of the broker.
func dialAddr(t testing.TB, b *broker, addr string, version byte) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return newConnClient(t, b, conn, version)
}

// newConnClient returns a client on an open connection to the broker and
// starts its reader. The connection closes when the test ends.
func newConnClient(t testing.TB, b *broker, conn net.Conn, version byte) *client {
	c := &client{
		t:       t,
		b:       b,
		version: version,
		conn:    conn,
		frames:  make(chan frame, 256),
		done:    make(chan struct{}),
	}
	go c.readLoop()
	t.Cleanup(c.close)
	return c
}

// close closes the connection and waits for the reader to stop.
func (c *client) close() {
	c.once.Do(func() {
		close(c.done)
		c.conn.Close()
		for range c.frames {
		}
	})
}

// readLoop frames the byte stream: a fixed header byte, a remaining length
// of up to four bytes, the body. It stops at the first read error or when
// the remaining length is invalid.
func (c *client) readLoop() {
	defer close(c.frames)
	br := bufio.NewReader(c.conn)
	for {
		raw, err := readFrame(br)
		if err != nil {
			c.readErr = err
			return
		}
		f := frame{raw: raw, at: time.Now()}
		f.p, f.err = packet.Read(bufio.NewReader(bytes.NewReader(raw)), c.version, 0)
		if f.err == nil {
			f.err = checkMinimalLength(raw)
		}
		select {
		case c.frames <- f:
		case <-c.done:
			return
		}
	}
}

// readFrame reads one packet's bytes.
func readFrame(br *bufio.Reader) ([]byte, error) {
	b0, err := br.ReadByte()
	if err != nil {
		return nil, err
	}
	raw := []byte{b0}
	n, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return nil, fmt.Errorf("remaining length longer than 4 bytes: % x", raw)
		}
		d, err := br.ReadByte()
		if err != nil {
			return nil, err
		}
		raw = append(raw, d)
		n += int(d&0x7F) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, fmt.Errorf("read %d-byte body: %w", n, err)
	}
	return append(raw, body...), nil
}

// checkMinimalLength checks that the remaining length uses the fewest bytes
// [MQTT-1.5.5-1].
func checkMinimalLength(raw []byte) error {
	lenBytes := 0
	for i := 1; i < len(raw) && i <= 4; i++ {
		lenBytes++
		if raw[i]&0x80 == 0 {
			break
		}
	}
	n := len(raw) - 1 - lenBytes
	want := 1
	for limit := 128; n >= limit && want < 4; limit *= 128 {
		want++
	}
	if lenBytes != want {
		return fmt.Errorf("remaining length %d encoded in %d bytes, the minimum is %d [MQTT-1.5.5-1]", n, lenBytes, want)
	}
	return nil
}

// nextID returns a fresh packet identifier, never 0.
func (c *client) nextID() uint16 {
	c.pid++
	if c.pid == 0 {
		c.pid = 1
	}
	return c.pid
}

// send encodes p in the client's version and writes it.
func (c *client) send(p packet.Packet) {
	c.t.Helper()
	b, err := p.Encode(nil, c.version)
	if err != nil {
		c.t.Fatalf("encode %T: %v", p, err)
	}
	c.write(b)
}

// encodeAs returns the bytes of p in the given version, for tests that
// combine or alter packets before writing them.
func encodeAs(t testing.TB, version byte, p packet.Packet) []byte {
	t.Helper()
	b, err := p.Encode(nil, version)
	if err != nil {
		t.Fatalf("encode %T: %v", p, err)
	}
	return b
}

// write writes raw bytes. A write error is not fatal: the broker may have
// closed the connection already, which the next expectation reports.
func (c *client) write(b []byte) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Logf("%s: write % x: %v", c.id, truncate(b), err)
	}
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// nextFrame returns the next frame, from the pending list first. It returns
// false when nothing arrives within d or the connection has closed (then
// c.closed is set).
func (c *client) nextFrame(d time.Duration) (frame, bool) {
	if len(c.pending) > 0 {
		f := c.pending[0]
		c.pending = c.pending[1:]
		return f, true
	}
	if c.closed {
		return frame{}, false
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.closed = true
			return frame{}, false
		}
		return f, true
	case <-timer.C:
		return frame{}, false
	}
}

// closeReason describes why the connection ended, for messages.
func (c *client) closeReason() string {
	if c.readErr == nil || errors.Is(c.readErr, io.EOF) {
		return "the broker closed the connection"
	}
	return fmt.Sprintf("the connection failed: %v", c.readErr)
}

// expect returns the next packet the broker sends. It fails the test when
// none arrives in time, the connection closes, or the packet is malformed.
func (c *client) expect() packet.Packet {
	c.t.Helper()
	f, ok := c.nextFrame(ioTimeout)
	switch {
	case !ok && c.closed:
		c.t.Fatalf("%s: expected a packet, but %s", c.id, c.closeReason())
	case !ok:
		c.t.Fatalf("%s: expected a packet within %v, got nothing", c.id, ioTimeout)
	case f.err != nil:
		c.t.Fatalf("%s: broker sent a malformed packet % x: %v", c.id, truncate(f.raw), f.err)
	}
	return f.p
}

// expectPacket returns the next packet, which must have type T.
func expectPacket[T packet.Packet](c *client) T {
	c.t.Helper()
	p := c.expect()
	got, ok := p.(T)
	if !ok {
		var want T
		c.t.Fatalf("%s: expected %T, got %s", c.id, want, describe(p))
	}
	return got
}

// await returns the first packet of type T, keeping any other packets that
// arrive first for later expectations. Use it where the broker may
// interleave deliveries with the acknowledgement a test waits for.
func await[T packet.Packet](c *client, match func(T) bool) T {
	c.t.Helper()
	var skipped []frame
	defer func() { c.pending = append(skipped, c.pending...) }()
	deadline := time.Now().Add(ioTimeout)
	for {
		f, ok := c.nextFrame(time.Until(deadline))
		switch {
		case !ok && c.closed:
			var want T
			c.t.Fatalf("%s: expected %T, but %s", c.id, want, c.closeReason())
		case !ok:
			var want T
			c.t.Fatalf("%s: expected %T within %v, got nothing", c.id, want, ioTimeout)
		case f.err != nil:
			c.t.Fatalf("%s: broker sent a malformed packet % x: %v", c.id, truncate(f.raw), f.err)
		}
		if p, ok := f.p.(T); ok && (match == nil || match(p)) {
			return p
		}
		skipped = append(skipped, f)
	}
}

// expectNothing checks that the broker sends nothing and keeps the
// connection open for d.
func (c *client) expectNothing(d time.Duration) {
	c.t.Helper()
	f, ok := c.nextFrame(d)
	switch {
	case ok && f.err != nil:
		c.t.Fatalf("%s: expected nothing, broker sent a malformed packet % x: %v", c.id, truncate(f.raw), f.err)
	case ok:
		c.t.Fatalf("%s: expected nothing for %v, got %s", c.id, d, describe(f.p))
	case c.closed:
		c.t.Fatalf("%s: expected the connection to stay open, but %s", c.id, c.closeReason())
	}
}

// expectClosed checks that the broker closes the connection within
// closeTimeout. An MQTT 5.0 broker may send one DISCONNECT first, which is
// returned (nil if none came) after checking that it is well formed, carries
// no Session Expiry Interval [MQTT-3.14.2-2], and that nothing follows it
// [MQTT-3.14.4-1]. Any other packet fails the test; an MQTT 3.1.1 broker has
// no DISCONNECT to send.
func (c *client) expectClosed() *packet.Disconnect {
	c.t.Helper()
	var disc *packet.Disconnect
	deadline := time.Now().Add(closeTimeout)
	for {
		f, ok := c.nextFrame(time.Until(deadline))
		if !ok && c.closed {
			return disc
		}
		if !ok {
			c.t.Fatalf("%s: expected the broker to close the connection within %v, it is still open", c.id, closeTimeout)
		}
		if f.err != nil {
			c.t.Fatalf("%s: expected a close, broker sent a malformed packet % x: %v", c.id, truncate(f.raw), f.err)
		}
		d, isDisc := f.p.(*packet.Disconnect)
		switch {
		case !isDisc:
			c.t.Fatalf("%s: expected the connection to close, got %s", c.id, describe(f.p))
		case c.version != v5:
			c.t.Fatalf("%s: MQTT 3.1.1 has no DISCONNECT from the server, got % x", c.id, f.raw)
		case disc != nil:
			c.t.Fatalf("%s: packet after DISCONNECT: %s [MQTT-3.14.4-1]", c.id, describe(f.p))
		}
		checkServerDisconnect(c.t, d)
		disc = d
	}
}

// expectClosedWithCode checks that the connection closes and, when the
// broker sends a DISCONNECT first, that its reason code is one of codes, or
// 0x80 or above when codes is empty.
func (c *client) expectClosedWithCode(codes ...packet.ReasonCode) {
	c.t.Helper()
	d := c.expectClosed()
	if d == nil {
		return
	}
	if len(codes) == 0 {
		if d.ReasonCode < 0x80 {
			c.t.Errorf("%s: DISCONNECT reason code 0x%02X before an error close, want 0x80 or above", c.id, byte(d.ReasonCode))
		}
		return
	}
	for _, code := range codes {
		if d.ReasonCode == code {
			return
		}
	}
	c.t.Errorf("%s: DISCONNECT reason code 0x%02X, want one of %s", c.id, byte(d.ReasonCode), codeList(codes))
}

func codeList(codes []packet.ReasonCode) string {
	var s string
	for i, code := range codes {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("0x%02X", byte(code))
	}
	return s
}

// checkServerDisconnect checks what every DISCONNECT from a server must
// satisfy: a reason code from the DISCONNECT table [MQTT-3.14.2-1] and no
// Session Expiry Interval [MQTT-3.14.2-2].
func checkServerDisconnect(t testing.TB, d *packet.Disconnect) {
	t.Helper()
	if !disconnectCodes[d.ReasonCode] {
		t.Errorf("DISCONNECT reason code 0x%02X is not a DISCONNECT reason code [MQTT-3.14.2-1]", byte(d.ReasonCode))
	}
	if d.Properties.HasSessionExpiry {
		t.Errorf("server DISCONNECT carries Session Expiry Interval %d [MQTT-3.14.2-2]", d.Properties.SessionExpiry)
	}
}

// describe prints a packet for failure messages.
func describe(p packet.Packet) string {
	switch p := p.(type) {
	case *packet.Publish:
		return fmt.Sprintf("PUBLISH{topic=%q qos=%d retain=%v dup=%v id=%d payload=%q}", p.Topic, p.QoS, p.Retain, p.Dup, p.PacketID, truncate(p.Payload))
	case *packet.Disconnect:
		return fmt.Sprintf("DISCONNECT{reason=0x%02X %q}", byte(p.ReasonCode), p.Properties.ReasonString)
	case *packet.Connack:
		return fmt.Sprintf("CONNACK{code=0x%02X present=%v}", byte(p.ReasonCode), p.SessionPresent)
	case *packet.Puback:
		return fmt.Sprintf("PUBACK{id=%d reason=0x%02X}", p.PacketID, byte(p.ReasonCode))
	case *packet.Pubrec:
		return fmt.Sprintf("PUBREC{id=%d reason=0x%02X}", p.PacketID, byte(p.ReasonCode))
	case *packet.Pubrel:
		return fmt.Sprintf("PUBREL{id=%d reason=0x%02X}", p.PacketID, byte(p.ReasonCode))
	case *packet.Pubcomp:
		return fmt.Sprintf("PUBCOMP{id=%d reason=0x%02X}", p.PacketID, byte(p.ReasonCode))
	case *packet.Suback:
		return fmt.Sprintf("SUBACK{id=%d codes=% x}", p.PacketID, p.ReasonCodes)
	case *packet.Unsuback:
		return fmt.Sprintf("UNSUBACK{id=%d codes=% x}", p.PacketID, p.ReasonCodes)
	case nil:
		return "nothing"
	default:
		return fmt.Sprintf("%v %+v", p.Type(), p)
	}
}

// connectOption changes the CONNECT a client sends.
type connectOption func(*packet.Connect)

// withClientID sets the client identifier ("" for an empty one).
func withClientID(id string) connectOption {
	return func(cp *packet.Connect) { cp.ClientID = id }
}

// persistent requests a session that outlives the connection. In 3.1.1 it
// sets Clean Session 0, and in 5.0 Clean Start 0 with the given Session
// Expiry Interval.
func persistent(expiry uint32) connectOption {
	return func(cp *packet.Connect) {
		cp.CleanStart = false
		if cp.ProtocolVersion == v5 {
			cp.Properties.SessionExpiry, cp.Properties.HasSessionExpiry = expiry, true
		}
	}
}

// withKeepAlive sets the Keep Alive, in seconds.
func withKeepAlive(seconds uint16) connectOption {
	return func(cp *packet.Connect) { cp.KeepAlive = seconds }
}

// withWill sets the will.
func withWill(w *packet.Will) connectOption {
	return func(cp *packet.Connect) { cp.Will = w }
}

// withProps changes the CONNECT properties.
func withProps(fn func(*packet.Properties)) connectOption {
	return func(cp *packet.Connect) { fn(&cp.Properties) }
}

// connectPacket builds the CONNECT a client sends by default: clean, no keep
// alive, the client's identifier.
func (c *client) connectPacket(opts ...connectOption) *packet.Connect {
	cp := &packet.Connect{
		ProtocolName:    "MQTT",
		ProtocolVersion: c.version,
		CleanStart:      true,
		ClientID:        c.id,
	}
	for _, opt := range opts {
		opt(cp)
	}
	c.id = cp.ClientID
	return cp
}

// connect sends CONNECT and returns the CONNACK, which must accept the
// connection and be the first packet the broker sends [MQTT-3.2.0-1].
func (c *client) connect(opts ...connectOption) *packet.Connack {
	c.t.Helper()
	ack := c.connectRaw(opts...)
	if ack.ReasonCode != packet.ReasonSuccess {
		c.t.Fatalf("%s: CONNACK refused the connection: code 0x%02X %q", c.id, byte(ack.ReasonCode), ack.Properties.ReasonString)
	}
	return ack
}

// connectRaw sends CONNECT and returns the CONNACK, whatever its code.
func (c *client) connectRaw(opts ...connectOption) *packet.Connack {
	c.t.Helper()
	c.send(c.connectPacket(opts...))
	return expectPacket[*packet.Connack](c)
}

// newClient dials and connects a client with a fresh identifier for role.
func newClient(t testing.TB, b *broker, version byte, role string, opts ...connectOption) *client {
	t.Helper()
	c := dial(t, b, version)
	c.id = b.clientID(role)
	c.connect(opts...)
	return c
}

// reconnect dials a new connection for the same client identifier and
// connects with opts; it returns the client and its CONNACK.
func (c *client) reconnect(opts ...connectOption) (*client, *packet.Connack) {
	c.t.Helper()
	n := dial(c.t, c.b, c.version)
	n.id = c.id
	ack := n.connect(opts...)
	return n, ack
}

// disconnect sends a normal DISCONNECT and waits for the broker to close.
func (c *client) disconnect() {
	c.t.Helper()
	c.send(&packet.Disconnect{})
	c.expectClosed()
}

// drop closes the TCP connection without DISCONNECT, as a network failure
// would.
func (c *client) drop() {
	c.close()
}

// subscribe subscribes to one filter and returns the SUBACK reason code.
func (c *client) subscribe(filter string, qos byte) packet.ReasonCode {
	c.t.Helper()
	return c.subscribeWith(packet.Properties{}, packet.Subscription{Filter: filter, QoS: qos})[0]
}

// subscribeWith sends one SUBSCRIBE and returns the SUBACK reason codes,
// after checking that the SUBACK echoes the packet identifier and has one
// code per filter.
func (c *client) subscribeWith(props packet.Properties, subs ...packet.Subscription) []packet.ReasonCode {
	c.t.Helper()
	id := c.nextID()
	c.send(&packet.Subscribe{PacketID: id, Properties: props, Subscriptions: subs})
	ack := await[*packet.Suback](c, nil)
	if ack.PacketID != id {
		c.t.Fatalf("%s: SUBACK packet id %d, want %d", c.id, ack.PacketID, id)
	}
	if len(ack.ReasonCodes) != len(subs) {
		c.t.Fatalf("%s: SUBACK has %d reason codes for %d filters", c.id, len(ack.ReasonCodes), len(subs))
	}
	return ack.ReasonCodes
}

// mustSubscribe subscribes and fails unless the broker grants qos.
func (c *client) mustSubscribe(filter string, qos byte) {
	c.t.Helper()
	if code := c.subscribe(filter, qos); code != packet.ReasonCode(qos) {
		c.t.Fatalf("%s: SUBSCRIBE %q QoS %d: SUBACK code 0x%02X", c.id, filter, qos, byte(code))
	}
}

// unsubscribe sends one UNSUBSCRIBE and returns the UNSUBACK.
func (c *client) unsubscribe(filters ...string) *packet.Unsuback {
	c.t.Helper()
	id := c.nextID()
	c.send(&packet.Unsubscribe{PacketID: id, Filters: filters})
	ack := await[*packet.Unsuback](c, nil)
	if ack.PacketID != id {
		c.t.Fatalf("%s: UNSUBACK packet id %d, want %d", c.id, ack.PacketID, id)
	}
	return ack
}

// publish sends a message and completes its QoS flow: it waits for PUBACK
// (QoS 1) or PUBREC, sends PUBREL and waits for PUBCOMP (QoS 2). It returns
// the packet identifier used.
func (c *client) publish(topic string, payload string, qos byte, retain bool) uint16 {
	c.t.Helper()
	return c.publishPacket(&packet.Publish{Topic: topic, Payload: []byte(payload), QoS: qos, Retain: retain})
}

// publishPacket sends p, assigning a packet identifier when QoS > 0 and p
// has none, and completes the QoS flow.
func (c *client) publishPacket(p *packet.Publish) uint16 {
	c.t.Helper()
	if p.QoS > 0 && p.PacketID == 0 {
		p.PacketID = c.nextID()
	}
	c.send(p)
	switch p.QoS {
	case 1:
		ack := await(c, func(a *packet.Puback) bool { return a.PacketID == p.PacketID })
		if ack.ReasonCode >= 0x80 {
			c.t.Fatalf("%s: PUBACK %d refused the message: 0x%02X", c.id, p.PacketID, byte(ack.ReasonCode))
		}
	case 2:
		rec := await(c, func(a *packet.Pubrec) bool { return a.PacketID == p.PacketID })
		if rec.ReasonCode >= 0x80 {
			c.t.Fatalf("%s: PUBREC %d refused the message: 0x%02X", c.id, p.PacketID, byte(rec.ReasonCode))
		}
		c.send(&packet.Pubrel{PacketID: p.PacketID})
		await(c, func(a *packet.Pubcomp) bool { return a.PacketID == p.PacketID })
	}
	return p.PacketID
}

// expectPublish returns the next packet, which must be a PUBLISH. It does
// not acknowledge it.
func (c *client) expectPublish() *packet.Publish {
	c.t.Helper()
	return expectPacket[*packet.Publish](c)
}

// ack completes the broker's QoS flow for a received PUBLISH: PUBACK for QoS
// 1; PUBREC, then PUBREL from the broker, then PUBCOMP for QoS 2.
func (c *client) ack(p *packet.Publish) {
	c.t.Helper()
	switch p.QoS {
	case 1:
		c.send(&packet.Puback{PacketID: p.PacketID})
	case 2:
		c.send(&packet.Pubrec{PacketID: p.PacketID})
		rel := await(c, func(r *packet.Pubrel) bool { return r.PacketID == p.PacketID })
		if rel.ReasonCode != packet.ReasonSuccess {
			c.t.Fatalf("%s: PUBREL %d reason 0x%02X", c.id, p.PacketID, byte(rel.ReasonCode))
		}
		c.send(&packet.Pubcomp{PacketID: p.PacketID})
	}
}

// receive returns the next PUBLISH after acknowledging it.
func (c *client) receive() *packet.Publish {
	c.t.Helper()
	p := c.expectPublish()
	c.ack(p)
	return p
}

// expectMessage receives the next PUBLISH, acknowledges it, and checks its
// topic and payload.
func (c *client) expectMessage(topic, payload string) *packet.Publish {
	c.t.Helper()
	p := c.receive()
	if p.Topic != topic || string(p.Payload) != payload {
		c.t.Fatalf("%s: got message %q on %q, want %q on %q", c.id, p.Payload, p.Topic, payload, topic)
	}
	return p
}

// ping sends PINGREQ and waits for PINGRESP [MQTT-3.12.4-1], keeping other
// packets for later.
func (c *client) ping() {
	c.t.Helper()
	c.send(&packet.Pingreq{})
	await[*packet.Pingresp](c, nil)
}

// Reason codes that each packet type may carry in MQTT 5.0, from the reason
// code tables of sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1,
// 3.9.3, 3.11.3, 3.14.2.1 and 3.15.2.1.
var (
	connackCodes    = codeSet(0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)
	pubackCodes     = codeSet(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
	pubrecCodes     = pubackCodes
	pubrelCodes     = codeSet(0x00, 0x92)
	pubcompCodes    = pubrelCodes
	subackCodes     = codeSet(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
	unsubackCodes   = codeSet(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
	authCodes       = codeSet(0x00, 0x18, 0x19)
	disconnectCodes = codeSet(0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2)
)

// disconnectCodes leaves out 0x04 (Disconnect with Will Message), which only
// a client sends.

func codeSet(codes ...byte) map[packet.ReasonCode]bool {
	m := make(map[packet.ReasonCode]bool, len(codes))
	for _, c := range codes {
		m[packet.ReasonCode(c)] = true
	}
	return m
}
