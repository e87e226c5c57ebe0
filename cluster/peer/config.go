package peer

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Defaults of the zero fields of Config.
const (
	// DefaultHandshakeTimeout bounds the TLS handshake, the first byte and
	// the hand-off to Raft or gRPC of each inbound connection.
	DefaultHandshakeTimeout = 10 * time.Second

	// DefaultMaxPendingConns is the number of inbound connections that may
	// be in the handshake at once.
	DefaultMaxPendingConns = 256

	// DefaultMaxMsgSize is the largest gRPC message sent or received, in
	// bytes. It is grpc-go's own default receive limit.
	DefaultMaxMsgSize = 4 << 20
)

// Config configures Listen. The port reads it once: no field is reloadable
// except the contents of the TLS files, which are reread when they change.
type Config struct {
	// Bind is the host:port to listen on, for example 127.0.0.1:7947 or
	// 0.0.0.0:7947. Port 0 picks a free port. Required.
	Bind string

	// Advertise is the host:port that other nodes dial to reach this port.
	// Raft sends it to followers as the leader's address, through
	// RaftLayer().Addr(). Port 0 means the bound port, for a Bind with port
	// 0. Empty means the bound address, which Listen rejects when Bind is an
	// unspecified address such as 0.0.0.0.
	Advertise string

	// NodeName is this node's name. With TLS, the node certificate must
	// name it (see VerifyPeerName in internal/tlsutil). Required.
	NodeName string

	// TLS holds the peer CA, the node certificate and the node key. Nil
	// runs the port in plaintext, which Listen allows only on a loopback
	// address unless Insecure is set.
	TLS *TLSFiles

	// Insecure allows plaintext on a non-loopback address. Listen logs a
	// warning on every start while it is set and TLS is nil.
	Insecure bool

	// HandshakeTimeout bounds, per inbound connection, the TLS handshake,
	// the wait for the first byte and the wait for Raft or gRPC to accept
	// the connection. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// MaxPendingConns caps the inbound connections in that phase at once.
	// Further connections are closed on accept. Zero means
	// DefaultMaxPendingConns.
	MaxPendingConns int

	// MaxMsgSize is the largest gRPC message, in bytes, that the server and
	// clients send or receive. Zero means DefaultMaxMsgSize.
	MaxMsgSize int

	// ReloadInterval is how often the TLS files are polled for changes.
	// Zero means tlsutil.DefaultReloadInterval. A negative value disables
	// polling, so only ReloadTLS rereads them.
	ReloadInterval time.Duration

	// RaftPeerName, if not nil, returns the node name expected at a Raft
	// address, or "" when it is not known. The Raft dialer then requires
	// the server certificate to name that node. With nil, or for an
	// unknown address, any certificate of the peer CA that names a node is
	// accepted. It is called concurrently from Raft's dialing goroutines.
	RaftPeerName func(addr raft.ServerAddress) string

	// Logger receives the port's log lines. Nil means slog.Default().
	Logger *slog.Logger
}

// TLSFiles are the PEM files of the peer port's mutual TLS. Every node of a
// cluster trusts the same peer CA. Keep it apart from the CA of MQTT client
// certificates, because any certificate of the peer CA with a DNS SAN is
// accepted as a node.
type TLSFiles struct {
	// CAFile is the peer CA bundle that every node certificate must chain
	// to, in both directions.
	CAFile string
	// CertFile is this node's certificate (leaf first, then any
	// intermediates); it must name Config.NodeName.
	CertFile string
	// KeyFile is the private key of CertFile.
	KeyFile string
	// CRLFiles are optional revocation lists signed by a CA in CAFile.
	CRLFiles []string
}

// ErrPlaintext is wrapped by Listen's error when it rejects plaintext on a
// non-loopback address.
var ErrPlaintext = errors.New("peer: plaintext peer port on a non-loopback address")

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.MaxPendingConns == 0 {
		c.MaxPendingConns = DefaultMaxPendingConns
	}
	if c.MaxMsgSize == 0 {
		c.MaxMsgSize = DefaultMaxMsgSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks every field and returns one error per invalid field,
// each naming the field. It does not read the TLS files.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Bind); err != nil {
		errs = append(errs, fmt.Errorf("peer: Config.Bind %q is invalid: %w: use host:port, for example 127.0.0.1:7947", c.Bind, err))
	}
	if c.Advertise != "" {
		if err := validateAdvertise(c.Advertise); err != nil {
			errs = append(errs, err)
		}
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("peer: Config.NodeName is empty: set this node's name"))
	}
	if c.TLS != nil {
		if c.TLS.CAFile == "" {
			errs = append(errs, errors.New("peer: Config.TLS.CAFile is empty: set the peer CA bundle"))
		}
		if c.TLS.CertFile == "" {
			errs = append(errs, errors.New("peer: Config.TLS.CertFile is empty: set this node's peer certificate"))
		}
		if c.TLS.KeyFile == "" {
			errs = append(errs, errors.New("peer: Config.TLS.KeyFile is empty: set this node's peer private key"))
		}
	}
	if c.HandshakeTimeout < 0 {
		errs = append(errs, fmt.Errorf("peer: Config.HandshakeTimeout %v is negative: use zero for the default %v", c.HandshakeTimeout, DefaultHandshakeTimeout))
	}
	if c.MaxPendingConns < 0 {
		errs = append(errs, fmt.Errorf("peer: Config.MaxPendingConns %d is negative: use zero for the default %d", c.MaxPendingConns, DefaultMaxPendingConns))
	}
	if c.MaxMsgSize < 0 {
		errs = append(errs, fmt.Errorf("peer: Config.MaxMsgSize %d is negative: use zero for the default %d", c.MaxMsgSize, DefaultMaxMsgSize))
	}
	return errors.Join(errs...)
}

func validateAdvertise(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("peer: Config.Advertise %q is invalid: %w: use host:port", addr, err)
	}
	n, err := strconv.Atoi(port)
	if host == "" || err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("peer: Config.Advertise %q is invalid: give a host and a port from 0 to 65535", addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("peer: Config.Advertise %q is an unspecified address: give an address other nodes can dial", addr)
	}
	return nil
}

// isLoopbackHost reports whether host names only loopback addresses: an IP
// in 127.0.0.0/8 or ::1, or "localhost". It does no DNS lookup, so any other
// host name counts as non-loopback, as does an empty host (all interfaces).
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
