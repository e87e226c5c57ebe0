package node

import (
	"sync"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// writeBufPool holds encode buffers for writers. A buffer is taken only while
// a writer runs, so an idle connection holds none.
var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

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
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.enqueueLocked(p)
}

// sendAndClose queues a final packet, then closes the socket once it is written.
func (c *conn) sendAndClose(p packet.Packet) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.enqueueLocked(p) {
		c.out.closeAfter = true
	}
}

func (c *conn) enqueueLocked(p packet.Packet) bool {
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
		return false
	}
	c.out.queue = append(c.out.queue, p)
	if pub, ok := p.(*packet.Publish); ok {
		c.out.bytes += len(pub.Payload) + len(pub.Topic)
	}
	if !c.out.writing {
		c.out.writing = true
		c.wg.Add(1)
		go c.writeLoop()
	}
	return true
}

// outboundBytes returns the payload bytes queued for the socket.
func (c *conn) outboundBytes() int {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.out.bytes
}

// writeLoop drains the outbound queue with one write per batch of packets.
func (c *conn) writeLoop() {
	defer c.wg.Done()
	bufp := writeBufPool.Get().(*[]byte)
	defer func() {
		if cap(*bufp) <= maxPooledBuf {
			*bufp = (*bufp)[:0]
			writeBufPool.Put(bufp)
		}
	}()

	var batch []packet.Packet
	for {
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
			return
		}
		batch, c.out.queue = c.out.queue, batch[:0]
		c.out.bytes = 0
		c.outMu.Unlock()

		buf := (*bufp)[:0]
		var err error
		for i, p := range batch {
			buf, err = p.Encode(buf, c.version)
			batch[i] = nil
			if err != nil {
				c.srv.log.Error("encode outbound packet failed", keyClientID, c.clientID, keyRemote, c.remote, keyErr, err)
				buf = buf[:0]
				break
			}
		}
		*bufp = buf
		c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		if _, werr := c.nc.Write(buf); werr != nil {
			c.srv.log.Debug("write to client failed", keyClientID, c.clientID, keyRemote, c.remote, keyErr, werr)
			c.closeSocket()
			c.outMu.Lock()
			c.out.writing = false
			c.out.queue = nil
			c.outMu.Unlock()
			return
		}
		c.srv.stats.bytesOut.Add(uint64(len(buf)))
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
