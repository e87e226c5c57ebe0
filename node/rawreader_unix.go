//go:build unix

package node

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// rawReader reads a plain TCP socket through its RawConn, with the read
// deadline and close handling of Go's netpoller but a raw read system call
// (sysRead). A connection holds one only while its read buffer is taken,
// so an idle connection pays nothing for it. Only the connection's reader
// uses it.
type rawReader struct {
	rc   syscall.RawConn
	step func(fd uintptr) bool // readFD, bound once so that a read allocates nothing
	buf  []byte                // the destination of the read in progress
	n    int
	err  error

	// noWait makes a read on an empty socket return errWouldBlock instead
	// of waiting for data.
	noWait bool
}

// errWouldBlock is the error of a read with noWait on an empty socket.
var errWouldBlock = errors.New("no data buffered on the socket")

var rawReaderPool = sync.Pool{New: func() any {
	r := new(rawReader)
	r.step = r.readFD
	return r
}}

// getRawReader returns a reader for the socket beneath nc, or nil when nc
// is not plain TCP (plainTCP): TLS, WebSocket and PROXY protocol streams
// need their own Read.
func getRawReader(nc net.Conn) *rawReader {
	rc := plainRawConn(nc)
	if rc == nil {
		return nil
	}
	r := rawReaderPool.Get().(*rawReader)
	r.rc = rc
	return r
}

// setNoWait sets whether a read on an empty socket returns errWouldBlock
// rather than waiting for data.
func (r *rawReader) setNoWait(noWait bool) { r.noWait = noWait }

// put returns r to the pool. r must not be used afterwards.
func (r *rawReader) put() {
	r.rc = nil
	r.noWait = false
	rawReaderPool.Put(r)
}

// read reads into p like net.Conn.Read: it waits until the socket has data,
// its read deadline passes or it is closed, and returns io.EOF when the
// peer has closed its side.
func (r *rawReader) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.buf, r.n, r.err = p, 0, nil
	err := r.rc.Read(r.step)
	n := r.n
	r.buf = nil
	switch {
	case err != nil:
		return 0, err
	case r.err != nil:
		return 0, r.err
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readFD is the RawConn callback. It returns false only when the socket
// has no data yet, so that the runtime parks the reader until it does.
func (r *rawReader) readFD(fd uintptr) bool {
	for {
		n, errno := sysRead(fd, r.buf)
		switch errno {
		case 0:
			r.n = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if r.noWait {
				r.err = errWouldBlock
				return true
			}
			return false
		default:
			r.err = os.NewSyscallError("read", errno)
			return true
		}
	}
}
