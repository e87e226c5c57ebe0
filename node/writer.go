package node

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// writeBufPool holds encode buffers for writers. A buffer is taken only while
// a writer runs, so an idle connection holds none.
var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// batchPool holds the packet batches that writers take from a queue.
var batchPool = sync.Pool{New: func() any { b := make([]packet.Packet, 0, 16); return &b }}

// keptQueueCap is the largest outbound queue array a connection keeps between
// batches: enough for the replies and deliveries of a busy client without an
// allocation per batch, small enough not to weigh on idle connections.
const keptQueueCap = 8

// maxPooledBatch keeps the batch of one huge burst from staying in the pool.
const maxPooledBatch = 1024

// outPublish is a PUBLISH that a session sends (sendLocked). The writer
// returns it to publishPool once encoded, because nothing else refers to it.
// Other PUBLISH packets stay *packet.Publish and are never recycled.
type outPublish struct {
	packet.Publish
}

var publishPool = sync.Pool{New: func() any { return new(outPublish) }}

func getBatch() *[]packet.Packet { return batchPool.Get().(*[]packet.Packet) }

func putBatch(bp *[]packet.Packet) {
	if cap(*bp) > maxPooledBatch {
		return
	}
	*bp = (*bp)[:0]
	batchPool.Put(bp)
}

// maxQueuedPackets bounds the packets waiting for one client's socket. PUBLISH
// packets are already bounded by the inflight window and MaxOutboundBytes, so
// only a client that floods requests without reading replies reaches it.
const maxQueuedPackets = 8192

// maxPooledBuf keeps an occasional huge packet from pinning its buffer in the pool.
const maxPooledBuf = 1 << 20

// send queues a packet for the client. It never blocks: the writer goroutine
// starts when there is something to write and exits when the queue is empty.
// It returns false when the connection is closing.
func (c *conn) send(p packet.Packet) bool {
	return c.sendVia(p, nil)
}

// sendVia queues a packet like send. When no writer runs, a non-nil fs takes
// the write over instead of a new writer goroutine: the caller writes the
// queue with fs.flush after its burst of sends, in its own goroutine.
func (c *conn) sendVia(p packet.Packet, fs *flushSet) bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.enqueueLocked(p, fs)
}

// sendAndClose queues a final packet, then closes the socket once it is written.
func (c *conn) sendAndClose(p packet.Packet) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.enqueueLocked(p, nil) {
		c.out.closeAfter = true
	}
}

func (c *conn) enqueueLocked(p packet.Packet, fs *flushSet) bool {
	if c.out.closed || c.out.closeAfter {
		return false
	}
	if c.maxOutPacket != 0 && p.Type() != packet.TypePublish && !c.fitClientMaximum(p) {
		// [MQTT-3.1.2-24] Nothing larger than the client's Maximum Packet Size.
		c.srv.stats.tooLarge.Add(1)
		return false
	}
	if len(c.out.queue) >= maxQueuedPackets {
		// The client sends (PINGREQ, SUBSCRIBE, ...) but does not read the
		// replies: close it rather than let its replies pile up.
		c.srv.stats.slowClients.Add(1)
		c.srv.clientWarn.log(c.srv.log, "closing a client that does not read its replies", keyClientID, c.clientID, keyRemote, c.remote,
			"queued_packets", len(c.out.queue))
		c.out.closed = true
		c.out.queue = nil
		c.nc.Close() // unblocks the reader and a writer stuck in Write
		c.wakeParked()
		return false
	}
	c.out.queue = append(c.out.queue, p)
	switch pub := p.(type) {
	case *outPublish:
		c.out.bytes += len(pub.Payload) + len(pub.Topic)
	case *packet.Publish:
		c.out.bytes += len(pub.Payload) + len(pub.Topic)
	}
	if c.out.writing {
		return true
	}
	c.out.writing = true
	c.wg.Add(1)
	switch {
	case fs != nil:
		fs.conns = append(fs.conns, c)
	case c.out.readerFlushes:
		c.out.readerOwes = true
	default:
		go c.writeLoop(nil, nil)
	}
	return true
}

