package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/node/transport"
	"github.com/starling-mqtt/starling/storage"
)

// kickGrace bounds how long a connection closed by the server (takeover,
// shutdown) may take to flush its final DISCONNECT before the socket closes.
const kickGrace = 2 * time.Second

// conn is one client network connection. Its reader goroutine (serve) owns the
// connection and, while connected, the session's QoS flows; a writer goroutine
// runs only while packets wait to be written.
type conn struct {
	srv    *Server
	nc     net.Conn
	br     *bufio.Reader // from readerPool while data flows; nil while idle; reads (*connSource)(c)
	rd     *rawReader    // the raw socket reader beneath br, taken and released with it; nil for tls, ws, proxy
	remote string
	ls     *listenerState

	// firstByte is the byte that ended an idle wait (waitForData). While
	// firstPending, the next read of br returns it before reading nc.
	firstByte    [1]byte
	firstPending bool

	// Set during CONNECT by the reader, read-only afterwards.
	version           byte
	clientID          string
	keepAlive         uint16 // seconds, after the Server Keep Alive cap
	announceKeepAlive bool
	problemInfo       bool   // the client's Request Problem Information
	maxOutPacket      uint32 // the client's Maximum Packet Size; 0: no limit
	sess              atomic.Pointer[session]
	access            atomic.Pointer[access] // identity and rules; replaced by re-authentication and reloads
	enhanced          *enhancedAuth          // nil unless CONNECT named an Authentication Method

	// Owned by the reader goroutine.
	will             *packet.Will
	aliases          map[uint16]string
	pending          *pendingPublishes // from the first PUBLISH, PUBACK or PUBCOMP of an active phase until the connection parks
	lastData         time.Time         // when the reader last found bytes on the socket
	readDeadline     time.Time         // the read deadline the reader set last
	deadlineKnown    bool              // readDeadline is the socket's; false after others set it
	linger           bool              // the transport survives a read timeout (tcp, tls)
	tls              bool              // the transport is tls: parkIdle checks crypto/tls's buffers (probeTLS)
	busy             bool              // the last idle wait was shorter than busyGap
	deferring        bool              // out.readerFlushes is set (deferOwnWrites)
	normalDisconnect bool
	flushes          *flushSet // other connections whose writes this reader took over; nil until it publishes

	// park is the connection's place in the server's idlePoller, guarded
	// by the poller's mutex.
	park parkState

	// raw writes to the TCP socket without blocking. The first inline write
	// takes it from a pool and parkIdle puts it back (releaseRawWriter), so
	// a parked connection does not pay for it. It stays nil for tls and ws.
	// Owned by the write token holder; set to nil only under outMu while
	// no goroutine holds the token.
	raw *rawWriter

	kickReason atomic.Uint32 // reason code + 1 when the server closed the connection
	boundVer   atomic.Uint32 // the protocol version once the session is bound; 0 before
	wg         sync.WaitGroup

	outMu sync.Mutex
	out   struct {
		queue      []packet.Packet
		bytes      int
		writing    bool // a goroutine holds the write token and will drain the queue
		closed     bool
		closeAfter bool

		// readerFlushes makes a send that finds no writer leave the write to
		// the reader (readerOwes) instead of starting a writer goroutine.
		readerFlushes bool
		readerOwes    bool

		// finished is set after the reader has detached the session, and
		// done, made by the first doneChan, is closed then.
		finished bool
		done     chan struct{}
	}
}

// enhancedAuth is the state of a connection that used MQTT 5.0 enhanced
// authentication. It is apart from conn because few connections use it.
type enhancedAuth struct {
	method string       // the Authentication Method of CONNECT
	final  []byte       // SCRAM server-final-message for the CONNACK
	reauth authExchange // a re-authentication in progress; owned by the reader
}

func newConn(srv *Server, nc net.Conn, ls *listenerState) *conn {
	return &conn{
		srv:    srv,
		nc:     nc,
		remote: nc.RemoteAddr().String(),
		ls:     ls,
		linger: survivesReadTimeout(nc),
		tls:    isTLS(nc),
	}
}

// isTLS reports whether nc is a connection of a tls listener.
func isTLS(nc net.Conn) bool {
	tc, ok := nc.(*transport.Conn)
	return ok && tc.Transport() == transport.TransportTLS
}

