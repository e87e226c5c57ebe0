//go:build linux

package node

import (
	"container/heap"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/starling-mqtt/starling/node/transport"
)

// idlePoller parks idle plain TCP and TLS connections in one epoll set, so
// that an idle connection costs no goroutine, no stack and no read buffer. One
// goroutine (run) waits on the set. When a parked socket becomes readable,
// reports a hang-up or error, or reaches its keep alive deadline, run takes
// the connection out and starts its idleWait goroutine, which reads and
// handles packets as a connection that never parked would.
//
// The poller only decides when a connection looks at its socket: the
// connection's reader still reads through Go's net package with its own
// deadline, so a wake-up that comes early or without data costs one
// goroutine waiting as before, never a wrong answer. A TLS connection
// parks only when crypto/tls holds no bytes that it has read from the
// socket but not returned (conn.probeTLS), because epoll cannot see those.
//
// The sockets stay registered with Go's own netpoller as well. A socket may
// belong to several epoll sets, and this one is separate from the runtime's.
//
// Goroutines: run, owned by the Server, started by newIdlePoller and
// stopped by close, which Shutdown calls after every connection has ended.
//
// Lock order: conn.outMu, then idlePoller.mu.
type idlePoller struct {
	epfd   int // the epoll set
	wakeR  int // read end of a pipe in the set, to interrupt epoll_wait
	wakeW  int // write end of that pipe
	log    *slog.Logger
	done   chan struct{} // closed when run returns
	events []syscall.EpollEvent

	mu struct {
		sync.Mutex
		closed bool
		// byFD maps a socket's file descriptor to the connection parked
		// on it, or nil. A descriptor is unique among open sockets, and a
		// connection is only parked while its socket is open.
		byFD []*conn
		// timers holds the parked connections with a keep alive deadline,
		// earliest first.
		timers parkHeap
		// waitUntil is the latest time, in Unix nanoseconds, at which run
		// returns from epoll_wait on its own; math.MaxInt64 when it waits
		// without a timeout. park interrupts run for an earlier deadline.
		waitUntil int64
	}
}

// parkState is a connection's place in the idlePoller. Every field is
// guarded by idlePoller.mu.
type parkState struct {
	parked     bool
	registered bool   // the socket is in the epoll set, armed or not
	gen        uint32 // counts parks, to ignore events of an earlier park
	fd         int32
	index      int32 // position in parkHeap; -1 when not there
	deadline   int64 // keep alive deadline in Unix nanoseconds; 0 for none
}

// maxPollEvents bounds the events one epoll_wait returns.
const maxPollEvents = 256

// pollEvents are the events a parked socket waits for. EPOLLONESHOT
// disarms the socket after one event, so that a connection whose reader
// runs does not keep waking the poller while data is unread. Level
// triggering catches bytes that arrived before the socket was armed.
const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// newIdlePoller creates the epoll set and starts its goroutine.
func newIdlePoller(log *slog.Logger) (*idlePoller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: -1}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, pipe[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(pipe[0])
		syscall.Close(pipe[1])
		return nil, fmt.Errorf("epoll_ctl add wake pipe: %w", err)
	}
	p := &idlePoller{
		epfd:   epfd,
		wakeR:  pipe[0],
		wakeW:  pipe[1],
		log:    log,
		done:   make(chan struct{}),
		events: make([]syscall.EpollEvent, maxPollEvents),
	}
	p.mu.waitUntil = math.MaxInt64
	go p.run()
	return p, nil
}

