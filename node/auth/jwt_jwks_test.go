package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jwkRSA(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": base64URL(pub.N.Bytes()), "e": base64URL(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func jwkEC(t testing.TB, kid string, pub *ecdsa.PublicKey) map[string]any {
	t.Helper()
	point, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"kty": "EC", "kid": kid, "alg": "ES256", "crv": "P-256",
		"x": base64URL(point[1:33]), "y": base64URL(point[33:]),
	}
}

func jwkOct(kid string, secret []byte) map[string]any {
	return map[string]any{"kty": "oct", "kid": kid, "alg": "HS256", "k": base64URL(secret)}
}

func jwksJSON(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	data, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// edit returns a copy of m with edits applied; a nil value deletes.
func edit(m map[string]any, edits map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for k, v := range edits {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

func TestParseJWKS_Valid(t *testing.T) {
	keys := testKeys()
	data := jwksJSON(t,
		jwkRSA("r1", &keys.rsa.PublicKey),
		jwkEC(t, "e1", &keys.ec.PublicKey),
		jwkOct("h1", keys.secret),
	)

	got, err := ParseJWKS(data)
	if err != nil {
		t.Fatalf("ParseJWKS: %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d keys, want 3", len(got))
	}
	if got[0].ID != "r1" || got[0].Alg != AlgRS256 || !keys.rsa.PublicKey.Equal(got[0].PublicKey) {
		t.Errorf("key 0 = %v, want RS256 r1 with the test RSA key", got[0])
	}
	if got[1].ID != "e1" || got[1].Alg != AlgES256 || !keys.ec.PublicKey.Equal(got[1].PublicKey) {
		t.Errorf("key 1 = %v, want ES256 e1 with the test EC key", got[1])
	}
	if got[2].ID != "h1" || got[2].Alg != AlgHS256 || string(got[2].Secret) != string(keys.secret) {
		t.Errorf("key 2 = %v, want HS256 h1 with the test secret", got[2])
	}
}

func TestParseJWKS_Skipped(t *testing.T) {
	keys := testKeys()
	rsaKey := jwkRSA("r1", &keys.rsa.PublicKey)
	data := jwksJSON(t,
		rsaKey,
		edit(rsaKey, map[string]any{"kid": "enc", "use": "enc", "alg": "RSA-OAEP"}),
		edit(rsaKey, map[string]any{"kid": "ps", "alg": "PS256"}),
		edit(rsaKey, map[string]any{"kid": "sign-only", "key_ops": []string{"sign"}}),
		map[string]any{"kty": "OKP", "kid": "ed", "alg": "EdDSA", "crv": "Ed25519", "x": "AAAA"},
	)

	got, skipped, err := parseJWKS(data)
	if err != nil {
		t.Fatalf("parseJWKS: %v", err)
	}
	if len(got) != 1 || got[0].ID != "r1" {
		t.Fatalf("keys = %v, want only r1", got)
	}
	if len(skipped) != 4 {
		t.Fatalf("skipped = %q, want 4 entries", skipped)
	}
	for i, want := range []string{`use is "enc"`, `alg "PS256" is not supported`, "key_ops", `alg "EdDSA"`} {
		if !strings.Contains(skipped[i], want) {
			t.Errorf("skipped[%d] = %q, want it to contain %q", i, skipped[i], want)
		}
	}
}

func TestParseJWKS_Errors(t *testing.T) {
	keys := testKeys()
	rsaKey := jwkRSA("r1", &keys.rsa.PublicKey)
	ecKey := jwkEC(t, "e1", &keys.ec.PublicKey)
	octKey := jwkOct("h1", keys.secret)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384Point, err := p384.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		data     []byte
		wantText string
	}{
		{"not-json", []byte("{"), "not a JSON object"},
		{"array", []byte("[]"), "not a JSON object"},
		{"no-keys-member", []byte(`{"kys":[]}`), `no "keys" array`},
		{"empty-keys", []byte(`{"keys":[]}`), "no usable signature key (0 skipped)"},
		{"all-skipped", jwksJSON(t, edit(rsaKey, map[string]any{"use": "enc"})), "no usable signature key (1 skipped)"},
		{"key-not-object", []byte(`{"keys":["x"]}`), "JWKS key 0 is not a JSON object"},
		{"missing-alg", jwksJSON(t, edit(rsaKey, map[string]any{"alg": nil})), `missing "alg"`},
		{"kty-mismatch", jwksJSON(t, edit(rsaKey, map[string]any{"alg": "ES256"})), `kty "RSA" does not fit alg ES256`},
		{"oct-as-rs256", jwksJSON(t, edit(octKey, map[string]any{"alg": "RS256"})), `kty "oct" does not fit alg RS256`},
		{"rsa-as-hs256", jwksJSON(t, edit(rsaKey, map[string]any{"alg": "HS256"})), `kty "RSA" does not fit alg HS256`},
		{"rsa-private", jwksJSON(t, edit(rsaKey, map[string]any{"d": "AQAB"})), "contains a private key"},
		{"ec-private", jwksJSON(t, edit(ecKey, map[string]any{"d": "AQAB"})), "contains a private key"},
		{"rsa-missing-n", jwksJSON(t, edit(rsaKey, map[string]any{"n": nil})), `missing "n"`},
		{"rsa-bad-n", jwksJSON(t, edit(rsaKey, map[string]any{"n": "!!"})), `member "n" is not unpadded base64url`},
		{"rsa-padded-e", jwksJSON(t, edit(rsaKey, map[string]any{"e": "AQAB=="})), `member "e" is not unpadded base64url`},
		{"rsa-huge-e", jwksJSON(t, edit(rsaKey, map[string]any{"e": base64URL([]byte{1, 0, 0, 0, 1})})), "exponent of 5 bytes"},
		{"rsa-even-e", jwksJSON(t, edit(rsaKey, map[string]any{"e": base64URL([]byte{1, 0, 0})})), "not an odd number"},
		{"rsa-short", jwksJSON(t, edit(rsaKey, map[string]any{"n": base64URL(keys.rsa.N.Bytes()[:128])})), "1024 bits, want at least 2048"},
		{"ec-wrong-curve", jwksJSON(t, edit(ecKey, map[string]any{"crv": "P-384"})), `crv "P-384" does not fit alg ES256`},
		{"ec-short-x", jwksJSON(t, edit(ecKey, map[string]any{"x": base64URL(make([]byte, 31))})), "x and y have 31 and 32 bytes"},
		{"ec-p384-point", jwksJSON(t, edit(ecKey, map[string]any{"x": base64URL(p384Point[1:49]), "y": base64URL(p384Point[49:])})), "48 and 48 bytes"},
		{"ec-not-on-curve", jwksJSON(t, edit(ecKey, map[string]any{"y": base64URL(make([]byte, 32))})), "not a point on P-256"},
		{"oct-short", jwksJSON(t, jwkOct("h1", []byte("short secret"))), "secret has 12 bytes, want at least 32"},
		{"oct-missing-k", jwksJSON(t, edit(octKey, map[string]any{"k": nil})), `missing "k"`},
		{"duplicate-kid", jwksJSON(t, rsaKey, edit(ecKey, map[string]any{"kid": "r1"})), `kid "r1" appears twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseJWKS(tc.data)
			if !errors.Is(err, ErrInvalidJWTKey) {
				t.Fatalf("error = %v, want ErrInvalidJWTKey", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not contain %q", err, tc.wantText)
			}
		})
	}
}

func TestParseJWKS_ErrorHidesSecret(t *testing.T) {
	secret := []byte("a-secret-that-is-too-short")
	_, err := ParseJWKS(jwksJSON(t, jwkOct("h1", secret)))
	if err == nil {
		t.Fatal("ParseJWKS accepted a 26-byte secret")
	}
	if strings.Contains(err.Error(), string(secret)) || strings.Contains(err.Error(), base64URL(secret)) {
		t.Errorf("error %q contains the secret", err)
	}
}

func TestJWTAuthenticator_JWKSKidSelection(t *testing.T) {
	keys := testKeys()
	path := filepath.Join(t.TempDir(), "jwks.json")
	data := jwksJSON(t,
		jwkRSA("r1", &keys.rsa.PublicKey),
		jwkRSA("r2", &keys.otherRSA.PublicKey),
		jwkEC(t, "e1", &keys.ec.PublicKey),
		jwkOct("h1", keys.secret),
	)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	a := newTestJWTAuthenticator(t, JWTConfig{JWKSFiles: []string{path}, ReloadInterval: -1})

	tests := []struct {
		name    string
		header  map[string]any
		sign    signer
		wantErr string // empty for success
	}{
		{"rsa-first", map[string]any{"alg": "RS256", "kid": "r1"}, rsaSigner(keys.rsa), ""},
		{"rsa-second", map[string]any{"alg": "RS256", "kid": "r2"}, rsaSigner(keys.otherRSA), ""},
		{"ec", map[string]any{"alg": "ES256", "kid": "e1"}, ecSigner(keys.ec), ""},
		{"hmac", map[string]any{"alg": "HS256", "kid": "h1"}, hmacSigner(keys.secret), ""},
		{"rsa-signed-by-other-kid", map[string]any{"alg": "RS256", "kid": "r1"}, rsaSigner(keys.otherRSA), `signature does not verify with the RS256 key "r1"`},
		{"no-kid", map[string]any{"alg": "RS256"}, rsaSigner(keys.rsa), "token has no kid, and 4 keys are configured"},
		{"unknown-kid", map[string]any{"alg": "RS256", "kid": "r3"}, rsaSigner(keys.rsa), `no key has kid "r3"`},
		{"hmac-with-rsa-kid", map[string]any{"alg": "HS256", "kid": "r1"}, hmacSigner(keys.secret), `token alg HS256 does not match the RS256 key "r1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := makeJWT(t, tc.header, validClaims(), tc.sign)

			id, err := a.Authenticate(context.Background(), Request{Password: []byte(token)})

			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if id.Username != "alice" {
					t.Errorf("Username = %q, want alice", id.Username)
				}
				return
			}
			if !errors.Is(err, ErrBadCredentials) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want ErrBadCredentials containing %q", err, tc.wantErr)
			}
		})
	}
}