// outboundFull reports whether QoS 0 sends must wait for the writer: the
// payload bytes queued for the socket reach maxBytes, or the queued packets
// reach half of maxQueuedPackets. The packet bound matters for small
// messages, whose bytes stay low while their count would reach
// maxQueuedPackets and close a client that does read; the other half is left
// for replies and QoS 1/2 sends.
func (c *conn) outboundFull(maxBytes int) bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.out.bytes >= maxBytes || len(c.out.queue) >= maxQueuedPackets/2
}

// flushSet collects the connections whose queued packets one goroutine has
// taken over to write itself (sendVia), so that a burst of sends costs one
// write per connection and no goroutine start. It is owned by one goroutine.
type flushSet struct {
	conns []*conn
}

// flush writes the queues taken over. It must be called without session or
// connection locks held, and before the goroutine blocks.
func (fs *flushSet) flush() {
	for i, c := range fs.conns {
		c.writeInline()
		fs.conns[i] = nil
	}
	fs.conns = fs.conns[:0]
}

// deferOwnWrites makes the reader write its connection's queue itself at its
// next flushOwnWrites, instead of starting a writer goroutine per reply. The
// reader calls it only before work that does not block.
func (c *conn) deferOwnWrites() {
	if c.deferring {
		return
	}
	c.deferring = true
	c.outMu.Lock()
	c.out.readerFlushes = true
	c.outMu.Unlock()
}

// flushOwnWrites ends deferOwnWrites and writes what the reader took over.
// The reader calls it before anything that blocks or waits for the writer.
func (c *conn) flushOwnWrites() {
	if !c.deferring {
		return
	}
	c.deferring = false
	c.outMu.Lock()
	c.out.readerFlushes = false
	owes := c.out.readerOwes
	c.out.readerOwes = false
	c.outMu.Unlock()
	if owes {
		c.writeInline()
	}
}

// writeInline writes the queue in the calling goroutine, which holds the
// write token (out.writing), for as long as the socket accepts the bytes at
// once. What the socket does not take, and everything on a transport
// without a raw socket (tls, ws), goes to a writer goroutine.
func (c *conn) writeInline() {
	if c.raw == nil {
		c.raw = newRawWriter(c.nc)
	}
	if c.raw == nil {
		go c.writeLoop(nil, nil)
		return
	}
	bufp := writeBufPool.Get().(*[]byte)
	bp := getBatch()
	defer putBatch(bp)
	for {
		batch, ok := c.takeBatch(*bp)
		*bp = batch
		if !ok {
			putWriteBuf(bufp)
			c.wg.Done()
			return
		}
		buf := c.encodeBatch((*bufp)[:0], batch)
		*bufp = buf
		n, err := c.raw.write(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The deadline of an earlier blocking write has passed. It does
			// not apply to a write that never waits, and the poller checks
			// it before calling the write at all, so nothing was written.
			c.nc.SetWriteDeadline(time.Time{})
			n, err = c.raw.write(buf)
		}
		if err != nil {
			c.writeFailed(err)
			putWriteBuf(bufp)
			c.wg.Done()
			return
		}
		c.srv.stats.bytesOut.Add(uint64(n))
		if n < len(buf) {
			// The socket buffer is full: a writer goroutine waits for room.
			go c.writeLoop(bufp, buf[n:])
			return
		}
	}
}

// writeLoop drains the outbound queue with one write per batch of packets,
// starting with rest, unwritten bytes in *bufp, when not nil. It owns the
// write token and one count of c.wg.
func (c *conn) writeLoop(bufp *[]byte, rest []byte) {
	defer c.wg.Done()
	if bufp == nil {
		bufp = writeBufPool.Get().(*[]byte)
	}
	defer putWriteBuf(bufp)

	if len(rest) > 0 && !c.writeBlocking(rest) {
		return
	}
	bp := getBatch()
	defer putBatch(bp)
	for {
		batch, ok := c.takeBatch(*bp)
		*bp = batch
		if !ok {
			return
		}
		buf := c.encodeBatch((*bufp)[:0], batch)
		*bufp = buf
		if !c.writeBlocking(buf) {
			return
		}
	}
}