// park puts c into the epoll set until its socket has something to read or
// its keep alive deadline passes, and reports whether it did. It returns
// false when the socket is closed or is neither plain TCP nor TLS over TCP
// (parkSocket), and after close: the caller then keeps waiting in a
// goroutine. After a true return another goroutine may own c at any
// moment, so the caller must not touch c.
func (p *idlePoller) park(c *conn, deadline time.Time) bool {
	tcp := parkSocket(c.nc)
	if tcp == nil {
		return false
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return false
	}
	var at int64
	if !deadline.IsZero() {
		at = max(deadline.UnixNano(), 1)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return false
	}
	var armErr error
	// Control holds the descriptor open, so it cannot be closed and reused
	// by another socket while it is armed here.
	if err := rc.Control(func(fd uintptr) { armErr = p.armLocked(c, int(fd)) }); err != nil {
		return false
	}
	if armErr != nil {
		p.log.Debug("parking an idle connection failed; waiting in a goroutine", keyRemote, c.remote, keyErr, armErr)
		return false
	}

	c.park.parked = true
	c.park.deadline = at
	if at != 0 {
		heap.Push(&p.mu.timers, c)
		if at < p.mu.waitUntil {
			p.mu.waitUntil = at
			p.interruptLocked()
		}
	}
	return true
}

// parkSocket returns the TCP socket beneath a plain TCP connection
// (plainTCP) or beneath a TLS connection without a PROXY header, or nil.
func parkSocket(nc net.Conn) *net.TCPConn {
	if tcp := plainTCP(nc); tcp != nil {
		return tcp
	}
	tc, ok := nc.(*transport.Conn)
	if !ok || tc.Transport() != transport.TransportTLS {
		return nil
	}
	tlsConn, ok := tc.NetConn().(*tls.Conn)
	if !ok {
		return nil
	}
	tcp, _ := tlsConn.NetConn().(*net.TCPConn)
	return tcp
}

// armLocked registers fd for c, or re-arms it after an earlier park.
func (p *idlePoller) armLocked(c *conn, fd int) error {
	if fd >= len(p.mu.byFD) {
		grown := make([]*conn, max(fd+1, 2*len(p.mu.byFD)))
		copy(grown, p.mu.byFD)
		p.mu.byFD = grown
	}
	if old := p.mu.byFD[fd]; old != nil && old != c {
		// The descriptor was closed and reused while old was parked, so
		// the kernel dropped old's registration: let old's reader find
		// its socket closed.
		p.unparkLocked(old)
		go old.idleWait()
	}

	c.park.gen++
	ev := syscall.EpollEvent{Events: pollEvents, Fd: int32(fd), Pad: int32(c.park.gen)}
	op := syscall.EPOLL_CTL_MOD
	if !c.park.registered {
		op = syscall.EPOLL_CTL_ADD
	}
	err := syscall.EpollCtl(p.epfd, op, fd, &ev)
	if op == syscall.EPOLL_CTL_MOD && errors.Is(err, syscall.ENOENT) {
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
	}
	if err != nil {
		return fmt.Errorf("epoll_ctl fd %d: %w", fd, err)
	}
	c.park.registered = true
	c.park.fd = int32(fd)
	c.park.index = -1
	p.mu.byFD[fd] = c
	return nil
}

// wake takes c out of the poller and starts its reader, if c is parked. It
// is how a goroutine that closes or kicks c makes sure c's reader notices.
func (p *idlePoller) wake(c *conn) {
	p.mu.Lock()
	parked := c.park.parked
	if parked {
		p.unparkLocked(c)
	}
	p.mu.Unlock()
	if parked {
		go c.idleWait()
	}
}

// unparkLocked removes c from the poller's tables. Its socket stays
// registered: if the socket is still armed, its next event finds no parked
// connection and is ignored, and EPOLLONESHOT disarms it.
func (p *idlePoller) unparkLocked(c *conn) {
	c.park.parked = false
	if int(c.park.fd) < len(p.mu.byFD) && p.mu.byFD[c.park.fd] == c {
		p.mu.byFD[c.park.fd] = nil
	}
	if c.park.index >= 0 {
		heap.Remove(&p.mu.timers, int(c.park.index))
	}
}

// interruptLocked makes run return from epoll_wait. A full pipe already
// holds a wake-up, so a failed write needs no retry.
func (p *idlePoller) interruptLocked() {
	var b = [1]byte{1}
	syscall.Write(p.wakeW, b[:])
}

