package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
)

// scramState is the step a ScramServer expects next.
type scramState int

const (
	scramWantClientFirst scramState = iota
	scramWantClientFinal
	scramDone
	scramFailed
)

// scramNonceLen is the number of random bytes in the server nonce, sent as
// base64 (24 characters).
const scramNonceLen = 18

// ScramServer runs the server side of one SCRAM-SHA-256 exchange (RFC 5802
// section 5, RFC 7677): client-first-message in, server-first-message out,
// client-final-message in, server-final-message out. In MQTT 5.0 the first
// client message is the Authentication Data of CONNECT and the others travel
// in AUTH packets.
//
// A ScramServer is used by one connection and is not safe for concurrent
// use. It blocks only in Store lookups.
type ScramServer struct {
	store  Store
	secret []byte // keys the made-up salt of unknown users

	// newNonce returns the server nonce. Tests replace it to replay the
	// RFC 7677 example.
	newNonce func() (string, error)

	state       scramState
	first       clientFirst
	serverFirst string
	nonce       string // c-nonce followed by s-nonce
	user        User
	cred        *ScramCredential
	known       bool // false for an unknown or disabled user, whose exchange must fail
}

// NewScramServer returns a ScramServer that looks users up in store.
// secret keys the salt made up for unknown users, so that a client cannot
// tell an unknown user from a wrong password by the server-first-message.
// It should be random, at least 32 bytes and the same on every node, so the
// made-up salt does not change between connects. A nil secret uses a random
// one for this exchange only, which lets a client that connects twice spot
// an unknown user by the changing salt.
func NewScramServer(store Store, secret []byte) *ScramServer {
	return &ScramServer{store: store, secret: secret, newNonce: randomNonce}
}

func randomNonce() (string, error) {
	b := make([]byte, scramNonceLen)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random nonce: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Step consumes one client message and returns the reply to send. done is
// true after the server-final-message, which carries either the server
// signature ("v=", with a nil error) or an error value ("e=", with an error
// wrapping ErrScram). A Store failure, an unknown or disabled user and a
// wrong proof all end the exchange with ErrScram and "e=invalid-proof", so
// the client learns nothing about which users exist, with one documented
// exception: a user with no SCRAM credential (a bcrypt import) fails at the
// first step with ErrNoScram, so the client can fall back to a password.
func (s *ScramServer) Step(ctx context.Context, msg []byte) (reply []byte, done bool, err error) {
	switch s.state {
	case scramWantClientFirst:
		reply, err = s.handleClientFirst(ctx, string(msg))
		if err != nil {
			s.state = scramFailed
			return nil, true, err
		}
		s.state = scramWantClientFinal
		return reply, false, nil
	case scramWantClientFinal:
		reply, err = s.handleClientFinal(string(msg))
		if err != nil {
			s.state = scramFailed
			return reply, true, err
		}
		s.state = scramDone
		return reply, true, nil
	default:
		return nil, true, scramErrorf("exchange already finished")
	}
}

// User returns the authenticated user record after a successful exchange.
func (s *ScramServer) User() (User, bool) {
	if s.state != scramDone {
		return User{}, false
	}
	return s.user, true
}

// handleClientFirst parses the client-first-message, looks the user up and
// builds the server-first-message.
func (s *ScramServer) handleClientFirst(ctx context.Context, msg string) ([]byte, error) {
	first, err := parseClientFirst(msg)
	if err != nil {
		return nil, err
	}
	s.first = first

	user, err := s.store.User(ctx, first.username)
	switch {
	case err == nil && !user.Disabled && user.SCRAM != nil:
		s.user, s.cred, s.known = user, user.SCRAM, true
	case err == nil && !user.Disabled:
		return nil, fmt.Errorf("SCRAM for user %q: %w", first.username, ErrNoScram)
	case err == nil, errors.Is(err, ErrNotFound):
		// A disabled or unknown user gets a made-up credential and fails
		// at the proof, like a wrong password.
		if s.cred, err = s.madeUpCredential(first.username); err != nil {
			return nil, err
		}
	default:
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("SCRAM look up user: %w", ctxErr)
		}
		return nil, fmt.Errorf("SCRAM look up user: %w", err)
	}

	serverNonce, err := s.newNonce()
	if err != nil {
		return nil, fmt.Errorf("SCRAM: %w", err)
	}
	s.nonce = first.nonce + serverNonce
	s.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", s.nonce, base64.StdEncoding.EncodeToString(s.cred.Salt), s.cred.Iterations)
	return []byte(s.serverFirst), nil
}

// madeUpCredential returns a credential whose salt depends only on the
// secret and the user name, and whose keys match no password.
func (s *ScramServer) madeUpCredential(username string) (*ScramCredential, error) {
	if s.secret == nil {
		s.secret = make([]byte, 32)
		if _, err := rand.Read(s.secret); err != nil {
			return nil, fmt.Errorf("SCRAM: read random secret: %w", err)
		}
	}
	salt := hmacSHA256(s.secret, []byte("scram-salt\x00"+username))[:saltLen]
	return &ScramCredential{
		Salt:       salt,
		Iterations: DefaultScramIterations,
		StoredKey:  make([]byte, sha256.Size),
		ServerKey:  make([]byte, sha256.Size),
	}, nil
}

// handleClientFinal checks the channel binding, nonce and proof and builds
// the server-final-message.
func (s *ScramServer) handleClientFinal(msg string) ([]byte, error) {
	final, err := parseClientFinal(msg)
	if err != nil {
		return []byte("e=other-error"), err
	}
	if final.channelBinding != s.first.gs2Header {
		return []byte("e=channel-bindings-dont-match"), scramErrorf("channel binding differs from the gs2 header")
	}
	if final.nonce != s.nonce {
		return []byte("e=other-error"), scramErrorf("nonce differs from the one the server sent")
	}

	authMessage := s.first.bare + "," + s.serverFirst + "," + final.withoutProof
	clientSignature := hmacSHA256(s.cred.StoredKey, []byte(authMessage))
	if len(final.proof) != len(clientSignature) {
		return []byte("e=invalid-proof"), scramErrorf("proof has %d bytes, want %d", len(final.proof), len(clientSignature))
	}
	clientKey := make([]byte, len(clientSignature))
	subtle.XORBytes(clientKey, final.proof, clientSignature)
	storedKey := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(storedKey[:], s.cred.StoredKey) != 1 || !s.known {
		return []byte("e=invalid-proof"), scramErrorf("invalid proof for user %q", s.first.username)
	}

	serverSignature := hmac.New(sha256.New, s.cred.ServerKey)
	serverSignature.Write([]byte(authMessage))
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSignature.Sum(nil))), nil
}
