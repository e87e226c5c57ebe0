package auth

import (
	"errors"

	"github.com/starling-mqtt/starling/node/packet"
)

// Sentinel errors. Errors returned by this package wrap one of them, so
// callers check with errors.Is. No error of this package carries a password,
// a password hash or a cache key, so any of them may be logged.
var (
	// ErrBadCredentials means the client presented credentials and they are
	// wrong: an unknown user, a disabled user, a wrong password or a
	// certificate whose identity does not fit. The node sends CONNACK 0x86
	// (3.1.1: return code 4).
	ErrBadCredentials = errors.New("auth: bad user name or password")

	// ErrNotAuthorized means the client is known, or presented nothing, and
	// is not allowed in: for example an anonymous client on a listener that
	// does not admit anonymous clients. The node sends CONNACK 0x87
	// (3.1.1: return code 5).
	ErrNotAuthorized = errors.New("auth: not authorized")

	// ErrNoMatch means an Authenticator does not apply to a request, for
	// example a certificate authenticator given no certificate. A Chain then
	// calls the next Authenticator. Chain never returns it.
	ErrNoMatch = errors.New("auth: authenticator does not apply")

	// ErrBusy means the Verifier's queue is full. The node sends CONNACK
	// 0x89 Server busy (3.1.1: return code 3) so the client retries later
	// instead of the node piling up work.
	ErrBusy = errors.New("auth: verifier busy")

	// ErrClosed means the Verifier was closed. The node sends CONNACK
	// 0x8B Server shutting down.
	ErrClosed = errors.New("auth: verifier closed")

	// ErrNotFound means a Store has no record of that name.
	ErrNotFound = errors.New("auth: not found")

	// ErrInvalidCredentials marks a stored credential string or record that
	// cannot be parsed or has out-of-range parameters.
	ErrInvalidCredentials = errors.New("auth: invalid credentials")

	// ErrInvalidRule marks an ACL rule with a bad action, permission or topic
	// pattern.
	ErrInvalidRule = errors.New("auth: invalid rule")

	// ErrInvalidRecord marks a user, group or role record that a Store
	// rejects, for example one with an empty name.
	ErrInvalidRecord = errors.New("auth: invalid record")

	// ErrNoScram means the user has no SCRAM-SHA-256 credential, for
	// example a user imported with a bcrypt hash, whose password the
	// broker never saw and so could not derive SCRAM keys from.
	ErrNoScram = errors.New("auth: user has no SCRAM-SHA-256 credential")

	// ErrScram marks a SCRAM conversation that failed: a malformed message,
	// a nonce mismatch or a wrong proof.
	ErrScram = errors.New("auth: SCRAM authentication failed")
)

// ConnectReason returns the CONNACK reason code for an error returned by
// Authenticate or Verify. For 3.1.1 the node maps it with
// packet.ReasonCode.V3ConnackCode. An error this package does not know maps
// to 0x80 Unspecified error, so an internal failure never reads as a wrong
// password.
func ConnectReason(err error) packet.ReasonCode {
	switch {
	case err == nil:
		return packet.ReasonSuccess
	case errors.Is(err, ErrNoScram):
		// The client should retry with another method.
		return packet.ReasonBadAuthenticationMethod
	case errors.Is(err, ErrBadCredentials), errors.Is(err, ErrScram):
		return packet.ReasonBadUsernameOrPassword
	case errors.Is(err, ErrNotAuthorized):
		return packet.ReasonNotAuthorized
	case errors.Is(err, ErrBusy):
		return packet.ReasonServerBusy
	case errors.Is(err, ErrClosed):
		return packet.ReasonServerShuttingDown
	default:
		return packet.ReasonUnspecifiedError
	}
}
