//go:build !unix

package node

import "net"

// rawWriter is not available outside Unix, where every write goes through
// the writer goroutine.
type rawWriter struct{}

// newRawWriter returns nil outside Unix.
func newRawWriter(net.Conn) *rawWriter { return nil }

func (*rawWriter) put() {}

func (*rawWriter) write([]byte) (int, error) {
	panic("node: rawWriter.write outside Unix")
}
