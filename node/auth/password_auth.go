package auth

import (
	"context"
	"errors"
	"fmt"
)

// PasswordAuthenticator checks a user name and password against a Store
// through a Verifier. A request without a user name gets ErrNoMatch. An
// unknown user, a disabled user, a user without a password and a wrong
// password all get ErrBadCredentials, and all but the disabled user cost a
// full hash computation, so response times do not reveal which users exist.
type PasswordAuthenticator struct {
	Store    Store
	Verifier *Verifier
}

// Authenticate implements Authenticator. It blocks on the Store and on the
// Verifier's queue, honouring ctx, and returns ErrBusy when the queue is
// full.
func (a *PasswordAuthenticator) Authenticate(ctx context.Context, req Request) (Identity, error) {
	if req.Username == "" {
		return Identity{}, ErrNoMatch
	}
	user, err := a.Store.User(ctx, req.Username)
	switch {
	case errors.Is(err, ErrNotFound):
		return Identity{}, a.reject(ctx, req, "unknown user")
	case err != nil:
		return Identity{}, fmt.Errorf("authenticate %q: %w", req.Username, err)
	case user.Disabled:
		return Identity{}, fmt.Errorf("authenticate %q: user disabled: %w", req.Username, ErrBadCredentials)
	case user.Credentials.Kind == "":
		return Identity{}, a.reject(ctx, req, "user has no password")
	}

	ok, err := a.Verifier.Verify(ctx, user, req.Password)
	if err != nil {
		return Identity{}, fmt.Errorf("authenticate %q: %w", req.Username, err)
	}
	if !ok {
		return Identity{}, fmt.Errorf("authenticate %q: wrong password: %w", req.Username, ErrBadCredentials)
	}
	return identityOf(user, MethodPassword), nil
}

// reject spends one verification on a decoy credential, so that an unknown
// user takes as long as a wrong password, and returns ErrBadCredentials. A
// full queue still returns ErrBusy, as it would for a known user.
func (a *PasswordAuthenticator) reject(ctx context.Context, req Request, reason string) error {
	if _, err := a.Verifier.verifyDecoy(ctx, req.Password); err != nil {
		return fmt.Errorf("authenticate %q: %w", req.Username, err)
	}
	return fmt.Errorf("authenticate %q: %s: %w", req.Username, reason, ErrBadCredentials)
}
