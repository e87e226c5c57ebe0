package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// jwk is one JSON Web Key (RFC 7517 section 4, RFC 7518 section 6) with the
// members this package reads.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Alg    string   `json:"alg"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`

	// RSA public key.
	N string `json:"n"`
	E string `json:"e"`

	// EC public key.
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`

	// Symmetric key.
	K string `json:"k"`

	// D is the private exponent of an RSA or EC private key. A key set for
	// the broker must not carry it.
	D string `json:"d"`
}

// ParseJWKS parses a JSON Web Key Set (RFC 7517 section 5): a JSON object
// whose "keys" member is an array of keys. Each key needs an "alg" member,
// because this package pins every key to one algorithm, and its "kty" must
// fit that algorithm: "oct" for HS256, "RSA" for RS256, "EC" with crv
// "P-256" for ES256. Keys for other uses are skipped: a "use" other than
// "sig", "key_ops" without "verify", or an algorithm other than HS256,
// RS256 and ES256. A set with no usable key, a key with a private part
// ("d"), a malformed key or two keys with the same kid is an error wrapping
// ErrInvalidJWTKey. No error contains key material.
func ParseJWKS(data []byte) ([]Key, error) {
	keys, _, err := parseJWKS(data)
	return keys, err
}

// parseJWKS is ParseJWKS that also returns why each skipped key was
// skipped, for the log.
func parseJWKS(data []byte) (keys []Key, skipped []string, err error) {
	var set struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, nil, fmt.Errorf("%w: JWKS is not a JSON object: %w", ErrInvalidJWTKey, err)
	}
	if set.Keys == nil {
		return nil, nil, fmt.Errorf("%w: JWKS has no \"keys\" array", ErrInvalidJWTKey)
	}

	ids := make(map[string]bool)
	for i, raw := range *set.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, nil, fmt.Errorf("%w: JWKS key %d is not a JSON object: %w", ErrInvalidJWTKey, i, err)
		}
		if reason := jwkSkipReason(j); reason != "" {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %s", i, quoteShort(j.Kid), reason))
			continue
		}
		k, err := j.key()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: JWKS key %d (kid %q): %w", ErrInvalidJWTKey, i, quoteShort(j.Kid), err)
		}
		if ids[k.ID] {
			return nil, nil, fmt.Errorf("%w: JWKS key %d: kid %q appears twice", ErrInvalidJWTKey, i, quoteShort(k.ID))
		}
		ids[k.ID] = true
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("%w: JWKS has no usable signature key (%d skipped)", ErrInvalidJWTKey, len(skipped))
	}
	return keys, skipped, nil
}

// jwkSkipReason returns why j is not a key for verifying signatures with an
// algorithm this package supports, or "" if it is.
func jwkSkipReason(j jwk) string {
	switch {
	case j.Use != "" && j.Use != "sig":
		return fmt.Sprintf("use is %q, not \"sig\"", quoteShort(j.Use))
	case j.KeyOps != nil && !slices.Contains(j.KeyOps, "verify"):
		return "key_ops does not include \"verify\""
	case j.Alg != "" && j.Alg != AlgHS256 && j.Alg != AlgRS256 && j.Alg != AlgES256:
		return fmt.Sprintf("alg %q is not supported", quoteShort(j.Alg))
	}
	return ""
}

// key builds and validates the Key of j. Its errors name the member that is
// wrong and never contain key material.
func (j jwk) key() (Key, error) {
	if j.D != "" {
		return Key{}, errors.New("contains a private key (member \"d\"); publish only the public key")
	}

	k := Key{ID: j.Kid, Alg: j.Alg}
	var err error
	switch j.Alg {
	case "":
		return Key{}, errors.New("missing \"alg\"; every key must name its algorithm")
	case AlgHS256:
		err = j.expectKty("oct")
		if err == nil {
			k.Secret, err = decodeJWKMember("k", j.K)
		}
	case AlgRS256:
		err = j.expectKty("RSA")
		if err == nil {
			k.PublicKey, err = j.rsaPublicKey()
		}
	case AlgES256:
		err = j.expectKty("EC")
		if err == nil {
			k.PublicKey, err = j.ecPublicKey()
		}
	}
	if err != nil {
		return Key{}, err
	}
	if err := k.check(); err != nil {
		return Key{}, err
	}
	return k, nil
}

func (j jwk) expectKty(want string) error {
	if j.Kty != want {
		return fmt.Errorf("kty %q does not fit alg %s, want %q", quoteShort(j.Kty), j.Alg, want)
	}
	return nil
}

func (j jwk) rsaPublicKey() (*rsa.PublicKey, error) {
	n, err := decodeJWKMember("n", j.N)
	if err != nil {
		return nil, err
	}
	e, err := decodeJWKMember("e", j.E)
	if err != nil {
		return nil, err
	}
	// RFC 7518 section 6.3.1 encodes both as unsigned big-endian integers
	// in their minimal length. An exponent longer than 4 bytes is far
	// beyond any key in use and would overflow an int on 32-bit machines.
	if len(e) > 4 {
		return nil, fmt.Errorf("RSA exponent of %d bytes is too large", len(e))
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
}

func (j jwk) ecPublicKey() (*ecdsa.PublicKey, error) {
	if j.Crv != "P-256" {
		return nil, fmt.Errorf("crv %q does not fit alg ES256, want \"P-256\"", quoteShort(j.Crv))
	}
	x, err := decodeJWKMember("x", j.X)
	if err != nil {
		return nil, err
	}
	y, err := decodeJWKMember("y", j.Y)
	if err != nil {
		return nil, err
	}
	// RFC 7518 section 6.2.1.2: each coordinate is the full 32 bytes.
	if len(x) != 32 || len(y) != 32 {
		return nil, fmt.Errorf("x and y have %d and %d bytes, want 32 each", len(x), len(y))
	}
	point := make([]byte, 0, 65)
	point = append(point, 4) // uncompressed point, SEC 1 section 2.3.3
	point = append(point, x...)
	point = append(point, y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, fmt.Errorf("x and y are not a point on P-256: %w", err)
	}
	return pub, nil
}

// decodeJWKMember decodes a base64url member without padding (RFC 7515
// section 2). Its error names the member but not the value, which may be a
// secret.
func decodeJWKMember(name, value string) ([]byte, error) {
	if value == "" {
		return nil, fmt.Errorf("missing %q", name)
	}
	b, err := base64URLStrict.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("member %q is not unpadded base64url", name)
	}
	return b, nil
}
