package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2) lets
// a TCP proxy pass the client's address to the server. The proxy writes one
// header at the start of the connection, before any client byte: a text
// line in version 1, a binary block in version 2.

var (
	errProxyIncomplete = errors.New("transport: PROXY header is incomplete")
	errNoProxyHeader   = errors.New("transport: connection does not start with a PROXY header")
	errProxyInvalid    = errors.New("transport: PROXY header is invalid")
)

const (
	// proxyV1MaxLen is the longest version 1 line, CRLF included, that the
	// specification allows.
	proxyV1MaxLen = 107

	// proxyV2HeaderLen is the fixed part of a version 2 header: signature,
	// version and command, family and protocol, and address length.
	proxyV2HeaderLen = 16

	// proxyMaxLen bounds a version 2 header with its TLVs. The format
	// allows 64 KiB, but the TLVs proxies send (ALPN, authority, cloud
	// endpoint ids) fit in a few hundred bytes.
	proxyMaxLen = 4096
)

var proxyV2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// proxyHeader is a parsed PROXY header.
type proxyHeader struct {
	version int // 1 or 2
	// local is true for a version 2 LOCAL command (the proxy's own health
	// check) and for version 1 UNKNOWN: the header carries no client, so the
	// connection's own addresses stand.
	local bool
	// src and dst are the client's address and the address it connected
	// to. They are zero when local is true.
	src, dst netip.AddrPort
}

// parseProxyHeader parses the PROXY header at the start of b and returns it
// with its length in bytes. It returns errProxyIncomplete when b is a valid
// beginning of a header but too short, errNoProxyHeader when b cannot start
// one, and an error wrapping errProxyInvalid for a malformed header. TLVs of
// version 2 are skipped.
func parseProxyHeader(b []byte) (proxyHeader, int, error) {
	if len(b) == 0 {
		return proxyHeader{}, 0, errProxyIncomplete
	}
	switch b[0] {
	case 'P':
		return parseProxyV1(b)
	case '\r':
		return parseProxyV2(b)
	}
	return proxyHeader{}, 0, errNoProxyHeader
}

// startsLikeProxyHeader reports whether a connection whose first bytes are
// b could be sending a PROXY header. MQTT (first packet CONNECT, 0x10), TLS
// (handshake record, 0x16) and HTTP ("GET") never start with 'P' or CR, so
// the first byte is enough to distinguish them.
func startsLikeProxyHeader(b []byte) bool {
	return len(b) > 0 && (b[0] == 'P' || b[0] == '\r')
}

func parseProxyV1(b []byte) (proxyHeader, int, error) {
	const prefix = "PROXY "
	n := min(len(b), len(prefix))
	if !bytes.Equal(b[:n], []byte(prefix[:n])) {
		return proxyHeader{}, 0, errNoProxyHeader
	}

	end := bytes.Index(b[:min(len(b), proxyV1MaxLen)], []byte("\r\n"))
	if end < 0 {
		if len(b) < proxyV1MaxLen {
			return proxyHeader{}, 0, errProxyIncomplete
		}
		return proxyHeader{}, 0, fmt.Errorf("%w: version 1 line has no CRLF within %d bytes", errProxyInvalid, proxyV1MaxLen)
	}

	fields := bytes.Split(b[len(prefix):end], []byte(" "))
	h := proxyHeader{version: 1}
	switch string(fields[0]) {
	case "UNKNOWN":
		// The rest of the line is to be ignored.
		h.local = true
		return h, end + 2, nil
	case "TCP4", "TCP6":
	default:
		return proxyHeader{}, 0, fmt.Errorf("%w: version 1 protocol %q: expected TCP4, TCP6 or UNKNOWN", errProxyInvalid, fields[0])
	}
	if len(fields) != 5 {
		return proxyHeader{}, 0, fmt.Errorf("%w: version 1 line has %d fields after PROXY: expected 5", errProxyInvalid, len(fields))
	}

	want4 := string(fields[0]) == "TCP4"
	src, err := parseV1Endpoint(fields[1], fields[3], want4)
	if err != nil {
		return proxyHeader{}, 0, fmt.Errorf("%w: version 1 source: %w", errProxyInvalid, err)
	}
	dst, err := parseV1Endpoint(fields[2], fields[4], want4)
	if err != nil {
		return proxyHeader{}, 0, fmt.Errorf("%w: version 1 destination: %w", errProxyInvalid, err)
	}
	h.src, h.dst = src, dst
	return h, end + 2, nil
}

