package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Kind names a password hash algorithm. The values are the PHC identifiers
// used in the encoded form.
type Kind string

// Password hash algorithms. HashPassword produces the first two; bcrypt
// hashes are only verified, for users imported from another system.
const (
	KindPBKDF2SHA512 Kind = "pbkdf2-sha512"
	KindArgon2id     Kind = "argon2id"
	KindBcrypt       Kind = "bcrypt"
)

// Sizes of what HashPassword generates. Parsed credentials may have other
// sizes within the bounds below.
const (
	saltLen       = 16 // bytes of random salt, as NIST SP 800-132 recommends at least
	pbkdf2KeyLen  = 64 // one SHA-512 output
	argon2KeyLen  = 32 // the tag length RFC 9106 recommends
	argon2Version = argon2.Version
)

// Bounds on parameters, checked by HashPassword and ParseCredentials. The
// upper bounds cap what one verification can cost, so a credential string
// imported from elsewhere cannot make a single CONNECT take minutes or
// gigabytes. The lower bounds stop a typo from storing a hash that is cheap
// to crack.
const (
	minPBKDF2Iterations = 1_000
	maxPBKDF2Iterations = 10_000_000
	minArgon2MemoryKiB  = 1024        // 1 MiB
	maxArgon2MemoryKiB  = 1024 * 1024 // 1 GiB
	maxArgon2Time       = 64
	maxArgon2Threads    = 64
	minBcryptCost       = bcrypt.MinCost
	maxBcryptCost       = 16 // an estimated 4 s per check: cost 12 measured 0.26 s, and each step doubles
	minSaltLen          = 8
	maxSaltLen          = 64
	minHashLen          = 16
	maxHashLen          = 128
)

// Params selects a password hash algorithm and its cost. Only the fields of
// the chosen Kind are used. The zero value is invalid; start from
// DefaultParams.
type Params struct {
	Kind Kind

	// Iterations is the PBKDF2-HMAC-SHA512 iteration count.
	Iterations uint32

	// Time is the number of argon2id passes over memory.
	Time uint32
	// MemoryKiB is the argon2id memory size in KiB. Each verification in
	// flight holds this much, so the Verifier's worker count times MemoryKiB
	// bounds the memory that password checks use.
	MemoryKiB uint32
	// Threads is the argon2id parallelism. It is part of the hash: verifying
	// with another value gives another result.
	Threads uint8

	// Cost is the bcrypt cost, set only by ParseCredentials.
	Cost int
}

// DefaultParams returns the parameters HashPassword uses unless configured
// otherwise: argon2id with t=2, m=19 MiB, p=1, the minimum OWASP's password
// storage guidance recommends. It was chosen over RFC 9106's t=1, m=64 MiB
// because the Verifier runs one hash per core at once: at 19 MiB a 64-core
// node needs about 1.2 GiB for a reconnect storm instead of 4 GiB, and each
// hash takes half the time. The cost table in the package documentation
// gives the measured times.
func DefaultParams() Params {
	return Params{Kind: KindArgon2id, Time: 2, MemoryKiB: 19 * 1024, Threads: 1}
}

// DefaultPBKDF2Params returns PBKDF2-HMAC-SHA512 with 210,000 iterations,
// the count OWASP's password storage guidance gives for SHA-512, for
// deployments that must use a NIST-approved function.
func DefaultPBKDF2Params() Params {
	return Params{Kind: KindPBKDF2SHA512, Iterations: 210_000}
}

// Validate returns an error naming the first field out of bounds.
func (p Params) Validate() error {
	switch p.Kind {
	case KindPBKDF2SHA512:
		if p.Iterations < minPBKDF2Iterations || p.Iterations > maxPBKDF2Iterations {
			return fmt.Errorf("%w: pbkdf2-sha512 Iterations %d is outside [%d, %d]",
				ErrInvalidCredentials, p.Iterations, minPBKDF2Iterations, maxPBKDF2Iterations)
		}
	case KindArgon2id:
		if p.Time < 1 || p.Time > maxArgon2Time {
			return fmt.Errorf("%w: argon2id Time %d is outside [1, %d]", ErrInvalidCredentials, p.Time, maxArgon2Time)
		}
		if p.MemoryKiB < minArgon2MemoryKiB || p.MemoryKiB > maxArgon2MemoryKiB {
			return fmt.Errorf("%w: argon2id MemoryKiB %d is outside [%d, %d]",
				ErrInvalidCredentials, p.MemoryKiB, minArgon2MemoryKiB, maxArgon2MemoryKiB)
		}
		if p.Threads < 1 || p.Threads > maxArgon2Threads {
			return fmt.Errorf("%w: argon2id Threads %d is outside [1, %d]", ErrInvalidCredentials, p.Threads, maxArgon2Threads)
		}
		// RFC 9106 section 3.1: memory must be at least 8 KiB per thread.
		if p.MemoryKiB < 8*uint32(p.Threads) {
			return fmt.Errorf("%w: argon2id MemoryKiB %d is below 8 KiB per thread", ErrInvalidCredentials, p.MemoryKiB)
		}
	case KindBcrypt:
		if p.Cost < minBcryptCost || p.Cost > maxBcryptCost {
			return fmt.Errorf("%w: bcrypt Cost %d is outside [%d, %d]", ErrInvalidCredentials, p.Cost, minBcryptCost, maxBcryptCost)
		}
	default:
		return fmt.Errorf("%w: unknown Kind %q", ErrInvalidCredentials, p.Kind)
	}
	return nil
}

