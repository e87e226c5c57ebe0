//go:build linux

package transport

import (
	"net"
	"syscall"
	"testing"
)

func TestListener_AcceptedConnKeepsTCPKeepAlive(t *testing.T) {
	l, err := Listen(Config{URL: "tcp://127.0.0.1:0", Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer l.Close()
	dialTCP(t, l)
	c := acceptConn(t, l)
	defer c.Close()

	tcp, ok := c.NetConn().(*net.TCPConn)
	if !ok {
		t.Fatalf("NetConn is %T, want *net.TCPConn", c.NetConn())
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, keepAliveIdleSecs},
		{"TCP_KEEPINTVL", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, keepAliveIntervalSecs},
		{"TCP_KEEPCNT", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
	}
	for _, tc := range cases {
		var got int
		var getErr error
		if err := rc.Control(func(fd uintptr) { got, getErr = syscall.GetsockoptInt(int(fd), tc.level, tc.opt) }); err != nil {
			t.Fatal(err)
		}
		if getErr != nil {
			t.Errorf("%s: %v", tc.name, getErr)
			continue
		}
		if got != tc.want {
			t.Errorf("%s of an accepted connection = %d, want %d", tc.name, got, tc.want)
		}
	}
}
