package auth

import (
	"context"
	"errors"
	"fmt"
)

// CertSource selects which name of a client certificate becomes the user
// name.
type CertSource string

// Certificate name sources. For the SAN sources the first entry of that
// type is used.
const (
	CertCommonName CertSource = "cn"        // Subject Common Name
	CertSANDNS     CertSource = "san-dns"   // first DNS name
	CertSANEmail   CertSource = "san-email" // first email address
	CertSANURI     CertSource = "san-uri"   // first URI
)

// CertAuthenticator takes the identity from the client certificate that
// the TLS layer verified. A request without a certificate gets ErrNoMatch.
//
// If the client also sends a user name, it must equal the certificate's
// name, so a device cannot appear under one name in the broker and another
// in its certificate. A password sent alongside is ignored.
type CertAuthenticator struct {
	// Source is the certificate field that becomes the user name. Empty
	// means CertCommonName.
	Source CertSource

	// RequireClientID makes the client id equal the certificate's name, so
	// a device certificate is bound to one session.
	RequireClientID bool

	// Store, if set, supplies groups, roles and rules for a user of the
	// certificate's name. A disabled user is rejected.
	Store Store

	// RequireUser rejects certificates whose name has no user in Store.
	// Without it such a client gets an identity with no groups or roles.
	RequireUser bool
}

// Authenticate implements Authenticator. It blocks only on the Store.
func (a *CertAuthenticator) Authenticate(ctx context.Context, req Request) (Identity, error) {
	if len(req.CertChain) == 0 || req.CertChain[0] == nil {
		return Identity{}, ErrNoMatch
	}
	name, err := a.certName(req)
	if err != nil {
		return Identity{}, err
	}
	if req.Username != "" && req.Username != name {
		return Identity{}, fmt.Errorf("certificate name %q differs from user name %q: %w", name, req.Username, ErrBadCredentials)
	}
	if a.RequireClientID && req.ClientID != name {
		return Identity{}, fmt.Errorf("certificate name %q differs from client id %q: %w", name, req.ClientID, ErrNotAuthorized)
	}

	if a.Store == nil {
		if a.RequireUser {
			return Identity{}, fmt.Errorf("certificate name %q: RequireUser is set but no Store: %w", name, ErrNotAuthorized)
		}
		return Identity{Username: name, Method: MethodCertificate}, nil
	}
	user, err := a.Store.User(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound) && !a.RequireUser:
		return Identity{Username: name, Method: MethodCertificate}, nil
	case errors.Is(err, ErrNotFound):
		return Identity{}, fmt.Errorf("certificate name %q has no user: %w", name, ErrNotAuthorized)
	case err != nil:
		return Identity{}, fmt.Errorf("certificate name %q: %w", name, err)
	case user.Disabled:
		return Identity{}, fmt.Errorf("certificate name %q: user disabled: %w", name, ErrNotAuthorized)
	}
	return identityOf(user, MethodCertificate), nil
}

// certName reads the configured name from the leaf certificate.
func (a *CertAuthenticator) certName(req Request) (string, error) {
	leaf := req.CertChain[0]
	var name string
	switch a.Source {
	case "", CertCommonName:
		name = leaf.Subject.CommonName
	case CertSANDNS:
		if len(leaf.DNSNames) > 0 {
			name = leaf.DNSNames[0]
		}
	case CertSANEmail:
		if len(leaf.EmailAddresses) > 0 {
			name = leaf.EmailAddresses[0]
		}
	case CertSANURI:
		if len(leaf.URIs) > 0 && leaf.URIs[0] != nil {
			name = leaf.URIs[0].String()
		}
	default:
		return "", fmt.Errorf("certificate authenticator: unknown Source %q", a.Source)
	}
	if name == "" {
		return "", fmt.Errorf("client certificate has no %s name: %w", sourceLabel(a.Source), ErrBadCredentials)
	}
	return name, nil
}

func sourceLabel(s CertSource) string {
	if s == "" {
		return string(CertCommonName)
	}
	return string(s)
}
