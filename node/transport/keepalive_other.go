//go:build !linux

package transport

import "net"

// listenConfig returns the configuration of a listening socket: Go's
// defaults, which set TCP keep-alive on each accepted connection.
func listenConfig() net.ListenConfig { return net.ListenConfig{} }
