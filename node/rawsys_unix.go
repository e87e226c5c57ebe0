//go:build unix && !linux

package node

import (
	"errors"
	"syscall"
)

// sysRead and sysWrite call read(2) and write(2) through the syscall
// package. Only the Linux build uses raw system calls (rawsys_linux.go),
// because some other systems must reach the kernel through libc.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	if err != nil {
		return 0, toErrno(err)
	}
	return n, 0
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	if err != nil {
		return 0, toErrno(err)
	}
	return n, 0
}

func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}
