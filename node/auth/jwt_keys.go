package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// JWT signature algorithms (RFC 7518 section 3.1) that a Key may be pinned
// to. Every other algorithm, "none" included, is rejected.
const (
	AlgHS256 = "HS256" // HMAC with SHA-256: a shared secret
	AlgRS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256: an RSA public key
	AlgES256 = "ES256" // ECDSA on P-256 with SHA-256: an EC public key
)

// Key sizes that RFC 7518 requires.
const (
	// minHS256SecretLen is the minimum HS256 secret: section 3.2 requires a
	// key at least as long as the hash output.
	minHS256SecretLen = 32
	// minRSABits is the minimum RSA modulus of section 3.3.
	minRSABits = 2048
)

// ErrInvalidJWTKey marks a JWT key, key file or JWKS that cannot be used:
// an unknown algorithm, a key that does not fit its algorithm, a key that
// is too short, or a file that does not parse.
var ErrInvalidJWTKey = errors.New("auth: invalid JWT key")

// Key is one key that verifies JWT signatures. Its algorithm is pinned: a
// token is verified with a key only if the token's alg header equals
// Key.Alg, so an RSA or EC public key can never serve as an HMAC secret.
//
// Key prints as its algorithm and ID only, so a Key or a config containing one
// is safe to log.
type Key struct {
	// ID is matched against the token's kid header. It may be empty only
	// when this is the only configured key.
	ID string

	// Alg is AlgHS256, AlgRS256 or AlgES256.
	Alg string

	// Secret is the HS256 shared secret, at least 32 bytes. Nil for the
	// other algorithms.
	Secret []byte

	// PublicKey is an *rsa.PublicKey of at least 2048 bits for RS256 or an
	// *ecdsa.PublicKey on P-256 for ES256. Nil for HS256.
	PublicKey crypto.PublicKey
}

// String returns the key's algorithm and ID, never its material.
func (k Key) String() string {
	if k.ID == "" {
		return k.Alg + " key without ID"
	}
	return fmt.Sprintf("%s key %q", k.Alg, k.ID)
}

// GoString returns the same as String, so %#v does not print the secret.
func (k Key) GoString() string {
	return k.String()
}

// Validate checks that the key fits its algorithm and has the size RFC 7518
// requires. The error wraps ErrInvalidJWTKey.
func (k Key) Validate() error {
	if err := k.check(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidJWTKey, err)
	}
	return nil
}

// check is Validate without the ErrInvalidJWTKey wrapping, for callers that
// add their own.
func (k Key) check() error {
	switch k.Alg {
	case AlgHS256:
		return k.validateHMAC()
	case AlgRS256:
		return k.validateRSA()
	case AlgES256:
		return k.validateEC()
	default:
		return fmt.Errorf("key %q: algorithm %q is not %s, %s or %s",
			k.ID, k.Alg, AlgHS256, AlgRS256, AlgES256)
	}
}

func (k Key) validateHMAC() error {
	switch {
	case k.PublicKey != nil:
		return fmt.Errorf("%s has a PublicKey; an HMAC key has only a Secret", k)
	case len(k.Secret) < minHS256SecretLen:
		return fmt.Errorf("%s: secret has %d bytes, want at least %d", k, len(k.Secret), minHS256SecretLen)
	case bytes.HasPrefix(bytes.TrimSpace(k.Secret), []byte("-----BEGIN")):
		// A PEM public key as an HMAC secret is the setup the algorithm
		// confusion attack needs: anyone could sign with it.
		return fmt.Errorf("%s: secret is PEM text; give an RSA or EC public key its own %s or %s key",
			k, AlgRS256, AlgES256)
	}
	return nil
}

func (k Key) validateRSA() error {
	if k.Secret != nil {
		return fmt.Errorf("%s has a Secret; an RSA key has only a PublicKey", k)
	}
	pub, ok := k.PublicKey.(*rsa.PublicKey)
	if !ok || pub == nil || pub.N == nil {
		return fmt.Errorf("%s: PublicKey is %T, want *rsa.PublicKey", k, k.PublicKey)
	}
	if bits := pub.N.BitLen(); bits < minRSABits {
		return fmt.Errorf("%s: RSA modulus has %d bits, want at least %d", k, bits, minRSABits)
	}
	if pub.E < 3 || pub.E%2 == 0 {
		return fmt.Errorf("%s: RSA exponent %d is not an odd number of at least 3", k, pub.E)
	}
	return nil
}

func (k Key) validateEC() error {
	if k.Secret != nil {
		return fmt.Errorf("%s has a Secret; an EC key has only a PublicKey", k)
	}
	pub, ok := k.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub == nil || pub.Curve == nil {
		return fmt.Errorf("%s: PublicKey is %T, want *ecdsa.PublicKey", k, k.PublicKey)
	}
	if pub.Curve != elliptic.P256() {
		return fmt.Errorf("%s: curve is %s, want P-256", k, pub.Curve.Params().Name)
	}
	return nil
}

// verificationKey returns the key in the form the jwt package's signing
// method of k.Alg takes.
func (k *Key) verificationKey() any {
	if k.Alg == AlgHS256 {
		return k.Secret
	}
	return k.PublicKey
}

// KeyFile names a file that contains one JWT key, for keys that are rotated by
// replacing the file.
type KeyFile struct {
	// Path is the file. For HS256 its bytes are the secret, except that one
	// trailing newline (LF or CRLF) is removed, because editors and echo
	// add one. For RS256 and ES256 it is PEM: a "PUBLIC KEY" (PKIX), an
	// "RSA PUBLIC KEY" (PKCS #1) or a "CERTIFICATE" whose public key is
	// used. A file with a private key is rejected: the broker needs only
	// the public key.
	Path string

	// ID and Alg mean what they mean in Key.
	ID  string
	Alg string
}

// parseKeyFile builds the key of kf from the file's contents. Its errors
// do not name the file: the caller adds the path.
func parseKeyFile(kf KeyFile, data []byte) (Key, error) {
	k := Key{ID: kf.ID, Alg: kf.Alg}
	switch kf.Alg {
	case AlgHS256:
		if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
			return Key{}, fmt.Errorf("%w: %s: file is PEM, but an HS256 key file contains the raw secret",
				ErrInvalidJWTKey, k)
		}
		data = bytes.TrimSuffix(data, []byte("\n"))
		data = bytes.TrimSuffix(data, []byte("\r"))
		k.Secret = bytes.Clone(data)
	case AlgRS256, AlgES256:
		pub, err := parsePEMPublicKey(data)
		if err != nil {
			return Key{}, fmt.Errorf("%w: %s: %w", ErrInvalidJWTKey, k, err)
		}
		k.PublicKey = pub
	}
	if err := k.check(); err != nil {
		return Key{}, fmt.Errorf("%w: %w", ErrInvalidJWTKey, err)
	}
	return k, nil
}

// parsePEMPublicKey returns the one public key in PEM data. Blocks of other
// types, such as EC PARAMETERS, are ignored.
func parsePEMPublicKey(data []byte) (crypto.PublicKey, error) {
	var (
		found crypto.PublicKey
		count int
	)
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var (
			pub crypto.PublicKey
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			cert, err = x509.ParseCertificate(block.Bytes)
			if err == nil {
				pub = cert.PublicKey
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("file contains a private key (PEM block %q); give the broker only the public key", block.Type)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s block: %w", block.Type, err)
		}
		found = pub
		count++
	}
	switch count {
	case 0:
		return nil, errors.New("no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM block found")
	case 1:
		return found, nil
	default:
		return nil, fmt.Errorf("file contains %d public keys; use one file per key, or a JWKS file", count)
	}
}