// survivesReadTimeout reports whether a read that times out leaves nc
// usable. gorilla/websocket treats a timeout as fatal, so WebSocket
// connections go idle as soon as their buffer empties.
func survivesReadTimeout(nc net.Conn) bool {
	tc, ok := nc.(*transport.Conn)
	if !ok {
		return true
	}
	switch tc.Transport() {
	case transport.TransportWS, transport.TransportWSS:
		return false
	}
	return true
}

func (c *conn) session() *session { return c.sess.Load() }

// readerPool holds the read buffers of connections. A connection holds one
// only while data flows: an idle connection waits on a one-byte read, so the
// millions of mostly idle devices a node keeps connected cost no buffer.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// connSource is the reader beneath a connection's read buffer. It returns
// the byte that ended an idle wait first, then reads the socket and counts
// the bytes in the node's statistics. It is a conversion of conn rather
// than a field, so that an idle connection carries no reader state beyond
// firstByte and firstPending.
type connSource conn

func (s *connSource) Read(p []byte) (int, error) {
	c := (*conn)(s)
	if c.firstPending && len(p) > 0 {
		p[0] = c.firstByte[0]
		c.firstPending = false
		return 1, nil
	}
	return c.readSocket(p)
}

// readSocket reads from the socket and counts the bytes read.
func (c *conn) readSocket(p []byte) (int, error) {
	var n int
	var err error
	if c.rd != nil {
		n, err = c.rd.read(p)
	} else {
		n, err = c.nc.Read(p)
	}
	c.srv.stats.bytesIn.Add(uint64(n))
	return n, err
}

// waitForData returns the read buffer to the pool, blocks until the client
// sends a byte (or the read deadline passes), then takes a buffer again. A
// byte that probeTLS read already counts as sent.
func (c *conn) waitForData() error {
	c.releaseReader()
	for !c.firstPending {
		n, err := c.readSocket(c.firstByte[:])
		if n == 1 {
			c.firstPending = true
			break
		}
		if err != nil {
			return err
		}
	}
	c.rd = getRawReader(c.nc)
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset((*connSource)(c))
	return nil
}

// readArrived takes a read buffer and fills it with what a plain TCP
// socket has already received, without waiting. It reports whether that
// was at least one byte. If not, the connection holds no buffer and reads
// nothing more, so waitForData takes over. A client usually sends CONNECT
// right after it connects, so this saves the one-byte read of waitForData.
func (c *conn) readArrived() bool {
	c.rd = getRawReader(c.nc)
	if c.rd == nil {
		return false
	}
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset((*connSource)(c))
	c.rd.setNoWait(true)
	_, err := c.br.Peek(1)
	c.rd.setNoWait(false)
	if err != nil {
		c.releaseReader()
		return false
	}
	return true
}

// releaseReader returns the read buffer to the pool; it must hold no data.
func (c *conn) releaseReader() {
	if c.br == nil {
		return
	}
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.br = nil
	if c.rd != nil {
		c.rd.put()
		c.rd = nil
	}
}

// closeSocket closes the network connection; safe to call more than once.
func (c *conn) closeSocket() {
	c.outMu.Lock()
	already := c.out.closed
	c.out.closed = true
	c.out.queue = nil
	c.outMu.Unlock()
	if !already {
		c.nc.Close()
	}
	c.wakeParked()
}

// wakeParked starts the reader of a connection parked in the idle poller,
// so that it notices what another goroutine did to the connection (closed
// it, kicked it). It does nothing for a connection that is not parked.
func (c *conn) wakeParked() {
	if p := c.srv.idle; p != nil {
		p.wake(c)
	}
}

// kick closes the connection on the server's initiative (takeover, shutdown),
// sending an MQTT 5.0 DISCONNECT with the reason first. The reader notices the
// closed socket and detaches the session; wait on c.doneChan() for that.
func (c *conn) kick(reason packet.ReasonCode) {
	if !c.kickReason.CompareAndSwap(0, uint32(reason)+1) {
		return
	}
	if c.boundVer.Load() == uint32(packet.Version5) {
		c.sendAndClose(&packet.Disconnect{ReasonCode: reason})
		c.nc.SetReadDeadline(time.Now().Add(kickGrace))
		c.wakeParked()
		return
	}
	c.closeSocket()
}

// activeLinger is how long a busy connection's reader keeps its goroutine
// and read buffer after the socket goes quiet, before it parks the
// connection (idleWait). A client that sends again within it costs a read
// syscall, and no goroutine start, stack growth or one-byte read. The reader
// resets its deadline only when less than half of activeLinger remains, so
// the real wait is between half and all of it.
const activeLinger = 200 * time.Millisecond

