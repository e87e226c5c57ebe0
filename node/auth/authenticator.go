package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Method names how an Identity was authenticated.
type Method string

// Authentication methods.
const (
	MethodPassword    Method = "password"
	MethodCertificate Method = "certificate"
	MethodAnonymous   Method = "anonymous"
	MethodScram       Method = "scram-sha-256"
)

// Request is the set of credentials a client presented at CONNECT. The
// node fills it and keeps ownership of Password. Authenticate neither keeps
// nor logs the password, so the node may zero it afterwards.
type Request struct {
	ClientID string
	Username string
	Password []byte

	// CertChain is the client's verified certificate chain, leaf first, as
	// crypto/tls returns in ConnectionState.VerifiedChains[0]. The TLS
	// layer has already checked it against the client CA; this package
	// only reads names from the leaf.
	CertChain []*x509.Certificate

	// Listener is the name of the listener the client connected to.
	Listener string
}

// Identity is an authenticated client: who it is and what it belongs to.
// The Authorizer turns it into a Policy.
type Identity struct {
	// Username is the user name the rules see as %u: the stored user's
	// name, or the name taken from a certificate. Empty for an anonymous
	// client.
	Username string

	Groups []string
	Roles  []string

	// Rules are the user's own ACL rules, copied from the User record at
	// authentication. Changes to them apply at the next connect.
	Rules []Rule

	Method Method

	// Version is the user record's Version at authentication, zero when no
	// record was involved.
	Version uint64

	// Expires is when the credentials stop being valid: for a JWT, its
	// "exp" plus the leeway. Zero means they do not expire. The node denies
	// every request of a connection whose identity has expired.
	Expires time.Time
}

// identityOf returns the identity of a stored user.
func identityOf(u User, m Method) Identity {
	return Identity{
		Username: u.Name,
		Groups:   slices.Clone(u.Groups),
		Roles:    slices.Clone(u.Roles),
		Rules:    slices.Clone(u.Rules),
		Method:   m,
		Version:  u.Version,
	}
}

// IdentityOfUser returns the identity of a user authenticated by other
// means, such as a ScramServer.
func IdentityOfUser(u User, m Method) Identity {
	return identityOf(u, m)
}

// Authenticator checks one kind of credential. Authenticate returns the
// identity or an error. An error wrapping ErrBadCredentials or
// ErrNotAuthorized rejects the client, and ErrNoMatch lets the next
// Authenticator of a Chain decide. Any other error is a failure of the
// authenticator itself, for which the node sends 0x80, or 0x89 for ErrBusy.
// Authenticate may block on ctx. Implementations must be safe for
// concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context, req Request) (Identity, error)
}

// Chain calls its authenticators in order until one returns something other
// than ErrNoMatch. If all return ErrNoMatch, the client is rejected with
// ErrNotAuthorized. A Chain is configured per listener, for example
// certificate then password on a TLS listener. An empty Chain rejects
// everyone.
type Chain []Authenticator

// Authenticate implements Authenticator.
func (c Chain) Authenticate(ctx context.Context, req Request) (Identity, error) {
	for _, a := range c {
		id, err := a.Authenticate(ctx, req)
		if !errors.Is(err, ErrNoMatch) {
			return id, err
		}
	}
	return Identity{}, fmt.Errorf("listener %q: no authenticator accepts the client: %w", req.Listener, ErrNotAuthorized)
}

// Listeners maps listener names to their chains and dispatches on
// Request.Listener. A request for a listener with no chain is rejected with
// ErrNotAuthorized, so a listener someone forgot to configure is closed,
// not open.
type Listeners map[string]Chain

// Authenticate implements Authenticator.
func (l Listeners) Authenticate(ctx context.Context, req Request) (Identity, error) {
	chain, ok := l[req.Listener]
	if !ok {
		return Identity{}, fmt.Errorf("listener %q has no authentication configured: %w", req.Listener, ErrNotAuthorized)
	}
	return chain.Authenticate(ctx, req)
}

// AnonymousByDefault reports whether a listener admits anonymous clients
// when its configuration leaves it unset. Only a listener bound to loopback
// does. Any other listener requires authentication unless the operator
// adds an Anonymous authenticator to its chain.
func AnonymousByDefault(loopbackOnly bool) bool {
	return loopbackOnly
}

// Anonymous admits a client that presents no user name, no password and
// no certificate, as an identity with no user name and the configured
// groups and roles. Other clients get ErrNoMatch. Put it last in a Chain,
// and only on a listener whose operator allows anonymous clients.
type Anonymous struct {
	Groups []string
	Roles  []string
}

// Authenticate implements Authenticator.
func (a Anonymous) Authenticate(_ context.Context, req Request) (Identity, error) {
	if req.Username != "" || len(req.Password) > 0 || len(req.CertChain) > 0 {
		return Identity{}, ErrNoMatch
	}
	return Identity{Groups: slices.Clone(a.Groups), Roles: slices.Clone(a.Roles), Method: MethodAnonymous}, nil
}
