//go:build !unix

package node

import "net"

// rawReader is not available outside Unix, where every read goes through
// net.Conn.Read.
type rawReader struct{}

// getRawReader returns nil outside Unix.
func getRawReader(net.Conn) *rawReader { return nil }

func (*rawReader) put() {}

func (*rawReader) setNoWait(bool) {}

func (*rawReader) read([]byte) (int, error) {
	panic("node: rawReader.read outside Unix")
}