// parseV1Endpoint parses an address and a port of a version 1 line. The
// address must be of the family the line names, and the port a decimal
// number without sign or leading zeros.
func parseV1Endpoint(addr, port []byte, want4 bool) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(string(addr))
	if err != nil {
		return netip.AddrPort{}, err
	}
	if a.Is4() != want4 || a.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("address %s does not match the protocol", a)
	}
	if len(port) == 0 || len(port) > 5 || port[0] == '0' && len(port) > 1 || port[0] == '+' || port[0] == '-' {
		return netip.AddrPort{}, fmt.Errorf("port %q is invalid", port)
	}
	p, err := strconv.ParseUint(string(port), 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q is invalid", port)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// Version 2 commands, address families and transport protocols.
const (
	proxyV2Local = 0x0
	proxyV2Proxy = 0x1

	proxyV2Unspec = 0x0
	proxyV2Inet   = 0x1
	proxyV2Inet6  = 0x2
	proxyV2Unix   = 0x3

	proxyV2Stream = 0x1
	proxyV2Dgram  = 0x2
)

func parseProxyV2(b []byte) (proxyHeader, int, error) {
	n := min(len(b), len(proxyV2Signature))
	if !bytes.Equal(b[:n], proxyV2Signature[:n]) {
		return proxyHeader{}, 0, errNoProxyHeader
	}
	if len(b) < proxyV2HeaderLen {
		return proxyHeader{}, 0, errProxyIncomplete
	}

	verCmd, famProto := b[12], b[13]
	length := int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 {
		return proxyHeader{}, 0, fmt.Errorf("%w: version 2 header has version %d", errProxyInvalid, verCmd>>4)
	}
	if proxyV2HeaderLen+length > proxyMaxLen {
		return proxyHeader{}, 0, fmt.Errorf("%w: version 2 header is %d bytes long: the limit is %d", errProxyInvalid, proxyV2HeaderLen+length, proxyMaxLen)
	}
	if len(b) < proxyV2HeaderLen+length {
		return proxyHeader{}, 0, errProxyIncomplete
	}
	total := proxyV2HeaderLen + length
	body := b[proxyV2HeaderLen:total]

	family, proto := famProto>>4, famProto&0x0F
	if family > proxyV2Unix || proto > proxyV2Dgram {
		return proxyHeader{}, 0, fmt.Errorf("%w: version 2 family and protocol byte 0x%02x", errProxyInvalid, famProto)
	}

	h := proxyHeader{version: 2}
	switch verCmd & 0x0F {
	case proxyV2Local:
		// The receiver must ignore the address block of a LOCAL command.
		h.local = true
		return h, total, nil
	case proxyV2Proxy:
	default:
		return proxyHeader{}, 0, fmt.Errorf("%w: version 2 command %d", errProxyInvalid, verCmd&0x0F)
	}

	if proto == proxyV2Dgram {
		return proxyHeader{}, 0, fmt.Errorf("%w: version 2 header describes a datagram connection", errProxyInvalid)
	}
	switch family {
	case proxyV2Inet:
		if len(body) < 12 {
			return proxyHeader{}, 0, fmt.Errorf("%w: version 2 IPv4 address block is %d bytes: expected 12", errProxyInvalid, len(body))
		}
		h.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		h.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
	case proxyV2Inet6:
		if len(body) < 36 {
			return proxyHeader{}, 0, fmt.Errorf("%w: version 2 IPv6 address block is %d bytes: expected 36", errProxyInvalid, len(body))
		}
		h.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:34]))
		h.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:36]))
	default:
		// UNSPEC or a Unix socket: no IP address to report, so the
		// connection's own addresses stand, as for LOCAL.
		h.local = true
	}
	return h, total, nil
}

// readProxyHeader reads a PROXY header from c before deadline. It returns
// the header and the bytes it read past the header's end, which belong to
// the client's stream. Reads stop at proxyMaxLen bytes.
func readProxyHeader(c net.Conn, deadline time.Time) (proxyHeader, []byte, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return proxyHeader{}, nil, fmt.Errorf("transport: set PROXY header deadline: %w", err)
	}
	buf := make([]byte, 0, 256)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, min(cap(buf), proxyMaxLen-cap(buf)))...)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]

		h, size, perr := parseProxyHeader(buf)
		switch {
		case perr == nil:
			return h, buf[size:], nil
		case !errors.Is(perr, errProxyIncomplete):
			return proxyHeader{}, nil, perr
		case err != nil:
			return proxyHeader{}, nil, fmt.Errorf("transport: read PROXY header: %w", err)
		case len(buf) >= proxyMaxLen:
			// Unreachable while parseProxyHeader bounds both versions
			// below proxyMaxLen. It is kept so the loop cannot spin.
			return proxyHeader{}, nil, fmt.Errorf("%w: longer than %d bytes", errProxyInvalid, proxyMaxLen)
		}
	}
}

// readFirstBytes reads whatever the client sends first, before deadline, so
// that a direct client can be checked for a PROXY header it must not send.
func readFirstBytes(c net.Conn, deadline time.Time) ([]byte, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, fmt.Errorf("transport: set first read deadline: %w", err)
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if n > 0 {
		return buf[:n], nil
	}
	return nil, fmt.Errorf("transport: read first bytes: %w", err)
}

// prefixConn is a net.Conn whose stream starts with bytes read ahead, for
// example the client data that arrived with a PROXY header.
type prefixConn struct {
	net.Conn
	prefix []byte // unread bytes, nil once consumed so the buffer can be freed
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.prefix)
	c.prefix = c.prefix[n:]
	if len(c.prefix) == 0 {
		c.prefix = nil
	}
	return n, nil
}

// withPrefix returns c reading prefix first, or c itself for no prefix.
func withPrefix(c net.Conn, prefix []byte) net.Conn {
	if len(prefix) == 0 {
		return c
	}
	return &prefixConn{Conn: c, prefix: prefix}
}
