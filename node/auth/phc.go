package auth

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// The encoded forms follow the PHC string format
// ("$id$param=value,...$salt$hash", salt and hash in unpadded standard
// base64):
//
//	$pbkdf2-sha512$i=210000$<salt>$<hash>
//	$argon2id$v=19$m=65536,t=1,p=1$<salt>$<hash>
//
// A bcrypt hash keeps its own modular crypt form ("$2a$", "$2b$" or "$2y$",
// the cost, then 53 characters of salt and hash), so hashes exported from
// other systems import unchanged.

// maxEncodedLen bounds the length of an encoded credential that
// ParseCredentials reads. The longest valid string is well under 300 bytes.
const maxEncodedLen = 512

// b64 is the base64 alphabet of PHC strings.
var b64 = base64.RawStdEncoding

// Encode returns the PHC string of c, the form in which a Store keeps it.
// The string contains the hash, so it must not be logged.
func (c Credentials) Encode() string {
	switch c.Kind {
	case KindPBKDF2SHA512:
		return fmt.Sprintf("$%s$i=%d$%s$%s", c.Kind, c.Iterations, b64.EncodeToString(c.Salt), b64.EncodeToString(c.Hash))
	case KindArgon2id:
		return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", c.Kind, argon2Version, c.MemoryKiB, c.Time, c.Threads,
			b64.EncodeToString(c.Salt), b64.EncodeToString(c.Hash))
	case KindBcrypt:
		return string(c.Hash)
	default:
		return ""
	}
}

// String returns the encoded form without salt and hash, safe to log.
func (c Credentials) String() string {
	switch c.Kind {
	case KindPBKDF2SHA512:
		return fmt.Sprintf("$%s$i=%d$[redacted]", c.Kind, c.Iterations)
	case KindArgon2id:
		return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$[redacted]", c.Kind, argon2Version, c.MemoryKiB, c.Time, c.Threads)
	case KindBcrypt:
		return fmt.Sprintf("$bcrypt$cost=%d$[redacted]", c.Cost)
	default:
		return "[no credentials]"
	}
}

// GoString redacts like String, for the %#v verb.
func (c Credentials) GoString() string { return c.String() }

// ParseCredentials decodes an encoded credential: a PHC string of
// pbkdf2-sha512 or argon2id, or a bcrypt hash. It checks the parameters
// against the bounds of Params.Validate and the salt and hash lengths, so
// anything it returns can be passed to Verify. Errors never quote the salt
// or hash.
func ParseCredentials(s string) (Credentials, error) {
	if len(s) > maxEncodedLen {
		return Credentials{}, fmt.Errorf("%w: encoded credential of %d bytes exceeds %d", ErrInvalidCredentials, len(s), maxEncodedLen)
	}
	if strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$") {
		return parseBcrypt(s)
	}

	fields := strings.Split(s, "$")
	if len(fields) < 2 || fields[0] != "" {
		return Credentials{}, fmt.Errorf("%w: encoded credential must start with '$'", ErrInvalidCredentials)
	}
	var (
		c   Credentials
		err error
	)
	switch Kind(fields[1]) {
	case KindPBKDF2SHA512:
		c, err = parsePBKDF2(fields)
	case KindArgon2id:
		c, err = parseArgon2id(fields)
	default:
		// The identifier is not secret, but it may be a hash pasted in the
		// wrong field, so only its length is reported.
		return Credentials{}, fmt.Errorf("%w: unknown algorithm identifier of %d bytes", ErrInvalidCredentials, len(fields[1]))
	}
	if err != nil {
		return Credentials{}, err
	}
	if err := c.check(); err != nil {
		return Credentials{}, err
	}
	return c, nil
}

// parsePBKDF2 parses ["", "pbkdf2-sha512", "i=N", salt, hash].
func parsePBKDF2(fields []string) (Credentials, error) {
	if len(fields) != 5 {
		return Credentials{}, fmt.Errorf("%w: pbkdf2-sha512 needs 4 '$'-separated fields, got %d", ErrInvalidCredentials, len(fields)-1)
	}
	params, err := parseParamList(fields[2], "i")
	if err != nil {
		return Credentials{}, fmt.Errorf("pbkdf2-sha512: %w", err)
	}
	c := Credentials{Params: Params{Kind: KindPBKDF2SHA512, Iterations: params[0]}}
	if c.Salt, c.Hash, err = decodeSaltHash(fields[3], fields[4]); err != nil {
		return Credentials{}, fmt.Errorf("pbkdf2-sha512: %w", err)
	}
	return c, nil
}

