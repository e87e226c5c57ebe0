package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// proxyV1 returns a version 1 header line.
func proxyV1(src, dst netip.AddrPort) []byte {
	proto := "TCP4"
	if src.Addr().Is6() {
		proto = "TCP6"
	}
	return fmt.Appendf(nil, "PROXY %s %s %s %d %d\r\n", proto, src.Addr(), dst.Addr(), src.Port(), dst.Port())
}

// proxyV2 returns a version 2 header. A zero src gives a LOCAL command.
// tlvs are appended to the address block.
func proxyV2(src, dst netip.AddrPort, tlvs []byte) []byte {
	b := append([]byte(nil), proxyV2Signature...)
	if !src.IsValid() {
		b = append(b, 0x20, 0x00)
		return binary.BigEndian.AppendUint16(b, 0)
	}
	var addrs []byte
	famProto := byte(proxyV2Inet<<4 | proxyV2Stream)
	if src.Addr().Is4() {
		s, d := src.Addr().As4(), dst.Addr().As4()
		addrs = append(append(addrs, s[:]...), d[:]...)
	} else {
		famProto = proxyV2Inet6<<4 | proxyV2Stream
		s, d := src.Addr().As16(), dst.Addr().As16()
		addrs = append(append(addrs, s[:]...), d[:]...)
	}
	addrs = binary.BigEndian.AppendUint16(addrs, src.Port())
	addrs = binary.BigEndian.AppendUint16(addrs, dst.Port())
	addrs = append(addrs, tlvs...)
	b = append(b, 0x21, famProto)
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)))
	return append(b, addrs...)
}

var (
	client4 = netip.MustParseAddrPort("192.0.2.7:50123")
	server4 = netip.MustParseAddrPort("198.51.100.1:1883")
	client6 = netip.MustParseAddrPort("[2001:db8::7]:50123")
	server6 = netip.MustParseAddrPort("[2001:db8::1]:8883")
)

