package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"time"

	"github.com/starling-mqtt/starling/internal/tlsutil"
)

// Transport names, as Conn.Transport returns them and as listener URLs spell
// their schemes.
const (
	TransportTCP = "tcp"
	TransportTLS = "tls"
	TransportWS  = "ws"
	TransportWSS = "wss"
)

// Defaults for the zero values of Config.
const (
	// DefaultMaxConnections bounds the open connections of one listener. At
	// a few kilobytes per idle MQTT connection, this is an estimated few
	// hundred megabytes. Raise it for large fleets.
	DefaultMaxConnections = 100_000

	// DefaultMaxConnRate is the sustained rate of new connections per
	// second, and DefaultMaxConnBurst the bucket size. They let a whole fleet
	// reconnect after a restart within minutes while stopping a connection
	// flood from eating the CPU that TLS handshakes cost.
	DefaultMaxConnRate  = 1000.0
	DefaultMaxConnBurst = 2000

	// DefaultProxyHeaderTimeout bounds the wait for a PROXY protocol header.
	// A proxy sends it at once, so only a broken or hostile peer waits.
	DefaultProxyHeaderTimeout = 5 * time.Second

	// DefaultTLSHandshakeTimeout and DefaultWSHandshakeTimeout bound the TLS
	// handshake and the HTTP upgrade request. They leave room for slow
	// mobile links without letting idle sockets hold a slot for long.
	DefaultTLSHandshakeTimeout = 10 * time.Second
	DefaultWSHandshakeTimeout  = 10 * time.Second

	// DefaultWSPath is the HTTP path of a ws or wss listener whose URL has
	// none.
	DefaultWSPath = "/mqtt"

	// DefaultWSMaxMessageSize is 1 MiB of MQTT packet plus the largest fixed
	// header (5 bytes), matching the node's default maximum packet size.
	DefaultWSMaxMessageSize = 1<<20 + 5
)

