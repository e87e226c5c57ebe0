package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"
)

// ScramMechanism is the SASL mechanism name of SCRAM-SHA-256 (RFC 7677),
// which MQTT 5.0 clients put in the Authentication Method property.
const ScramMechanism = "SCRAM-SHA-256"

// DefaultScramIterations is the PBKDF2-HMAC-SHA256 iteration count of new
// SCRAM credentials: the minimum RFC 7677 section 4 recommends. Unlike the
// password hash, this cost falls on the client at every connect (a client
// may cache its salted password), so a fleet of small devices needs it low.
// The broker pays it only when the password is set.
const DefaultScramIterations = 4096

// Bounds on SCRAM iteration counts that ParseScramCredential and
// NewScramCredential accept.
const (
	minScramIterations = 4096
	maxScramIterations = 10_000_000
)

// ScramCredential is the server's record for running SCRAM-SHA-256 with one
// user without knowing the password (RFC 5802 section 3): the salt, the
// iteration count, StoredKey = SHA-256(ClientKey) and ServerKey. Anyone who
// holds it can impersonate the server to that user but cannot log in as the
// user, so it is as sensitive as a password hash. String redacts the keys.
type ScramCredential struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte // 32 bytes
	ServerKey  []byte // 32 bytes
}

// NewScramCredential derives a SCRAM-SHA-256 credential from password with a
// fresh 16-byte salt. The password is used as its UTF-8 bytes without
// SASLprep; see the limitations in the package documentation.
func NewScramCredential(password []byte, iterations int) (*ScramCredential, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("derive SCRAM credential: read random salt: %w", err)
	}
	return DeriveScramCredential(password, salt, iterations)
}

// DeriveScramCredential derives the credential for a given salt, as RFC 5802
// section 3 defines: SaltedPassword = Hi(password, salt, i), ClientKey =
// HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey) and ServerKey
// = HMAC(SaltedPassword, "Server Key").
func DeriveScramCredential(password, salt []byte, iterations int) (*ScramCredential, error) {
	if iterations < minScramIterations || iterations > maxScramIterations {
		return nil, fmt.Errorf("%w: SCRAM iteration count %d is outside [%d, %d]",
			ErrInvalidCredentials, iterations, minScramIterations, maxScramIterations)
	}
	if len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return nil, fmt.Errorf("%w: SCRAM salt of %d bytes is outside [%d, %d]", ErrInvalidCredentials, len(salt), minSaltLen, maxSaltLen)
	}
	salted, err := pbkdf2.Key(sha256.New, string(password), salt, iterations, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("derive SCRAM credential: %w", err)
	}
	clientKey := hmacSHA256(salted, []byte("Client Key"))
	storedKey := sha256.Sum256(clientKey)
	return &ScramCredential{
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  storedKey[:],
		ServerKey:  hmacSHA256(salted, []byte("Server Key")),
	}, nil
}

func hmacSHA256(key, message []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(message)
	return m.Sum(nil)
}

// scramPrefix starts the encoded form of a ScramCredential:
//
//	$scram-sha-256$i=4096$<salt>$<StoredKey>:<ServerKey>
//
// with unpadded standard base64, like the password hashes.
const scramPrefix = "$scram-sha-256$"

// Encode returns the storage form of c. It contains the keys, so it must not
// be logged.
func (c *ScramCredential) Encode() string {
	return fmt.Sprintf("%si=%d$%s$%s:%s", scramPrefix, c.Iterations,
		b64.EncodeToString(c.Salt), b64.EncodeToString(c.StoredKey), b64.EncodeToString(c.ServerKey))
}

// String returns the encoded form with the salt and keys redacted.
func (c *ScramCredential) String() string {
	if c == nil {
		return "[no SCRAM credential]"
	}
	return fmt.Sprintf("%si=%d$[redacted]", scramPrefix, c.Iterations)
}

// GoString redacts like String, for the %#v verb.
func (c *ScramCredential) GoString() string { return c.String() }

// ParseScramCredential decodes the form Encode returns. Errors never quote
// the salt or keys.
func ParseScramCredential(s string) (*ScramCredential, error) {
	if len(s) > maxEncodedLen {
		return nil, fmt.Errorf("%w: encoded SCRAM credential of %d bytes exceeds %d", ErrInvalidCredentials, len(s), maxEncodedLen)
	}
	rest, ok := strings.CutPrefix(s, scramPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: SCRAM credential must start with %q", ErrInvalidCredentials, scramPrefix)
	}
	fields := strings.Split(rest, "$")
	if len(fields) != 3 {
		return nil, fmt.Errorf("%w: SCRAM credential needs 3 fields after the prefix, got %d", ErrInvalidCredentials, len(fields))
	}
	iter, err := parseParamList(fields[0], "i")
	if err != nil {
		return nil, fmt.Errorf("SCRAM credential: %w", err)
	}
	storedField, serverField, ok := strings.Cut(fields[2], ":")
	if !ok {
		return nil, fmt.Errorf("%w: SCRAM keys must be <StoredKey>:<ServerKey>", ErrInvalidCredentials)
	}
	c := &ScramCredential{Iterations: int(iter[0])}
	if c.Salt, c.StoredKey, err = decodeSaltHash(fields[1], storedField); err != nil {
		return nil, fmt.Errorf("SCRAM credential: %w", err)
	}
	if c.ServerKey, ok = decodeCanonical(b64, serverField); !ok {
		return nil, fmt.Errorf("%w: SCRAM ServerKey is not unpadded base64", ErrInvalidCredentials)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// check validates the sizes and iteration count of c.
func (c *ScramCredential) check() error {
	switch {
	case c.Iterations < minScramIterations || c.Iterations > maxScramIterations:
		return fmt.Errorf("%w: SCRAM iteration count %d is outside [%d, %d]",
			ErrInvalidCredentials, c.Iterations, minScramIterations, maxScramIterations)
	case len(c.Salt) < minSaltLen || len(c.Salt) > maxSaltLen:
		return fmt.Errorf("%w: SCRAM salt of %d bytes is outside [%d, %d]", ErrInvalidCredentials, len(c.Salt), minSaltLen, maxSaltLen)
	case len(c.StoredKey) != sha256.Size || len(c.ServerKey) != sha256.Size:
		return fmt.Errorf("%w: SCRAM keys must be %d bytes each", ErrInvalidCredentials, sha256.Size)
	}
	return nil
}
