//go:build unix

package node

import (
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/starling-mqtt/starling/node/transport"
)

// rawWriter writes to a plain TCP socket without blocking. Only the holder
// of the connection's write token uses it. Its callback is built once, so a
// write allocates nothing.
type rawWriter struct {
	rc   syscall.RawConn
	step func(fd uintptr) bool
	buf  []byte // the bytes of the write in progress
	n    int    // bytes of buf written so far
	err  error
}

var rawWriterPool = sync.Pool{New: func() any {
	w := new(rawWriter)
	w.step = w.writeFD
	return w
}}

// newRawWriter returns a writer for the socket beneath a plain TCP
// connection, or nil for TLS, WebSocket and other connections, whose bytes
// need framing by their own Write.
func newRawWriter(nc net.Conn) *rawWriter {
	rc := plainRawConn(nc)
	if rc == nil {
		return nil
	}
	w := rawWriterPool.Get().(*rawWriter)
	w.rc = rc
	return w
}

// put returns w to the pool. w must not be used afterwards.
func (w *rawWriter) put() {
	w.rc, w.buf, w.n, w.err = nil, nil, 0, nil
	rawWriterPool.Put(w)
}

// plainTCP returns the TCP socket beneath nc when the bytes on it are the
// MQTT stream itself: no TLS, no WebSocket framing, and no bytes read
// ahead into a wrapper (as a PROXY header reader may do). It returns nil
// otherwise.
func plainTCP(nc net.Conn) *net.TCPConn {
	if tc, ok := nc.(*transport.Conn); ok {
		if tc.Transport() != transport.TransportTCP {
			return nil
		}
		nc = tc.NetConn()
	}
	tcp, _ := nc.(*net.TCPConn)
	return tcp
}

// plainRawConn returns the raw socket of a plain TCP connection (plainTCP),
// or nil.
func plainRawConn(nc net.Conn) syscall.RawConn {
	tcp := plainTCP(nc)
	if tcp == nil {
		return nil
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// write writes as much of b as the socket's send buffer takes without
// waiting, and returns how much that was.
func (w *rawWriter) write(b []byte) (int, error) {
	w.buf, w.n, w.err = b, 0, nil
	err := w.rc.Write(w.step)
	if err == nil {
		err = w.err
	}
	n := w.n
	w.buf = nil
	return n, err
}

// writeFD is the RawConn callback. It returns true in every case, so the
// runtime never parks the caller to wait for room.
func (w *rawWriter) writeFD(fd uintptr) bool {
	for w.n < len(w.buf) {
		m, errno := sysWrite(fd, w.buf[w.n:])
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return true
		case errno != 0:
			w.err = os.NewSyscallError("write", errno)
			return true
		case m <= 0:
			return true
		}
		w.n += m
	}
	return true
}