// Config configures one client listener. The zero value of each field
// except URL means its default, and Validate fills the defaults in. No
// field is reloadable: close the Listener and listen again to change one.
// The TLS files are reloaded by tlsutil on their own.
type Config struct {
	// Name labels the listener in logs and metrics, and is returned by
	// Conn.Listener. Default: the URL.
	Name string

	// URL is the bind address and transport: tcp://HOST:PORT,
	// tls://HOST:PORT, ws://HOST:PORT/PATH or wss://HOST:PORT/PATH. The path
	// of ws and wss defaults to DefaultWSPath, and tcp and tls take none. An
	// empty HOST binds every interface, and port 0 picks a free port.
	// Required.
	URL string

	// TLS holds the certificate, client-auth mode, CAs and CRLs of a tls or
	// wss listener. Required for tls and wss, rejected for tcp and ws. For
	// wss, an empty NextProtos offers ALPN "http/1.1".
	TLS *tlsutil.ServerOptions

	// Allow and Deny list client addresses as CIDR ranges ("10.0.0.0/8",
	// "2001:db8::/32") or single addresses. A client in Deny is rejected, and
	// so is a client outside Allow when Allow is not empty. Behind a PROXY
	// protocol proxy they apply to the client address from the header.
	Allow []string
	Deny  []string

	// ProxyProtocol makes the listener expect a PROXY protocol header
	// (version 1 or 2) from every connection that comes from TrustedProxies,
	// and reject such a connection without one. A connection from any other
	// address is a direct client, and it is rejected if it starts with a
	// header. A direct client must send its first bytes within
	// ProxyHeaderTimeout, because the listener reads them to distinguish a
	// header from MQTT, TLS or HTTP data.
	ProxyProtocol bool

	// TrustedProxies are the CIDR ranges or addresses of the proxies whose
	// PROXY headers are believed. Required when ProxyProtocol is on, and
	// rejected when it is off.
	TrustedProxies []string

	// MaxConnections bounds the connections of this listener that are open
	// at once, counting those still in a handshake. Beyond it a new
	// connection is closed at once. Default: DefaultMaxConnections.
	MaxConnections int

	// MaxConnRate is the rate, in connections per second, at which the
	// listener takes new connections, and MaxConnBurst the number it takes
	// at once after a quiet period (a token bucket). A connection beyond them
	// is closed at once. Defaults: DefaultMaxConnRate and
	// DefaultMaxConnBurst when the rate is zero too, else twice the rate.
	MaxConnRate  float64
	MaxConnBurst int

	// ProxyHeaderTimeout, TLSHandshakeTimeout and WSHandshakeTimeout bound
	// the PROXY header read, the TLS handshake and the WebSocket upgrade of
	// one connection. Defaults: DefaultProxyHeaderTimeout,
	// DefaultTLSHandshakeTimeout and DefaultWSHandshakeTimeout.
	ProxyHeaderTimeout  time.Duration
	TLSHandshakeTimeout time.Duration
	WSHandshakeTimeout  time.Duration

	// WSMaxMessageSize is the largest WebSocket message accepted, in bytes.
	// A larger one closes the connection (WebSocket close code 1009). It
	// should be at least the node's maximum packet size plus 5 bytes of
	// fixed header. Default: DefaultWSMaxMessageSize.
	WSMaxMessageSize int64

	// Logger receives accept errors, and limit warnings at most once per
	// 10 s per reason. Rejected connections log at Debug. Default:
	// slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the configuration of a plain TCP listener on the
// loopback MQTT port, with every default filled in.
func DefaultConfig() Config {
	cfg := Config{URL: "tcp://127.0.0.1:1883"}
	cfg.setDefaults()
	return cfg
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = c.URL
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.MaxConnBurst == 0 {
		if c.MaxConnRate == 0 {
			c.MaxConnBurst = DefaultMaxConnBurst
		} else {
			c.MaxConnBurst = int(math.Min(math.Max(2*c.MaxConnRate, 1), math.MaxInt32))
		}
	}
	if c.MaxConnRate == 0 {
		c.MaxConnRate = DefaultMaxConnRate
	}
	if c.ProxyHeaderTimeout == 0 {
		c.ProxyHeaderTimeout = DefaultProxyHeaderTimeout
	}
	if c.TLSHandshakeTimeout == 0 {
		c.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if c.WSHandshakeTimeout == 0 {
		c.WSHandshakeTimeout = DefaultWSHandshakeTimeout
	}
	if c.WSMaxMessageSize == 0 {
		c.WSMaxMessageSize = DefaultWSMaxMessageSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate fills in the defaults and checks every field. The error names
// each invalid field and the accepted values.
func (c *Config) Validate() error {
	c.setDefaults()
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("transport: "+format, args...))
	}

	ep, err := parseURL(c.URL)
	if err != nil {
		errs = append(errs, err)
	}
	if err == nil {
		secure := ep.transport == TransportTLS || ep.transport == TransportWSS
		if secure && c.TLS == nil {
			add("Config.TLS is nil but %s needs a certificate: set the TLS options", ep.transport)
		}
		if !secure && c.TLS != nil {
			add("Config.TLS is set but %s does not use TLS: use a tls:// or wss:// URL, or remove the TLS options", ep.transport)
		}
	}

	if _, err := parsePrefixes("Allow", c.Allow); err != nil {
		errs = append(errs, err)
	}
	if _, err := parsePrefixes("Deny", c.Deny); err != nil {
		errs = append(errs, err)
	}
	if _, err := parsePrefixes("TrustedProxies", c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.ProxyProtocol && len(c.TrustedProxies) == 0 {
		add("Config.TrustedProxies is empty but ProxyProtocol is on: list the addresses of your proxies")
	}
	if !c.ProxyProtocol && len(c.TrustedProxies) > 0 {
		add("Config.TrustedProxies is set but ProxyProtocol is off: turn ProxyProtocol on or remove TrustedProxies")
	}

	if c.MaxConnections < 0 {
		add("Config.MaxConnections %d is negative: use a positive count, or 0 for %d", c.MaxConnections, DefaultMaxConnections)
	}
	if c.MaxConnRate < 0 || math.IsNaN(c.MaxConnRate) || math.IsInf(c.MaxConnRate, 0) {
		add("Config.MaxConnRate %v is invalid: use a positive rate per second, or 0 for %v", c.MaxConnRate, DefaultMaxConnRate)
	}
	if c.MaxConnBurst < 0 {
		add("Config.MaxConnBurst %d is negative: use a positive count, or 0 for the default", c.MaxConnBurst)
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"ProxyHeaderTimeout", c.ProxyHeaderTimeout},
		{"TLSHandshakeTimeout", c.TLSHandshakeTimeout},
		{"WSHandshakeTimeout", c.WSHandshakeTimeout},
	} {
		if d.value < 0 {
			add("Config.%s %v is negative: use a positive duration, or 0 for the default", d.name, d.value)
		}
	}
	if c.WSMaxMessageSize < 0 {
		add("Config.WSMaxMessageSize %d is negative: use a positive size in bytes, or 0 for %d", c.WSMaxMessageSize, DefaultWSMaxMessageSize)
	}
	return errors.Join(errs...)
}

// endpoint is a parsed listener URL.
type endpoint struct {
	transport string
	address   string // HOST:PORT for net.Listen
	path      string // HTTP path of ws and wss, empty for tcp and tls
}

// parseURL parses and checks a listener URL.
func parseURL(raw string) (endpoint, error) {
	if raw == "" {
		return endpoint{}, errors.New("transport: Config.URL is empty: use tcp://HOST:PORT, tls://HOST:PORT, ws://HOST:PORT/PATH or wss://HOST:PORT/PATH")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("transport: Config.URL %q is invalid: %w", raw, err)
	}

	ep := endpoint{transport: u.Scheme, address: u.Host}
	switch u.Scheme {
	case TransportTCP, TransportTLS:
		if u.Path != "" && u.Path != "/" {
			return endpoint{}, fmt.Errorf("transport: Config.URL %q has a path but %s takes none: use %s://HOST:PORT", raw, u.Scheme, u.Scheme)
		}
	case TransportWS, TransportWSS:
		ep.path = u.Path
		if ep.path == "" {
			ep.path = DefaultWSPath
		}
	default:
		return endpoint{}, fmt.Errorf("transport: Config.URL %q has scheme %q: use tcp, tls, ws or wss", raw, u.Scheme)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return endpoint{}, fmt.Errorf("transport: Config.URL %q has user info, a query or a fragment: remove them", raw)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return endpoint{}, fmt.Errorf("transport: Config.URL %q has no port: use %s://HOST:PORT", raw, u.Scheme)
	}
	return ep, nil
}
