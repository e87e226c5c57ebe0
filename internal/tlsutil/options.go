package tlsutil

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultReloadInterval is how often a Reloader rereads its files when the
// options leave ReloadInterval at zero.
const DefaultReloadInterval = 5 * time.Second

// ClientAuth selects whether a server requests client certificates.
type ClientAuth int

const (
	// ClientAuthNone requests no client certificate.
	ClientAuthNone ClientAuth = iota
	// ClientAuthOptional requests a certificate and verifies it when the
	// client sends one. A client without a certificate still connects.
	ClientAuthOptional
	// ClientAuthRequired rejects clients that send no valid certificate.
	ClientAuthRequired
)

// ParseClientAuth parses "none", "optional" or "required"; an empty string
// means "none".
func ParseClientAuth(s string) (ClientAuth, error) {
	switch s {
	case "", "none":
		return ClientAuthNone, nil
	case "optional":
		return ClientAuthOptional, nil
	case "required":
		return ClientAuthRequired, nil
	}
	return 0, fmt.Errorf("tlsutil: client auth %q is invalid: use none, optional or required", s)
}

// String returns the name that ParseClientAuth accepts.
func (a ClientAuth) String() string {
	switch a {
	case ClientAuthNone:
		return "none"
	case ClientAuthOptional:
		return "optional"
	case ClientAuthRequired:
		return "required"
	}
	return fmt.Sprintf("ClientAuth(%d)", int(a))
}

// ServerOptions configure ServerConfig. The files are read by ServerConfig
// and again on every reload. Every other field is fixed for the life of the
// returned Config.
type ServerOptions struct {
	// CertFile and KeyFile are the PEM certificate (leaf first, then any
	// intermediates) and private key the server presents. Required.
	CertFile string
	KeyFile  string

	// ClientAuth selects whether clients must present a certificate.
	// Zero is ClientAuthNone.
	ClientAuth ClientAuth

	// ClientCAFile is a PEM bundle of the CAs that client certificates
	// must chain to. Required unless ClientAuth is ClientAuthNone.
	ClientCAFile string

	// CRLFiles are certificate revocation lists, PEM or DER, each signed by
	// a CA in ClientCAFile. A client certificate listed in any of them is
	// rejected. Optional.
	CRLFiles []string

	// NextProtos is the ALPN list the server offers, in order of
	// preference: "h2" for the peer port, "http/1.1" for a wss listener.
	// Nil offers none.
	NextProtos []string

	// VerifyIdentity, if not nil, is called with the verified client leaf
	// certificate after the chain and revocation checks; an error rejects
	// the handshake. The peer port uses it to require a node name
	// (VerifyPeerName). It is called concurrently from many handshakes.
	VerifyIdentity func(leaf *x509.Certificate) error

	// ReloadInterval is how often the files are polled for changes. Zero
	// means DefaultReloadInterval; a negative value disables polling, so
	// only Reloader.Reload rereads them.
	ReloadInterval time.Duration

	// Logger receives reload results. Nil means slog.Default().
	Logger *slog.Logger
}

func (o ServerOptions) validate() error {
	var errs []error
	if o.CertFile == "" {
		errs = append(errs, errors.New("tlsutil: ServerOptions.CertFile is empty: set the PEM certificate file"))
	}
	if o.KeyFile == "" {
		errs = append(errs, errors.New("tlsutil: ServerOptions.KeyFile is empty: set the PEM private key file"))
	}
	switch o.ClientAuth {
	case ClientAuthNone:
	case ClientAuthOptional, ClientAuthRequired:
		if o.ClientCAFile == "" {
			errs = append(errs, fmt.Errorf("tlsutil: ServerOptions.ClientCAFile is empty but client auth is %s: set the CA bundle that client certificates chain to", o.ClientAuth))
		}
	default:
		errs = append(errs, fmt.Errorf("tlsutil: ServerOptions.ClientAuth %d is invalid: use ClientAuthNone, ClientAuthOptional or ClientAuthRequired", int(o.ClientAuth)))
	}
	if len(o.CRLFiles) > 0 && o.ClientAuth == ClientAuthNone {
		errs = append(errs, errors.New("tlsutil: ServerOptions.CRLFiles is set but client auth is none: enable client auth or remove the CRLs"))
	}
	return errors.Join(errs...)
}

// ClientOptions configure ClientConfig, the dialing side of the peer port.
// As with ServerOptions, only the files change after ClientConfig returns.
type ClientOptions struct {
	// CertFile and KeyFile are the PEM certificate and private key this
	// node presents to the peer it dials. Required: the peer port is mutual
	// TLS.
	CertFile string
	KeyFile  string

	// CAFile is the PEM bundle of the peer CA that the server's certificate
	// must chain to. Required.
	CAFile string

	// CRLFiles are revocation lists signed by a CA in CAFile. Optional.
	CRLFiles []string

	// ServerName is the node name the server's certificate must carry (see
	// VerifyPeerName). When empty, the tls.Config.ServerName in effect at
	// the handshake is used instead, so one Config can dial many nodes by
	// cloning it and setting ServerName per peer. A handshake with neither
	// fails.
	ServerName string

	// NextProtos is the ALPN list offered, for example "h2" for gRPC.
	NextProtos []string

	// ReloadInterval and Logger mean what they mean in ServerOptions.
	ReloadInterval time.Duration
	Logger         *slog.Logger
}

func (o ClientOptions) validate() error {
	var errs []error
	if o.CertFile == "" {
		errs = append(errs, errors.New("tlsutil: ClientOptions.CertFile is empty: set this node's peer certificate"))
	}
	if o.KeyFile == "" {
		errs = append(errs, errors.New("tlsutil: ClientOptions.KeyFile is empty: set this node's peer private key"))
	}
	if o.CAFile == "" {
		errs = append(errs, errors.New("tlsutil: ClientOptions.CAFile is empty: set the peer CA bundle"))
	}
	return errors.Join(errs...)
}

func reloadInterval(d time.Duration) time.Duration {
	if d == 0 {
		return DefaultReloadInterval
	}
	return d
}

func loggerOrDefault(l *slog.Logger) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	return l.With("component", "tls")
}
