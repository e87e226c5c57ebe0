//go:build linux

package transport

import (
	"net"
	"syscall"
)

// TCP keep-alive settings of accepted connections: the defaults of Go's
// net.KeepAliveConfig (Go 1.23 and later), which an accepted connection
// got before they were set on the listening socket.
const (
	keepAliveIdleSecs     = 15
	keepAliveIntervalSecs = 15
	keepAliveCount        = 9
)

// listenConfig returns the configuration of a listening socket. Linux
// copies a listening socket's keep-alive options to every socket it
// accepts, so they are set once on the listener here instead of by Go on
// each accepted connection, which took four setsockopt calls per
// connection.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAlive: -1, Control: setListenerKeepAlive}
}

func setListenerKeepAlive(_, _ string, rc syscall.RawConn) error {
	var err error
	ctlErr := rc.Control(func(fd uintptr) {
		s := int(fd)
		for _, opt := range []struct{ level, name, value int }{
			{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, keepAliveIdleSecs},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, keepAliveIntervalSecs},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
		} {
			if err = syscall.SetsockoptInt(s, opt.level, opt.name, opt.value); err != nil {
				return
			}
		}
	})
	if ctlErr != nil {
		return ctlErr
	}
	return err
}