// busyGap is the longest idle wait after which a connection counts as busy
// and lingers. A device that pings once a minute, and every connection right
// after its CONNACK, parks at once: lingering there would only hold a buffer
// and a grown stack per device, as after a reconnect storm of a whole fleet.
const busyGap = time.Second

// A connection's packets are handled by one goroutine at a time, its owner.
// serve is the first owner. While data flows, the owner reads and handles
// packets (active), and on a busy connection waits up to activeLinger for
// more. When the socket stays quiet, the owner parks the connection
// (parkIdle) and returns. A plain TCP or TLS connection goes into the
// server's idlePoller and then has no goroutine at all until the poller
// starts idleWait for it. Other connections (WebSocket, PROXY protocol) get
// a fresh goroutine that only waits for the next byte (idleWait), which
// keeps only a small stack, not the stack the active phase grew. This
// matters for fleets of mostly idle devices. Every hand-over is a go
// statement, made after the previous owner's last write to the connection
// (through the poller's mutex when parked), so the owners run one after
// another and each observes what the previous one wrote.

// serve reads the CONNECT, replies with a CONNACK, then runs the first active
// phase.
func (c *conn) serve() {
	defer c.recoverPanic()
	c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.ConnectTimeout))
	if !c.readArrived() {
		if err := c.waitForData(); err != nil {
			c.srv.log.Debug("connection closed before CONNECT", keyRemote, c.remote, keyErr, err)
			c.finish()
			return
		}
	}
	if !c.handshake() {
		c.finish()
		return
	}
	c.lastData = time.Now()
	c.deadlineKnown = false // the handshake set its own deadlines
	c.active()
}

// active handles packets until the socket stays quiet, then hands the
// connection to idleWait, or ends it.
func (c *conn) active() {
	idle, err := c.readPhase()
	if idle {
		c.parkIdle()
		return
	}
	c.end(err)
}

// parkIdle hands an idle connection over to the server's idlePoller, or to
// a new idleWait goroutine when the poller cannot take it. The caller stops
// owning the connection.
func (c *conn) parkIdle() {
	c.releaseReader()
	c.releaseRawWriter()
	c.pending = nil // readPhase flushed it before going idle
	if p := c.srv.idle; p != nil && c.probeTLS() && p.park(c, c.keepAliveDeadline()) {
		// A goroutine that closed or kicked the connection before it was
		// parked found nothing to wake: wake it here. If the poller
		// already took it out again, wakeParked does nothing.
		if c.kickReason.Load() != 0 || c.socketClosed() {
			c.wakeParked()
		}
		return
	}
	go c.idleWait()
}

// pastDeadline is a read deadline that has passed: a read with it returns
// what its stream has buffered, and a timeout without a system call.
var pastDeadline = time.Unix(1, 0)

// probeTLS reports whether a connection may wait in the idle poller. For a
// TLS connection it first reads with pastDeadline, because crypto/tls may
// hold plaintext, or whole records, that it read from the socket but has
// not returned yet, and epoll sees only the socket. It returns false when
// that read returned a byte (then firstPending) or failed other than by
// timing out: the next idleWait then handles the byte or the error.
func (c *conn) probeTLS() bool {
	if !c.tls {
		return true
	}
	c.nc.SetReadDeadline(pastDeadline)
	c.deadlineKnown = false
	n, err := c.readSocket(c.firstByte[:])
	if c.kickReason.Load() != 0 {
		// kick's deadline for the final DISCONNECT may have been replaced.
		c.nc.SetReadDeadline(time.Now().Add(kickGrace))
	}
	if n == 1 {
		c.firstPending = true
		return false
	}
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// releaseRawWriter returns the raw writer to its pool and drops the empty
// outbound queue array, unless a goroutine holds the write token and may
// be using them.
func (c *conn) releaseRawWriter() {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.out.writing {
		return
	}
	if c.raw != nil {
		c.raw.put()
		c.raw = nil
	}
	if len(c.out.queue) == 0 {
		c.out.queue = nil
	}
}

// socketClosed reports whether closeSocket or a failed write closed the
// socket.
func (c *conn) socketClosed() bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.out.closed
}