func TestParseProxyHeader(t *testing.T) {
	tlv := []byte{0x01, 0x00, 0x02, 'h', '2'} // PP2_TYPE_ALPN "h2"
	for _, tc := range []struct {
		name    string
		in      []byte
		version int
		local   bool
		src     netip.AddrPort
	}{
		{"v1-tcp4", proxyV1(client4, server4), 1, false, client4},
		{"v1-tcp6", proxyV1(client6, server6), 1, false, client6},
		{"v1-unknown", []byte("PROXY UNKNOWN\r\n"), 1, true, netip.AddrPort{}},
		{"v1-unknown-with-addresses", []byte("PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n"), 1, true, netip.AddrPort{}},
		{"v1-port-zero", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 0 1883\r\n"), 1, false, netip.MustParseAddrPort("192.0.2.7:0")},
		{"v2-tcp4", proxyV2(client4, server4, nil), 2, false, client4},
		{"v2-tcp6", proxyV2(client6, server6, nil), 2, false, client6},
		{"v2-tcp4-tlv", proxyV2(client4, server4, tlv), 2, false, client4},
		{"v2-local", proxyV2(netip.AddrPort{}, netip.AddrPort{}, nil), 2, true, netip.AddrPort{}},
		{"v2-local-ignores-addresses", append(append(append([]byte(nil), proxyV2Signature...), 0x20, 0x11, 0x00, 0x0c), make([]byte, 12)...), 2, true, netip.AddrPort{}},
		{"v2-unspec", append(append([]byte(nil), proxyV2Signature...), 0x21, 0x00, 0x00, 0x00), 2, true, netip.AddrPort{}},
		{"v2-unix", append(append(append([]byte(nil), proxyV2Signature...), 0x21, 0x31, 0x00, 0xd8), make([]byte, 216)...), 2, true, netip.AddrPort{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append(append([]byte(nil), tc.in...), 0x10, 0x00) // client bytes follow
			h, n, err := parseProxyHeader(in)
			if err != nil {
				t.Fatalf("parse %q: %v", tc.in, err)
			}
			if n != len(tc.in) {
				t.Errorf("length = %d, want %d", n, len(tc.in))
			}
			if h.version != tc.version {
				t.Errorf("version = %d, want %d", h.version, tc.version)
			}
			if h.local != tc.local {
				t.Errorf("local = %v, want %v", h.local, tc.local)
			}
			if h.src != tc.src {
				t.Errorf("src = %v, want %v", h.src, tc.src)
			}
		})
	}
}

func TestParseProxyHeader_Errors(t *testing.T) {
	v2 := func(verCmd, famProto byte, body []byte) []byte {
		b := append(append([]byte(nil), proxyV2Signature...), verCmd, famProto)
		b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
		return append(b, body...)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, errProxyIncomplete},
		{"v1-partial-prefix", []byte("PRO"), errProxyIncomplete},
		{"v1-partial-line", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 5"), errProxyIncomplete},
		{"v2-partial-signature", proxyV2Signature[:5], errProxyIncomplete},
		{"v2-partial-body", proxyV2(client4, server4, nil)[:20], errProxyIncomplete},
		{"mqtt-connect", []byte{0x10, 0x0c, 0x00, 0x04}, errNoProxyHeader},
		{"http", []byte("GET /mqtt HTTP/1.1\r\n"), errNoProxyHeader},
		{"tls", []byte{0x16, 0x03, 0x01}, errNoProxyHeader},
		{"v1-wrong-prefix", []byte("PROXZ TCP4"), errNoProxyHeader},
		{"v2-wrong-signature", []byte("\r\n\r\nX"), errNoProxyHeader},
		{"v1-too-long", append([]byte("PROXY TCP4 "), bytes.Repeat([]byte("1"), 120)...), errProxyInvalid},
		{"v1-bad-protocol", []byte("PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n"), errProxyInvalid},
		{"v1-missing-field", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n"), errProxyInvalid},
		{"v1-double-space", []byte("PROXY TCP4 192.0.2.7  198.51.100.1 1 2\r\n"), errProxyInvalid},
		{"v1-family-mismatch", []byte("PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n"), errProxyInvalid},
		{"v1-bad-address", []byte("PROXY TCP4 192.0.2.999 198.51.100.1 1 2\r\n"), errProxyInvalid},
		{"v1-port-too-big", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 65536 2\r\n"), errProxyInvalid},
		{"v1-port-leading-zero", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 01 2\r\n"), errProxyInvalid},
		{"v1-port-sign", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 +1 2\r\n"), errProxyInvalid},
		{"v1-zone", []byte("PROXY TCP6 fe80::1%eth0 2001:db8::1 1 2\r\n"), errProxyInvalid},
		{"v2-version-1", v2(0x11, 0x11, make([]byte, 12)), errProxyInvalid},
		{"v2-command-2", v2(0x22, 0x11, make([]byte, 12)), errProxyInvalid},
		{"v2-family-4", v2(0x21, 0x41, make([]byte, 12)), errProxyInvalid},
		{"v2-protocol-3", v2(0x21, 0x13, make([]byte, 12)), errProxyInvalid},
		{"v2-datagram", v2(0x21, 0x12, make([]byte, 12)), errProxyInvalid},
		{"v2-short-ipv4", v2(0x21, 0x11, make([]byte, 11)), errProxyInvalid},
		{"v2-short-ipv6", v2(0x21, 0x21, make([]byte, 35)), errProxyInvalid},
		{"v2-too-long", v2(0x21, 0x11, make([]byte, proxyMaxLen)), errProxyInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseProxyHeader(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("parse %q: error %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

// chunkConn is a net.Conn whose reads return data in chunks of a fixed
// size, to drive readProxyHeader across short reads.
type chunkConn struct {
	net.Conn
	data  []byte
	chunk int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.chunk)], c.data)
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkConn) SetReadDeadline(time.Time) error { return nil }

func TestReadProxyHeader_KeepsClientBytes(t *testing.T) {
	client := bytes.Repeat([]byte{0x10, 0x02, 0x00, 0x00}, 200)
	for _, header := range [][]byte{proxyV1(client4, server4), proxyV2(client6, server6, make([]byte, 600))} {
		for _, chunk := range []int{1, 7, 300, 5000} {
			t.Run(fmt.Sprintf("v%d-chunk-%d", header[0]%2+1, chunk), func(t *testing.T) {
				in := append(append([]byte(nil), header...), client...)
				c := &chunkConn{data: in, chunk: chunk}
				h, rest, err := readProxyHeader(c, time.Time{})
				if err != nil {
					t.Fatalf("readProxyHeader: %v", err)
				}
				if h.local {
					t.Fatal("header parsed as local")
				}
				stream, err := io.ReadAll(withPrefix(c, rest))
				if err != nil {
					t.Fatalf("read stream: %v", err)
				}
				if !bytes.Equal(stream, client) {
					t.Fatalf("stream after header is %d bytes, want the %d client bytes", len(stream), len(client))
				}
			})
		}
	}
}

func TestReadProxyHeader_EarlyEOF(t *testing.T) {
	c := &chunkConn{data: []byte("PROXY TCP4 192.0.2.7"), chunk: 4}
	if _, _, err := readProxyHeader(c, time.Time{}); !errors.Is(err, io.EOF) {
		t.Fatalf("readProxyHeader of a cut header: %v, want io.EOF", err)
	}
}

// proxyListener listens with PROXY protocol on, trusting trusted.
func proxyListener(t *testing.T, trusted []string, deny []string) *Listener {
	t.Helper()
	return startListener(t, Config{
		URL:                "tcp://127.0.0.1:0",
		ProxyProtocol:      true,
		TrustedProxies:     trusted,
		Deny:               deny,
		ProxyHeaderTimeout: 500 * time.Millisecond,
	})
}

func TestListener_ProxyProtocol(t *testing.T) {
	connect := []byte{0x10, 0x02, 0x00, 0x00}
	for _, tc := range []struct {
		name   string
		header []byte
		want   string // expected RemoteAddr; empty: the socket's peer
	}{
		{"v1-tcp4", proxyV1(client4, server4), client4.String()},
		{"v1-tcp6", proxyV1(client6, server6), client6.String()},
		{"v2-tcp4", proxyV2(client4, server4, nil), client4.String()},
		{"v2-tcp6", proxyV2(client6, server6, []byte{0x04, 0x00, 0x00}), client6.String()},
		{"v2-local", proxyV2(netip.AddrPort{}, netip.AddrPort{}, nil), ""},
		{"v1-unknown", []byte("PROXY UNKNOWN\r\n"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := proxyListener(t, []string{"127.0.0.0/8"}, nil)
			nc := dialTCP(t, l)
			// The header and the first client bytes in one write, as
			// proxies send them.
			if _, err := nc.Write(append(append([]byte(nil), tc.header...), connect...)); err != nil {
				t.Fatalf("write: %v", err)
			}
			c := acceptConn(t, l)

			want, wantProxy := tc.want, nc.LocalAddr().String()
			if want == "" {
				want, wantProxy = nc.LocalAddr().String(), ""
			}
			if got := c.RemoteAddr().String(); got != want {
				t.Errorf("RemoteAddr = %s, want %s", got, want)
			}
			gotProxy := ""
			if c.ProxyAddr() != nil {
				gotProxy = c.ProxyAddr().String()
			}
			if gotProxy != wantProxy {
				t.Errorf("ProxyAddr = %q, want %q", gotProxy, wantProxy)
			}

			got := make([]byte, len(connect))
			c.SetReadDeadline(time.Now().Add(waitTimeout))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, connect) {
				t.Fatalf("read after header = %x, %v; want %x", got, err, connect)
			}
		})
	}
}

func TestListener_ProxyProtocolRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		deny    []string
		send    []byte // nil: send nothing
		reason  Reason
	}{
		{"untrusted-with-v1", []string{"10.0.0.0/8"}, nil, proxyV1(client4, server4), ReasonProxy},
		{"untrusted-with-v2", []string{"10.0.0.0/8"}, nil, proxyV2(client4, server4, nil), ReasonProxy},
		{"trusted-without-header", []string{"127.0.0.1"}, nil, []byte{0x10, 0x02, 0x00, 0x00}, ReasonProxy},
		{"trusted-malformed", []string{"127.0.0.1"}, nil, []byte("PROXY TCP4 nonsense\r\n"), ReasonProxy},
		{"trusted-silent", []string{"127.0.0.1"}, nil, nil, ReasonProxy},
		{"untrusted-silent", []string{"10.0.0.0/8"}, nil, nil, ReasonProxy},
		{"denied-client", []string{"127.0.0.1"}, []string{"192.0.2.0/24"}, proxyV1(client4, server4), ReasonDeny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := proxyListener(t, tc.trusted, tc.deny)
			nc := dialTCP(t, l)
			if tc.send != nil {
				if _, err := nc.Write(tc.send); err != nil {
					t.Fatalf("write: %v", err)
				}
			}
			waitRejected(t, l, tc.reason, 1)
			expectClosed(t, nc)
			if s := l.Stats(); s.Current != 0 || s.Accepted != 0 {
				t.Fatalf("Stats = %+v, want nothing accepted", s)
			}
		})
	}
}

func TestListener_ProxyProtocolDirectClient(t *testing.T) {
	l := proxyListener(t, []string{"10.0.0.0/8"}, nil)
	nc := dialTCP(t, l)
	connect := []byte{0x10, 0x02, 0x00, 0x00}
	if _, err := nc.Write(connect); err != nil {
		t.Fatalf("write: %v", err)
	}
	c := acceptConn(t, l)
	if c.RemoteAddr().String() != nc.LocalAddr().String() || c.ProxyAddr() != nil {
		t.Fatalf("RemoteAddr = %s, ProxyAddr = %v; want %s and nil", c.RemoteAddr(), c.ProxyAddr(), nc.LocalAddr())
	}
	got := make([]byte, len(connect))
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, connect) {
		t.Fatalf("read = %x, %v; want %x", got, err, connect)
	}
}

func TestListener_ProxyProtocolWithTLS(t *testing.T) {
	pki := newTestPKI(t)
	l := startListener(t, Config{
		URL:            "wss://127.0.0.1:0",
		TLS:            pki.serverOptions(0),
		ProxyProtocol:  true,
		TrustedProxies: []string{"127.0.0.1"},
	})
	d := websocketDialerVia(func(nc net.Conn) error {
		_, err := nc.Write(proxyV2(client6, server6, nil))
		return err
	}, pki.clientConfig(nil))
	ws, resp, err := d.Dial("wss://"+l.Addr().String()+"/mqtt", nil)
	if err != nil {
		t.Fatalf("wss dial through PROXY header: %v", err)
	}
	resp.Body.Close()
	defer ws.Close()
	c := acceptConn(t, l)
	if got := c.RemoteAddr().String(); got != client6.String() {
		t.Fatalf("RemoteAddr = %s, want %s", got, client6)
	}
}

// FuzzParseProxyHeader checks that no input panics the parser, that a
// parsed header lies within the input, and that parsing is stable: the
// header alone parses to the same result.
func FuzzParseProxyHeader(f *testing.F) {
	f.Add(proxyV1(client4, server4))
	f.Add(proxyV1(client6, server6))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(proxyV2(client4, server4, nil))
	f.Add(proxyV2(client6, server6, []byte{0x01, 0x00, 0x02, 'h', '2'}))
	f.Add(proxyV2(netip.AddrPort{}, netip.AddrPort{}, nil))
	f.Add([]byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T'})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, n, err := parseProxyHeader(in)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with length %d", err, n)
			}
			return
		}
		if n <= 0 || n > len(in) || n > proxyMaxLen {
			t.Fatalf("length %d for input of %d bytes", n, len(in))
		}
		again, n2, err := parseProxyHeader(in[:n])
		if err != nil || n2 != n || again != h {
			t.Fatalf("header alone parses to %+v, %d, %v; want %+v, %d", again, n2, err, h, n)
		}
		if !h.local && (!h.src.IsValid() || !h.dst.IsValid()) {
			t.Fatalf("non-local header without addresses: %+v", h)
		}
	})
}

// FuzzReadProxyHeader checks that reading a header in chunks of any size
// loses no byte of the stream behind it.
func FuzzReadProxyHeader(f *testing.F) {
	f.Add(proxyV1(client4, server4), []byte{0x10, 0x00}, uint8(1))
	f.Add(proxyV2(client6, server6, nil), []byte("rest"), uint8(13))
	f.Add([]byte("PROXY UNKNOWN\r\n"), []byte{}, uint8(200))
	f.Fuzz(func(t *testing.T, header, tail []byte, chunk uint8) {
		in := append(append([]byte(nil), header...), tail...)
		c := &chunkConn{data: in, chunk: int(chunk)%64 + 1}
		_, rest, err := readProxyHeader(c, time.Time{})
		if err != nil {
			return
		}
		_, n, perr := parseProxyHeader(in)
		if perr != nil {
			t.Fatalf("readProxyHeader succeeded where parseProxyHeader fails: %v", perr)
		}
		stream, _ := io.ReadAll(withPrefix(c, rest))
		if !bytes.Equal(stream, in[n:]) {
			t.Fatalf("stream after header = %q, want %q", stream, in[n:])
		}
	})
}