// Credentials is a stored password hash: the algorithm and its parameters,
// the salt and the derived key. For bcrypt, Hash is the whole bcrypt string
// ("$2b$10$...") and Salt is nil, because bcrypt keeps both in one string.
//
// String redacts the salt and hash, so printing a Credentials or a User with
// %v never writes a hash into a log. Use Encode for storage.
type Credentials struct {
	Params
	Salt []byte
	Hash []byte
}

// HashPassword derives new Credentials from password with a fresh random
// salt. It rejects KindBcrypt, because new hashes use a memory-hard or
// approved function, and parameters outside the bounds of Params.Validate.
// It costs one full verification; see the table in the package
// documentation.
func HashPassword(password []byte, p Params) (Credentials, error) {
	if p.Kind == KindBcrypt {
		return Credentials{}, fmt.Errorf("%w: bcrypt is accepted for imported hashes only", ErrInvalidCredentials)
	}
	if err := p.Validate(); err != nil {
		return Credentials{}, fmt.Errorf("hash password: %w", err)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return Credentials{}, fmt.Errorf("hash password: read random salt: %w", err)
	}
	c := Credentials{Params: p, Salt: salt}
	hash, err := derive(c, password)
	if err != nil {
		return Credentials{}, fmt.Errorf("hash password: %w", err)
	}
	c.Hash = hash
	return c, nil
}

// Verify reports whether password matches c. The comparison of derived keys
// takes constant time. Invalid credentials, such as an unknown kind or
// parameters out of bounds, never match. Verify costs one full hash
// computation and may be called concurrently.
func Verify(c Credentials, password []byte) bool {
	if err := c.check(); err != nil {
		return false
	}
	if c.Kind == KindBcrypt {
		return bcrypt.CompareHashAndPassword(c.Hash, password) == nil
	}
	got, err := derive(c, password)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, c.Hash) == 1
}

// check validates parameters and sizes of stored credentials.
func (c Credentials) check() error {
	if err := c.Params.Validate(); err != nil {
		return err
	}
	if c.Kind == KindBcrypt {
		return nil
	}
	if len(c.Salt) < minSaltLen || len(c.Salt) > maxSaltLen {
		return fmt.Errorf("%w: salt of %d bytes is outside [%d, %d]", ErrInvalidCredentials, len(c.Salt), minSaltLen, maxSaltLen)
	}
	if len(c.Hash) < minHashLen || len(c.Hash) > maxHashLen {
		return fmt.Errorf("%w: hash of %d bytes is outside [%d, %d]", ErrInvalidCredentials, len(c.Hash), minHashLen, maxHashLen)
	}
	return nil
}

// derive computes the key for password under the parameters and salt of c,
// with the key length of c.Hash, or the default length when c.Hash is empty.
func derive(c Credentials, password []byte) ([]byte, error) {
	switch c.Kind {
	case KindPBKDF2SHA512:
		keyLen := len(c.Hash)
		if keyLen == 0 {
			keyLen = pbkdf2KeyLen
		}
		return pbkdf2.Key(sha512.New, string(password), c.Salt, int(c.Iterations), keyLen)
	case KindArgon2id:
		keyLen := len(c.Hash)
		if keyLen == 0 {
			keyLen = argon2KeyLen
		}
		return argon2.IDKey(password, c.Salt, c.Time, c.MemoryKiB, c.Threads, uint32(keyLen)), nil
	default:
		return nil, fmt.Errorf("%w: cannot derive a key with kind %q", ErrInvalidCredentials, c.Kind)
	}
}