// writeBlocking writes buf within the write timeout. On failure it closes
// the connection and returns false.
func (c *conn) writeBlocking(buf []byte) bool {
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	if _, err := c.nc.Write(buf); err != nil {
		c.writeFailed(err)
		return false
	}
	c.srv.stats.bytesOut.Add(uint64(len(buf)))
	return true
}

// takeBatch moves the queued packets into batch (reusing its array). The
// connection keeps a small queue array for its next packets and drops a
// large one. When nothing is queued it gives the write token back, then
// closes the socket after a final packet or calls the session's
// writerDrained, and returns false.
func (c *conn) takeBatch(batch []packet.Packet) ([]packet.Packet, bool) {
	c.outMu.Lock()
	if len(c.out.queue) == 0 || c.out.closed {
		closeAfter := c.out.closeAfter && !c.out.closed
		c.out.writing = false
		c.outMu.Unlock()
		if closeAfter {
			c.closeSocket()
		} else if sess := c.session(); sess != nil {
			sess.writerDrained(c)
		}
		return batch, false
	}
	batch = append(batch[:0], c.out.queue...)
	if cap(c.out.queue) <= keptQueueCap {
		clear(c.out.queue)
		c.out.queue = c.out.queue[:0]
	} else {
		c.out.queue = nil
	}
	c.out.bytes = 0
	c.outMu.Unlock()
	return batch, true
}

// encodeBatch appends the packets of batch to buf and clears batch, returning
// each outPublish to its pool. A packet that fails to encode is logged, and
// it and the rest of the batch are dropped.
func (c *conn) encodeBatch(buf []byte, batch []packet.Packet) []byte {
	var err error
	for i, p := range batch {
		if err == nil {
			buf, err = p.Encode(buf, c.version)
			if err != nil {
				c.srv.log.Error("encode outbound packet failed", keyClientID, c.clientID, keyRemote, c.remote, keyErr, err)
				buf = buf[:0]
			}
		}
		if op, ok := p.(*outPublish); ok {
			*op = outPublish{}
			publishPool.Put(op)
		}
		batch[i] = nil
	}
	return buf
}

// writeFailed closes the connection after a failed write and drops the queue.
func (c *conn) writeFailed(err error) {
	c.srv.log.Debug("write to client failed", keyClientID, c.clientID, keyRemote, c.remote, keyErr, err)
	c.closeSocket()
	c.outMu.Lock()
	c.out.writing = false
	c.out.queue = nil
	c.outMu.Unlock()
}

func putWriteBuf(bufp *[]byte) {
	if cap(*bufp) <= maxPooledBuf {
		*bufp = (*bufp)[:0]
		writeBufPool.Put(bufp)
	}
}

// fitClientMaximum makes a non-PUBLISH packet fit the client's Maximum Packet
// Size by removing its Reason String and User Properties, which the spec
// allows [MQTT-3.1.2-25]. It returns false when the packet still does not fit;
// the caller then does not send it.
func (c *conn) fitClientMaximum(p packet.Packet) bool {
	var scratch [64]byte
	if b, err := p.Encode(scratch[:0], c.version); err == nil && uint32(len(b)) <= c.maxOutPacket {
		return true
	}
	if props := diagnosticProperties(p); props != nil {
		props.ReasonString = ""
		props.UserProperties = nil
	}
	b, err := p.Encode(scratch[:0], c.version)
	return err == nil && uint32(len(b)) <= c.maxOutPacket
}

// diagnosticProperties returns the properties of a server packet that may
// carry a Reason String or User Properties, or nil.
func diagnosticProperties(p packet.Packet) *packet.Properties {
	switch p := p.(type) {
	case *packet.Connack:
		return &p.Properties
	case *packet.Disconnect:
		return &p.Properties
	case *packet.Suback:
		return &p.Properties
	case *packet.Unsuback:
		return &p.Properties
	case *packet.Puback:
		return &p.Properties
	case *packet.Pubrec:
		return &p.Properties
	case *packet.Pubrel:
		return &p.Properties
	case *packet.Pubcomp:
		return &p.Properties
	case *packet.Auth:
		return &p.Properties
	}
	return nil
}
