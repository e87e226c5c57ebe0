//go:build linux

package node

import (
	"syscall"
	"unsafe"
)

// sysRead and sysWrite call read(2) and write(2) on a non-blocking socket
// as raw system calls, without the runtime's entersyscall. When every P of
// the process has been idle, entersyscall wakes the runtime's monitor
// thread (sysmon), which then wakes every 20 µs until the process is idle
// again (Go 1.26, runtime/proc.go). At 2,000 messages per second that cost
// a futex wake-up and a nanosleep per message, about a fifth of the
// broker's CPU time in a perf profile. A call on a non-blocking socket
// returns without waiting, so it needs neither sysmon nor a hand-off of
// its P.
//
// They return the errno as is, so that callers can compare it with EAGAIN
// and EINTR, and a count of 0 with it.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}