// run waits for events and deadlines of the parked connections and starts
// the reader of each connection that has one, until close.
func (p *idlePoller) run() {
	defer close(p.done)
	var ready []*conn
	for {
		n, err := syscall.EpollWait(p.epfd, p.events, p.timeoutMillis())
		if err != nil && !errors.Is(err, syscall.EINTR) {
			// Only a broken epoll descriptor fails here. Parked
			// connections then wait for their keep alive deadline or a
			// wake, so keep running on a timer.
			p.log.Error("epoll_wait failed; idle connections wake late", keyErr, err)
			time.Sleep(100 * time.Millisecond)
			n = 0
		}

		p.mu.Lock()
		if p.mu.closed {
			p.mu.Unlock()
			return
		}
		for i := 0; i < n; i++ {
			ready = p.readyLocked(ready, &p.events[i])
		}
		ready = p.expireLocked(ready, time.Now().UnixNano())
		p.mu.Unlock()

		for i, c := range ready {
			go c.idleWait()
			ready[i] = nil
		}
		ready = ready[:0]
	}
}

// readyLocked handles one event: a wake-up on the pipe, or a parked socket
// that became readable, hung up or failed.
func (p *idlePoller) readyLocked(ready []*conn, ev *syscall.EpollEvent) []*conn {
	if ev.Fd < 0 {
		var buf [64]byte
		for {
			if n, err := syscall.Read(p.wakeR, buf[:]); n <= 0 || err != nil {
				break
			}
		}
		return ready
	}
	if int(ev.Fd) >= len(p.mu.byFD) {
		return ready
	}
	c := p.mu.byFD[ev.Fd]
	if c == nil || !c.park.parked || c.park.gen != uint32(ev.Pad) {
		return ready
	}
	p.unparkLocked(c)
	return append(ready, c)
}

// expireLocked takes out the connections whose keep alive deadline passed.
func (p *idlePoller) expireLocked(ready []*conn, now int64) []*conn {
	for len(p.mu.timers) > 0 && p.mu.timers[0].park.deadline <= now {
		c := p.mu.timers[0]
		p.unparkLocked(c)
		ready = append(ready, c)
	}
	return ready
}

// timeoutMillis returns how long epoll_wait may block: until the earliest
// keep alive deadline, rounded up to the next millisecond, or -1 for no
// limit. A reader started early by rounding finds its own socket deadline
// not yet passed and waits for it, so rounding up is the safe direction.
func (p *idlePoller) timeoutMillis() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.mu.timers) == 0 {
		p.mu.waitUntil = math.MaxInt64
		return -1
	}
	at := p.mu.timers[0].park.deadline
	p.mu.waitUntil = at
	wait := at - time.Now().UnixNano()
	if wait <= 0 {
		return 0
	}
	return int(min((wait+int64(time.Millisecond)-1)/int64(time.Millisecond), math.MaxInt32))
}

// close stops run, waits for it and releases the epoll set. Connections
// still parked, which Shutdown does not leave, get their readers started.
// A nil poller does nothing.
func (p *idlePoller) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		<-p.done
		return
	}
	p.mu.closed = true
	var left []*conn
	for _, c := range p.mu.byFD {
		if c != nil && c.park.parked {
			p.unparkLocked(c)
			left = append(left, c)
		}
	}
	p.interruptLocked()
	p.mu.Unlock()

	<-p.done
	syscall.Close(p.epfd)
	syscall.Close(p.wakeR)
	syscall.Close(p.wakeW)
	for _, c := range left {
		go c.idleWait()
	}
}

// parkHeap orders parked connections by keep alive deadline. Its methods
// are called through container/heap with idlePoller.mu held.
type parkHeap []*conn

func (h parkHeap) Len() int           { return len(h) }
func (h parkHeap) Less(i, j int) bool { return h[i].park.deadline < h[j].park.deadline }
func (h parkHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].park.index = int32(i)
	h[j].park.index = int32(j)
}

func (h *parkHeap) Push(x any) {
	c := x.(*conn)
	c.park.index = int32(len(*h))
	*h = append(*h, c)
}

func (h *parkHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	c.park.index = -1
	*h = old[:len(old)-1]
	return c
}