// idleWait waits for the next byte without a read buffer, then runs the next
// active phase in this goroutine. The idle poller starts it when the socket
// has an event or the keep alive deadline has passed.
func (c *conn) idleWait() {
	defer c.recoverPanic()
	if c.kickReason.Load() == 0 {
		// kick sets a short deadline of its own for the final DISCONNECT.
		c.setReadDeadline(c.keepAliveDeadline())
	}
	start := c.lastData // the time the connection went idle (awaitData)
	if err := c.waitForData(); err != nil {
		c.end(c.readError(err))
		return
	}
	c.lastData = time.Now()
	c.busy = c.lastData.Sub(start) < busyGap

	// Move the byte into the buffer, so that readPhase finds data buffered.
	if _, err := c.br.Peek(1); err != nil {
		c.end(c.readError(err))
		return
	}
	c.active()
}

// readPhase reads and handles packets while they arrive. It returns idle when
// the socket stays quiet for activeLinger with every pending publish
// acknowledged, or the reason the connection ends: nil for a normal
// DISCONNECT.
func (c *conn) readPhase() (idle bool, err error) {
	// Every PUBLISH of this phase is decoded into in: handlePublish copies
	// what it keeps, so one Publish serves the whole burst.
	var in packet.Publish
	for {
		if c.br == nil || c.br.Buffered() == 0 {
			if err := c.flushPending(); err != nil {
				return false, err
			}
			c.flushOwnWrites()
			idle, err := c.awaitData()
			if idle || err != nil {
				return idle, err
			}
		}
		if !packetBuffered(c.br) {
			// Reads inside a packet wait for the keep alive, never for the
			// shorter linger: a timeout there would lose the bytes read so far.
			c.lastData = time.Now()
			c.setReadDeadline(c.keepAliveDeadline())
		}
		p, err := packet.ReadInto(c.br, c.version, c.srv.cfg.Limits.MaxPacketSize, &in)
		if err != nil {
			return false, c.readError(err)
		}
		c.srv.stats.packetsIn.Add(1)
		if err := c.handle(p); err != nil {
			return false, err
		}
		if c.normalDisconnect {
			return false, nil
		}
	}
}

// awaitData waits up to activeLinger for more bytes on a busy connection,
// keeping the read buffer. It returns idle when none arrived and the keep
// alive has not expired, or at once when the connection is not busy.
func (c *conn) awaitData() (idle bool, err error) {
	// Like a deadline set after every packet, the keep alive counts from the
	// moment the buffer emptied.
	now := time.Now()
	c.lastData = now
	if !c.linger || !c.busy || c.br == nil {
		return true, nil
	}
	deadline := now.Add(activeLinger)
	keepAlive := c.keepAliveDeadline()
	if !keepAlive.IsZero() && keepAlive.Before(deadline) {
		deadline = keepAlive
	}
	if !c.deadlineKnown || c.readDeadline.IsZero() || c.readDeadline.Sub(now) < activeLinger/2 || c.readDeadline.After(deadline) {
		c.setReadDeadline(deadline)
	}

	_, err = c.br.Peek(1)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false, c.readError(err)
	}
	if c.kickReason.Load() != 0 {
		// kick set its own deadline, which this reader may have moved:
		// give the final DISCONNECT its time before the socket closes.
		c.waitWriter()
		return false, errClosedByServer
	}
	if !keepAlive.IsZero() && !time.Now().Before(keepAlive) {
		return false, errKeepAlive
	}
	return true, nil
}

// keepAliveDeadline returns when the connection times out without a packet
// [MQTT-3.1.2-24]: one and a half keep alive periods after the last data.
// It returns the zero time when keep alive is off.
func (c *conn) keepAliveDeadline() time.Time {
	if c.keepAlive == 0 {
		return time.Time{}
	}
	return c.lastData.Add(time.Duration(c.keepAlive) * 1500 * time.Millisecond)
}

// setReadDeadline sets the socket's read deadline unless the reader set the
// same one last.
func (c *conn) setReadDeadline(t time.Time) {
	if c.deadlineKnown && c.readDeadline.Equal(t) {
		return
	}
	c.nc.SetReadDeadline(t)
	c.readDeadline, c.deadlineKnown = t, true
}

// packetBuffered reports whether br holds at least one whole packet, so that
// reading it makes no read call on the socket.
func packetBuffered(br *bufio.Reader) bool {
	buf, _ := br.Peek(br.Buffered())
	if len(buf) < 2 {
		return false
	}
	remaining, shift := 0, 0
	for i := 1; i < len(buf) && i <= 4; i++ {
		remaining |= int(buf[i]&0x7F) << shift
		shift += 7
		if buf[i]&0x80 == 0 {
			return len(buf) >= 1+i+remaining
		}
	}
	return false
}

// end closes a connection whose session is bound: pending publishes are
// acknowledged, the reaction to err is sent, and the session is detached.
func (c *conn) end(err error) {
	c.flushPending()
	c.reportClose(err)
	c.detach()
	c.finish()
}