// parseArgon2id parses ["", "argon2id", "v=19", "m=M,t=T,p=P", salt, hash].
func parseArgon2id(fields []string) (Credentials, error) {
	if len(fields) != 6 {
		return Credentials{}, fmt.Errorf("%w: argon2id needs 5 '$'-separated fields, got %d", ErrInvalidCredentials, len(fields)-1)
	}
	version, err := parseParamList(fields[2], "v")
	if err != nil {
		return Credentials{}, fmt.Errorf("argon2id: %w", err)
	}
	if version[0] != argon2Version {
		return Credentials{}, fmt.Errorf("%w: argon2id version %d is not supported, only %d", ErrInvalidCredentials, version[0], argon2Version)
	}
	params, err := parseParamList(fields[3], "m", "t", "p")
	if err != nil {
		return Credentials{}, fmt.Errorf("argon2id: %w", err)
	}
	if params[2] > maxArgon2Threads {
		return Credentials{}, fmt.Errorf("%w: argon2id p=%d exceeds %d", ErrInvalidCredentials, params[2], maxArgon2Threads)
	}
	c := Credentials{Params: Params{Kind: KindArgon2id, MemoryKiB: params[0], Time: params[1], Threads: uint8(params[2])}}
	if c.Salt, c.Hash, err = decodeSaltHash(fields[4], fields[5]); err != nil {
		return Credentials{}, fmt.Errorf("argon2id: %w", err)
	}
	return c, nil
}

// parseParamList parses "k1=v1,k2=v2,..." with exactly the keys given, in
// that order, each a decimal uint32 without sign or leading zeros.
func parseParamList(s string, keys ...string) ([]uint32, error) {
	parts := strings.Split(s, ",")
	if len(parts) != len(keys) {
		return nil, fmt.Errorf("%w: want parameters %s", ErrInvalidCredentials, strings.Join(keys, ","))
	}
	values := make([]uint32, len(keys))
	for i, part := range parts {
		name, value, ok := strings.Cut(part, "=")
		if !ok || name != keys[i] {
			return nil, fmt.Errorf("%w: parameter %d must be %s=<number>", ErrInvalidCredentials, i+1, keys[i])
		}
		if value == "" || (len(value) > 1 && value[0] == '0') || value[0] == '+' {
			return nil, fmt.Errorf("%w: parameter %s is not a canonical decimal number", ErrInvalidCredentials, keys[i])
		}
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: parameter %s: %w", ErrInvalidCredentials, keys[i], err)
		}
		values[i] = uint32(n)
	}
	return values, nil
}

// decodeSaltHash decodes the unpadded base64 salt and hash fields. Errors
// name the field but never quote it.
func decodeSaltHash(saltField, hashField string) (salt, hash []byte, err error) {
	salt, ok := decodeCanonical(b64, saltField)
	if !ok {
		return nil, nil, fmt.Errorf("%w: salt is not unpadded base64", ErrInvalidCredentials)
	}
	hash, ok = decodeCanonical(b64, hashField)
	if !ok {
		return nil, nil, fmt.Errorf("%w: hash is not unpadded base64", ErrInvalidCredentials)
	}
	return salt, hash, nil
}

// decodeCanonical decodes s and reports whether s is exactly the encoding
// of the result. Go's decoders skip '\r' and '\n' even in strict mode, and a
// stored value with two spellings would break the round trip.
func decodeCanonical(enc *base64.Encoding, s string) ([]byte, bool) {
	b, err := enc.Strict().DecodeString(s)
	if err != nil || enc.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// parseBcrypt accepts a bcrypt hash as produced by OpenBSD, PHP ("$2y$") or
// golang.org/x/crypto/bcrypt.
func parseBcrypt(s string) (Credentials, error) {
	cost, err := bcrypt.Cost([]byte(s))
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: malformed bcrypt hash", ErrInvalidCredentials)
	}
	// "$2b$" + 2-digit cost + "$" + 22 salt + 31 hash characters.
	if len(s) != 60 {
		return Credentials{}, fmt.Errorf("%w: bcrypt hash has %d characters, want 60", ErrInvalidCredentials, len(s))
	}
	c := Credentials{Params: Params{Kind: KindBcrypt, Cost: cost}, Hash: []byte(s)}
	if err := c.check(); err != nil {
		return Credentials{}, err
	}
	return c, nil
}