// finish releases what the connection holds and removes it from the server.
// It runs exactly once, in the connection's last owner.
func (c *conn) finish() {
	c.flushOwnWrites()
	c.releaseReader()
	c.closeSocket()
	c.wg.Wait()
	c.outMu.Lock()
	c.out.finished = true
	if c.out.done != nil {
		close(c.out.done)
	}
	c.outMu.Unlock()
	c.srv.connFinished(c)
}

// doneChan returns a channel that is closed after the reader has detached
// the session. The channel is made by the first call, so that connections
// nobody waits for, nearly all of them, do not pay for one.
func (c *conn) doneChan() <-chan struct{} {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.out.done == nil {
		c.out.done = make(chan struct{})
		if c.out.finished {
			close(c.out.done)
		}
	}
	return c.out.done
}

// recoverPanic ends the connection after a panic in its owner, so that one
// client can never take the node down. It logs the panic with the stack.
func (c *conn) recoverPanic() {
	r := recover()
	if r == nil {
		return
	}
	c.srv.log.Error("connection panicked; closing it", keyClientID, c.clientID, keyRemote, c.remote,
		"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	c.srv.stats.panics.Add(1)
	c.detach()
	c.finish()
}

// errKeepAlive, errClosedByServer and errPeerClosed classify ends that are not
// protocol errors.
var (
	errKeepAlive      = errors.New("keep alive timeout")
	errClosedByServer = errors.New("closed by the server")
	errPeerClosed     = errors.New("connection closed by the client")
)

func (c *conn) readError(err error) error {
	var perr *packet.Error
	switch {
	case errors.As(err, &perr):
		return perr
	case c.kickReason.Load() != 0:
		return errClosedByServer
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errKeepAlive
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return errPeerClosed
	default:
		return fmt.Errorf("read: %w", err)
	}
}

// reportClose sends what the spec requires when a connection ends with an
// error, and logs one line. For MQTT 5.0 a protocol error gets a DISCONNECT
// with its reason code; 3.1.1 has no server DISCONNECT, so the socket closes.
func (c *conn) reportClose(err error) {
	var perr *packet.Error
	switch {
	case err == nil:
		if c.debugLogged() {
			c.srv.log.Debug("client disconnected", keyClientID, c.clientID, keyRemote, c.remote)
		}
	case errors.As(err, &perr):
		c.srv.stats.protocolErrors.Add(1)
		c.srv.clientWarn.log(c.srv.log, "closing connection after a protocol error",
			keyClientID, c.clientID, keyRemote, c.remote, keyReason, fmt.Sprintf("0x%02X", byte(perr.Code)), keyErr, perr.Reason)
		if c.version == packet.Version5 {
			d := &packet.Disconnect{ReasonCode: perr.Code}
			if c.problemInfo {
				d.Properties.ReasonString = perr.Reason
			}
			c.sendAndClose(d)
			c.waitWriter()
		}
	case errors.Is(err, errKeepAlive):
		c.srv.log.Debug("keep alive timeout", keyClientID, c.clientID, keyRemote, c.remote)
		if c.version == packet.Version5 {
			c.sendAndClose(&packet.Disconnect{ReasonCode: packet.ReasonKeepAliveTimeout})
			c.waitWriter()
		}
	default:
		if c.debugLogged() {
			c.srv.log.Debug("connection ended", keyClientID, c.clientID, keyRemote, c.remote, keyErr, err)
		}
	}
}

// debugLogged reports whether the node logs at Debug. The lines logged once
// per connection check it first, because their arguments alone allocate.
func (c *conn) debugLogged() bool {
	return c.srv.log.Enabled(context.Background(), slog.LevelDebug)
}

// waitWriter gives the writer a bounded time to flush a final packet.
func (c *conn) waitWriter() {
	c.flushOwnWrites()
	c.nc.SetWriteDeadline(time.Now().Add(kickGrace))
	c.wg.Wait()
}

// handle dispatches one packet received after CONNECT. The handlers of
// PUBLISH, PUBACK, PUBCOMP and PINGREQ do not block, except flushPending,
// which writes the deferred packets before a synced commit: their replies
// wait for the reader's next flushOwnWrites. The other handlers can wait
// (fsync, route commits), so the deferred packets are written first.
func (c *conn) handle(p packet.Packet) error {
	switch p.(type) {
	case *packet.Publish, *packet.Puback, *packet.Pubcomp, *packet.Pingreq:
		c.deferOwnWrites()
	default:
		c.flushOwnWrites()
	}

	switch p := p.(type) {
	case *packet.Publish:
		return c.handlePublish(p)
	case *packet.Puback:
		return c.handlePuback(p)
	case *packet.Pubrec:
		return c.handlePubrec(p)
	case *packet.Pubrel:
		if err := c.flushPending(); err != nil {
			return err
		}
		return c.handlePubrel(p)
	case *packet.Pubcomp:
		return c.handlePubcomp(p)
	case *packet.Subscribe:
		if err := c.flushPending(); err != nil {
			return err
		}
		return c.handleSubscribe(p)
	case *packet.Unsubscribe:
		if err := c.flushPending(); err != nil {
			return err
		}
		return c.handleUnsubscribe(p)
	case *packet.Pingreq:
		c.send(&packet.Pingresp{})
		return nil
	case *packet.Disconnect:
		return c.handleDisconnect(p)
	case *packet.Connect:
		// [MQTT-3.1.0-2] A second CONNECT is a protocol violation.
		return packet.Errorf(packet.ReasonProtocolError, "second CONNECT on one connection")
	case *packet.Auth:
		c.deadlineKnown = false // re-authentication sets its own deadlines
		return c.handleAuth(p)
	default:
		// CONNACK, SUBACK, UNSUBACK and PINGRESP travel only from server to client.
		return packet.Errorf(packet.ReasonProtocolError, "packet type %d is sent only by servers", p.Type())
	}
}

// handleDisconnect applies a client's DISCONNECT. In MQTT 5.0 the client may
// change the Session Expiry Interval, but not from zero [MQTT-3.14.2-2], and
// reason 0x04 asks for the will to be published.
func (c *conn) handleDisconnect(p *packet.Disconnect) error {
	sess := c.session()
	if c.version == packet.Version5 && p.Properties.HasSessionExpiry {
		sess.mu.Lock()
		old := sess.mu.expiry
		if old == 0 && p.Properties.SessionExpiry != 0 {
			sess.mu.Unlock()
			return packet.Errorf(packet.ReasonProtocolError, "session expiry changed from 0 in DISCONNECT")
		}
		sess.mu.expiry = p.Properties.SessionExpiry
		sess.mu.Unlock()
	}
	if c.version == packet.Version5 && p.ReasonCode == packet.ReasonDisconnectWithWill {
		return errPeerClosed
	}
	// [MQTT-3.14.4-3] A normal DISCONNECT discards the will.
	c.will = nil
	c.normalDisconnect = true
	return nil
}

// fitsPacketSize reports whether the PUBLISH for d fits the client's Maximum
// Packet Size. Called with the session lock held.
func (c *conn) fitsPacketSize(d *delivery, now time.Time) bool {
	if c.maxOutPacket == 0 {
		return true
	}
	remaining := 2 + len(d.msg.topic) + len(d.msg.payload)
	if d.qos > 0 {
		remaining += 2
	}
	if c.version == packet.Version5 {
		props := d.msg.properties()
		props.SubscriptionIDs = d.subIDs
		if !d.msg.expiresAt.IsZero() {
			props.HasMessageExpiry = true
			props.MessageExpiry = d.msg.remainingExpiry(now)
		}
		// The block includes its own length prefix.
		remaining += len(packet.AppendPublishProperties(nil, &props))
	}
	size := 1 + varintLen(remaining) + remaining
	return uint32(size) <= c.maxOutPacket
}

// varintLen returns the bytes of n as an MQTT variable byte integer.
func varintLen(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16384:
		return 2
	case n < 2097152:
		return 3
	}
	return 4
}

// pendingPublishes are publishes decoded but not yet acknowledged: their
// storage writes share one batch and one fsync, and their deliveries and
// acknowledgements follow the commit, in order.
type pendingPublishes struct {
	batch    *storage.Batch
	needSync bool
	targets  []target
	acks     []packet.Packet
	// unsettled counts the acks of publishes that are not in the session's
	// inbound QoS 2 table: each counts once against Receive Maximum.
	unsettled int
	retained  []retainedUpdate
	forwards  forwards              // staged for other nodes; released after the batch commits
	queuedTo  map[*session]struct{} // see routeReserving
	releases  *storage.Batch        // releases after PUBACK and PUBCOMP; see commitReleases
}

type target struct {
	sess *session
	d    *delivery
}

// maxPendingPublishes bounds the publishes that share one commit.
const maxPendingPublishes = 256
