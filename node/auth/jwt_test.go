package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// jwtTestNow is the fixed clock of the JWT tests.
var jwtTestNow = time.Unix(1_700_000_000, 0)

// jwtTestKeys are the keys the JWT tests sign with, generated once because
// RSA key generation is slow under the race detector.
type jwtTestKeys struct {
	secret, otherSecret []byte
	rsa, otherRSA       *rsa.PrivateKey
	ec, otherEC         *ecdsa.PrivateKey
}

var testKeys = sync.OnceValue(func() jwtTestKeys {
	mustRSA := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	mustEC := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	return jwtTestKeys{
		secret:      []byte("0123456789abcdef0123456789abcdef"),
		otherSecret: []byte("fedcba9876543210fedcba9876543210"),
		rsa:         mustRSA(),
		otherRSA:    mustRSA(),
		ec:          mustEC(),
		otherEC:     mustEC(),
	}
})

// signer signs a JWS signing input.
type signer func(t testing.TB, input []byte) []byte

func hmacSigner(secret []byte) signer {
	return func(_ testing.TB, input []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return m.Sum(nil)
	}
}

func rsaSigner(k *rsa.PrivateKey) signer {
	return func(t testing.TB, input []byte) []byte {
		digest := sha256.Sum256(input)
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
}

// ecSigner signs in the JWS form of RFC 7518 section 3.4: r and s as 32
// bytes each, not ASN.1.
func ecSigner(k *ecdsa.PrivateKey) signer {
	return func(t testing.TB, input []byte) []byte {
		digest := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig
	}
}

// noSigner leaves the signature empty, as for alg "none".
func noSigner(testing.TB, []byte) []byte { return nil }

// makeJWT builds a compact JWS from a header and claims.
func makeJWT(t testing.TB, header, claims map[string]any, sign signer) string {
	t.Helper()
	enc := base64.RawURLEncoding
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	return input + "." + enc.EncodeToString(sign(t, []byte(input)))
}

// validClaims returns claims that pass every check at jwtTestNow.
func validClaims() map[string]any {
	return map[string]any{
		"sub": "alice",
		"iat": jwtTestNow.Add(-time.Minute).Unix(),
		"exp": jwtTestNow.Add(time.Hour).Unix(),
	}
}

// withClaims returns validClaims changed by edits; a nil value deletes the
// claim.
func withClaims(edits map[string]any) map[string]any {
	c := validClaims()
	for k, v := range edits {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func pemPublicKey(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// newTestJWTAuthenticator builds an authenticator with the test clock and
// closes it when the test ends.
func newTestJWTAuthenticator(t testing.TB, cfg JWTConfig) *JWTAuthenticator {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return jwtTestNow }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a, err := NewJWTAuthenticator(cfg)
	if err != nil {
		t.Fatalf("NewJWTAuthenticator: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestJWTAuthenticator_Checks(t *testing.T) {
	keys := testKeys()
	hsKey := Key{ID: "hs", Alg: AlgHS256, Secret: keys.secret}
	rsKey := Key{ID: "rs", Alg: AlgRS256, PublicKey: &keys.rsa.PublicKey}
	esKey := Key{ID: "es", Alg: AlgES256, PublicKey: &keys.ec.PublicKey}
	rsaDER, err := x509.MarshalPKIXPublicKey(&keys.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pemPublicKey(t, &keys.rsa.PublicKey)

	hs := map[string]any{"alg": "HS256", "typ": "JWT"}
	rs := map[string]any{"alg": "RS256"}
	es := map[string]any{"alg": "ES256"}

	tests := []struct {
		name     string
		keys     []Key
		cfg      func(*JWTConfig)
		header   map[string]any
		claims   map[string]any
		sign     signer
		username string

		wantErr  error  // nil for success
		wantText string // in the error message
		want     Identity
	}{
		{
			name: "hs256-valid", keys: []Key{hsKey}, header: hs, claims: validClaims(), sign: hmacSigner(keys.secret),
			want: Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "rs256-valid", keys: []Key{rsKey}, header: rs, claims: validClaims(), sign: rsaSigner(keys.rsa),
			want: Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "es256-valid", keys: []Key{esKey}, header: es, claims: validClaims(), sign: ecSigner(keys.ec),
			want: Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "username-matches-claim", keys: []Key{hsKey}, header: hs, claims: validClaims(), sign: hmacSigner(keys.secret),
			username: "alice",
			want:     Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "username-differs-from-claim", keys: []Key{hsKey}, header: hs, claims: validClaims(), sign: hmacSigner(keys.secret),
			username: "mallory",
			wantErr:  ErrBadCredentials, wantText: `claim "sub" is "alice", but the client sent user name "mallory"`,
		},
		{
			name: "custom-username-claim", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:    func(c *JWTConfig) { c.UsernameClaim = "preferred_username" },
			claims: withClaims(map[string]any{"preferred_username": "bob"}),
			want:   Identity{Username: "bob", Method: MethodJWT},
		},
		{
			name: "username-claim-missing", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"sub": nil}),
			wantErr: ErrBadCredentials, wantText: `token has no "sub" claim`,
		},
		{
			name: "username-claim-not-string", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"sub": 42}),
			wantErr: ErrBadCredentials, wantText: `claim "sub" is not a string`,
		},
		{
			name: "username-claim-with-nul", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"sub": "a\x00b"}),
			wantErr: ErrBadCredentials, wantText: "U+0000",
		},
		{
			name: "expired", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"exp": jwtTestNow.Add(-time.Minute).Unix()}),
			wantErr: ErrBadCredentials, wantText: "token expired at 2023-11-14T22:12:20Z",
		},
		{
			name: "expired-within-leeway", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims: withClaims(map[string]any{"exp": jwtTestNow.Add(-10 * time.Second).Unix()}),
			want:   Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "expired-with-shorter-leeway", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:     func(c *JWTConfig) { c.Leeway = 5 * time.Second },
			claims:  withClaims(map[string]any{"exp": jwtTestNow.Add(-10 * time.Second).Unix()}),
			wantErr: ErrBadCredentials, wantText: "token expired",
		},
		{
			name: "exp-missing", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"exp": nil}),
			wantErr: ErrBadCredentials, wantText: "token has no exp claim",
		},
		{
			name: "exp-missing-allowed", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:    func(c *JWTConfig) { c.AllowMissingExp = true },
			claims: withClaims(map[string]any{"exp": nil}),
			want:   Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "exp-not-number", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"exp": "tomorrow"}),
			wantErr: ErrBadCredentials, wantText: "claim exp is not a number",
		},
		{
			name: "exp-out-of-range", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"exp": json.Number("1e300")}),
			wantErr: ErrBadCredentials, wantText: "claim exp is out of range",
		},
		{
			name: "exp-fractional", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims: withClaims(map[string]any{"exp": json.Number("1700000100.5")}),
			want:   Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "not-yet-valid", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"nbf": jwtTestNow.Add(time.Minute).Unix()}),
			wantErr: ErrBadCredentials, wantText: "token is not valid before 2023-11-14T22:14:20Z",
		},
		{
			name: "nbf-within-leeway", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims: withClaims(map[string]any{"nbf": jwtTestNow.Add(20 * time.Second).Unix()}),
			want:   Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "issued-in-future", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"iat": jwtTestNow.Add(time.Minute).Unix()}),
			wantErr: ErrBadCredentials, wantText: "token is issued in the future",
		},
		{
			name: "max-lifetime-exceeded", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:     func(c *JWTConfig) { c.MaxLifetime = 30 * time.Minute },
			claims:  validClaims(),
			wantErr: ErrBadCredentials, wantText: "token lifetime 1h1m0s exceeds the maximum 30m0s",
		},
		{
			name: "max-lifetime-ok", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:    func(c *JWTConfig) { c.MaxLifetime = 2 * time.Hour },
			claims: validClaims(),
			want:   Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "max-lifetime-from-nbf", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:     func(c *JWTConfig) { c.MaxLifetime = 30 * time.Minute },
			claims:  withClaims(map[string]any{"iat": nil, "nbf": jwtTestNow.Add(-time.Hour).Unix()}),
			wantErr: ErrBadCredentials, wantText: "token lifetime 2h0m0s exceeds",
		},
		{
			name: "max-lifetime-without-iat-or-nbf", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:     func(c *JWTConfig) { c.MaxLifetime = 2 * time.Hour },
			claims:  withClaims(map[string]any{"iat": nil}),
			wantErr: ErrBadCredentials, wantText: "neither iat nor nbf",
		},
		{
			name: "max-lifetime-without-exp", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:     func(c *JWTConfig) { c.MaxLifetime = 2 * time.Hour; c.AllowMissingExp = true },
			claims:  withClaims(map[string]any{"exp": nil}),
			wantErr: ErrBadCredentials, wantText: "no exp claim, and a maximum lifetime is set",
		},
		{
			name: "issuer-matches", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:    func(c *JWTConfig) { c.Issuer = "https://idp.example" },
			claims: withClaims(map[string]any{"iss": "https://idp.example"}),
			want:   Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "issuer-differs", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:     func(c *JWTConfig) { c.Issuer = "https://idp.example" },
			claims:  withClaims(map[string]any{"iss": "https://evil.example"}),
			wantErr: ErrBadCredentials, wantText: `issuer "https://evil.example" is not "https://idp.example"`,
		},
		{
			name: "issuer-missing", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:     func(c *JWTConfig) { c.Issuer = "https://idp.example" },
			claims:  validClaims(),
			wantErr: ErrBadCredentials, wantText: "no iss claim",
		},
		{
			name: "audience-string", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:    func(c *JWTConfig) { c.Audience = "starling" },
			claims: withClaims(map[string]any{"aud": "starling"}),
			want:   Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "audience-array", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:    func(c *JWTConfig) { c.Audience = "starling" },
			claims: withClaims(map[string]any{"aud": []string{"other", "starling"}}),
			want:   Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "audience-differs", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:     func(c *JWTConfig) { c.Audience = "starling" },
			claims:  withClaims(map[string]any{"aud": []string{"other"}}),
			wantErr: ErrBadCredentials, wantText: `aud claim does not include "starling"`,
		},
		{
			name: "audience-missing", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg:     func(c *JWTConfig) { c.Audience = "starling" },
			claims:  validClaims(),
			wantErr: ErrBadCredentials, wantText: "aud claim does not include",
		},
		{
			name: "wrong-hmac-secret", keys: []Key{hsKey}, header: hs, claims: validClaims(), sign: hmacSigner(keys.otherSecret),
			wantErr: ErrBadCredentials, wantText: `signature does not verify with the HS256 key "hs"`,
		},
		{
			name: "wrong-rsa-key", keys: []Key{rsKey}, header: rs, claims: validClaims(), sign: rsaSigner(keys.otherRSA),
			wantErr: ErrBadCredentials, wantText: "signature does not verify",
		},
		{
			name: "wrong-ec-key", keys: []Key{esKey}, header: es, claims: validClaims(), sign: ecSigner(keys.otherEC),
			wantErr: ErrBadCredentials, wantText: "signature does not verify",
		},
		{
			// The key is an HMAC key whose secret is the RSA public key's
			// bytes: an RS256 token must not be checked against it.
			name:    "rs256-token-on-hs256-key-of-rsa-bytes",
			keys:    []Key{{ID: "confused", Alg: AlgHS256, Secret: rsaDER}},
			header:  map[string]any{"alg": "RS256", "kid": "confused"},
			claims:  validClaims(),
			sign:    rsaSigner(keys.rsa),
			wantErr: ErrBadCredentials, wantText: `token alg RS256 does not match the HS256 key "confused"`,
		},
		{
			// The classic attack: HS256 signed with the public key an RS256
			// verifier holds.
			name:    "hs256-token-signed-with-rsa-public-key",
			keys:    []Key{rsKey},
			header:  hs,
			claims:  validClaims(),
			sign:    hmacSigner(rsaPEM),
			wantErr: ErrBadCredentials, wantText: `token alg HS256 does not match the RS256 key "rs"`,
		},
		{
			name: "hs256-token-signed-with-rsa-der", keys: []Key{rsKey}, header: hs, claims: validClaims(), sign: hmacSigner(rsaDER),
			wantErr: ErrBadCredentials, wantText: "does not match the RS256 key",
		},
		{
			name: "alg-none", keys: []Key{hsKey}, header: map[string]any{"alg": "none"}, claims: validClaims(), sign: noSigner,
			wantErr: ErrBadCredentials, wantText: "unsigned token (alg none) is not accepted",
		},
		{
			name: "alg-none-capitalized", keys: []Key{hsKey}, header: map[string]any{"alg": "None"}, claims: validClaims(), sign: noSigner,
			wantErr: ErrBadCredentials, wantText: `alg "None" is not accepted`,
		},
		{
			name: "alg-hs512", keys: []Key{hsKey}, header: map[string]any{"alg": "HS512"}, claims: validClaims(), sign: hmacSigner(keys.secret),
			wantErr: ErrBadCredentials, wantText: `alg "HS512" is not accepted`,
		},
		{
			name: "alg-missing", keys: []Key{hsKey}, header: map[string]any{"typ": "JWT"}, claims: validClaims(), sign: hmacSigner(keys.secret),
			wantErr: ErrBadCredentials, wantText: "JOSE header has no alg",
		},
		{
			name: "alg-not-string", keys: []Key{hsKey}, header: map[string]any{"alg": 256}, claims: validClaims(), sign: hmacSigner(keys.secret),
			wantErr: ErrBadCredentials, wantText: "malformed JOSE header: alg is not a string",
		},
		{
			name: "alg-member-uppercase", keys: []Key{hsKey}, header: map[string]any{"ALG": "HS256"}, claims: validClaims(), sign: hmacSigner(keys.secret),
			wantErr: ErrBadCredentials, wantText: "JOSE header has no alg",
		},
		{
			name: "kid-not-string", keys: []Key{hsKey}, header: map[string]any{"alg": "HS256", "kid": 1}, claims: validClaims(), sign: hmacSigner(keys.secret),
			wantErr: ErrBadCredentials, wantText: "malformed JOSE header: kid is not a string",
		},
		{
			name: "crit-header", keys: []Key{hsKey}, header: map[string]any{"alg": "HS256", "crit": []string{"exp"}}, claims: validClaims(),
			sign:    hmacSigner(keys.secret),
			wantErr: ErrBadCredentials, wantText: "crit",
		},
		{
			name: "kid-selects-key", keys: []Key{hsKey, rsKey, esKey}, header: map[string]any{"alg": "ES256", "kid": "es"},
			claims: validClaims(), sign: ecSigner(keys.ec),
			want: Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "kid-unknown", keys: []Key{hsKey, rsKey}, header: map[string]any{"alg": "HS256", "kid": "nope"},
			claims: validClaims(), sign: hmacSigner(keys.secret),
			wantErr: ErrBadCredentials, wantText: `no key has kid "nope"`,
		},
		{
			name: "kid-missing-with-many-keys", keys: []Key{hsKey, rsKey}, header: hs,
			claims: validClaims(), sign: hmacSigner(keys.secret),
			wantErr: ErrBadCredentials, wantText: "token has no kid, and 2 keys are configured",
		},
		{
			name: "kid-of-other-alg", keys: []Key{hsKey, rsKey}, header: map[string]any{"alg": "HS256", "kid": "rs"},
			claims: validClaims(), sign: hmacSigner(keys.secret),
			wantErr: ErrBadCredentials, wantText: `token alg HS256 does not match the RS256 key "rs"`,
		},
		{
			name: "groups-roles-acl", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims: withClaims(map[string]any{
				"groups": []string{"plant-a", "operators"},
				"roles":  []string{"reader"},
				"acl": []map[string]string{
					{"action": "publish", "permission": "allow", "topic": "devices/%u/#"},
					{"action": "subscribe", "permission": "deny", "topic": "secret/#"},
				},
			}),
			want: Identity{
				Username: "alice", Method: MethodJWT,
				Groups: []string{"plant-a", "operators"},
				Roles:  []string{"reader"},
				Rules: []Rule{
					{Action: ActionPublish, Permission: Allow, Topic: "devices/%u/#"},
					{Action: ActionSubscribe, Permission: Deny, Topic: "secret/#"},
				},
			},
		},
		{
			name: "custom-group-and-role-claims", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg: func(c *JWTConfig) { c.GroupsClaim = "teams"; c.RolesClaim = "perms" },
			claims: withClaims(map[string]any{
				"groups": []string{"ignored"}, "teams": []string{"t1"}, "perms": []string{"p1"},
			}),
			want: Identity{Username: "alice", Method: MethodJWT, Groups: []string{"t1"}, Roles: []string{"p1"}},
		},
		{
			name: "claims-turned-off", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			cfg: func(c *JWTConfig) { c.GroupsClaim, c.RolesClaim, c.ACLClaim = JWTClaimOff, JWTClaimOff, JWTClaimOff },
			claims: withClaims(map[string]any{
				"groups": []string{"g"}, "roles": []string{"r"},
				"acl": []map[string]string{{"action": "all", "permission": "allow", "topic": "#"}},
			}),
			want: Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "null-groups", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims: withClaims(map[string]any{"groups": json.RawMessage("null")}),
			want:   Identity{Username: "alice", Method: MethodJWT},
		},
		{
			name: "groups-not-array", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"groups": "admins"}),
			wantErr: ErrBadCredentials, wantText: `claim "groups" is not an array of strings`,
		},
		{
			name: "roles-element-not-string", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"roles": []any{"reader", 7}}),
			wantErr: ErrBadCredentials, wantText: `claim "roles" element 1 is not a non-empty string`,
		},
		{
			name: "roles-element-empty", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"roles": []string{""}}),
			wantErr: ErrBadCredentials, wantText: `claim "roles" element 0 is not a non-empty string`,
		},
		{
			name: "acl-invalid-action", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims: withClaims(map[string]any{
				"acl": []map[string]string{{"action": "read", "permission": "allow", "topic": "a/b"}},
			}),
			wantErr: ErrInvalidRule, wantText: `claim "acl" element 0`,
		},
		{
			name: "acl-invalid-topic", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims: withClaims(map[string]any{
				"acl": []map[string]string{
					{"action": "all", "permission": "allow", "topic": "ok/#"},
					{"action": "all", "permission": "allow", "topic": "a/#/b"},
				},
			}),
			wantErr: ErrInvalidRule, wantText: `claim "acl" element 1`,
		},
		{
			name: "acl-unknown-member", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims: withClaims(map[string]any{
				"acl": []map[string]string{{"action": "all", "perm": "allow", "topic": "a"}},
			}),
			wantErr: ErrBadCredentials, wantText: `unknown member "perm"`,
		},
		{
			name: "acl-member-not-string", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims: withClaims(map[string]any{
				"acl": []map[string]any{{"action": "all", "permission": true, "topic": "a"}},
			}),
			wantErr: ErrBadCredentials, wantText: `member "permission" is not a string`,
		},
		{
			name: "acl-not-array", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"acl": map[string]string{"topic": "a"}}),
			wantErr: ErrBadCredentials, wantText: `claim "acl" is not an array of rule objects`,
		},
		{
			name: "acl-element-not-object", keys: []Key{hsKey}, header: hs, sign: hmacSigner(keys.secret),
			claims:  withClaims(map[string]any{"acl": []string{"allow all #"}}),
			wantErr: ErrBadCredentials, wantText: `claim "acl" element 0 is not an object`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := JWTConfig{Keys: tc.keys}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			a := newTestJWTAuthenticator(t, cfg)
			token := makeJWT(t, tc.header, tc.claims, tc.sign)

			id, err := a.Authenticate(context.Background(), Request{ClientID: "c1", Username: tc.username, Password: []byte(token)})

			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if !identitiesEqual(id, tc.want) {
					t.Fatalf("identity = %+v, want %+v", id, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if !errors.Is(err, ErrBadCredentials) {
				t.Errorf("error %v does not wrap ErrBadCredentials", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not contain %q", err, tc.wantText)
			}
			assertNoTokenInError(t, err, token)
		})
	}
}

func TestJWTAuthenticator_ExpiresIsExpPlusLeeway(t *testing.T) {
	keys := testKeys()
	for _, tc := range []struct {
		name   string
		cfg    JWTConfig
		claims map[string]any
		want   time.Time
	}{
		{"default-leeway", JWTConfig{}, validClaims(), jwtTestNow.Add(time.Hour + DefaultJWTLeeway)},
		{"leeway-1s", JWTConfig{Leeway: time.Second}, validClaims(), jwtTestNow.Add(time.Hour + time.Second)},
		{"fractional-exp", JWTConfig{Leeway: time.Second}, withClaims(map[string]any{"exp": float64(jwtTestNow.Unix()) + 2.5}),
			jwtTestNow.Add(3500 * time.Millisecond)},
		{"no-exp-allowed", JWTConfig{AllowMissingExp: true}, withClaims(map[string]any{"exp": nil}), time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Keys = []Key{{Alg: AlgHS256, Secret: keys.secret}}
			a := newTestJWTAuthenticator(t, cfg)
			token := makeJWT(t, map[string]any{"alg": "HS256"}, tc.claims, hmacSigner(keys.secret))
			id, err := a.Authenticate(context.Background(), Request{ClientID: "c1", Password: []byte(token)})
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if !id.Expires.Equal(tc.want) {
				t.Errorf("Expires = %v, want %v", id.Expires, tc.want)
			}
		})
	}
}

func identitiesEqual(a, b Identity) bool {
	return a.Username == b.Username && a.Method == b.Method && a.Version == b.Version &&
		slices.Equal(a.Groups, b.Groups) && slices.Equal(a.Roles, b.Roles) && slices.Equal(a.Rules, b.Rules)
}

// assertNoTokenInError fails if the error quotes the token or any of its
// three parts.
func assertNoTokenInError(t *testing.T, err error, token string) {
	t.Helper()
	msg := err.Error()
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 8 && strings.Contains(msg, part) {
			t.Errorf("error %q contains a part of the token", msg)
		}
	}
}

func TestJWTAuthenticator_NotAJWT(t *testing.T) {
	keys := testKeys()
	a := newTestJWTAuthenticator(t, JWTConfig{Keys: []Key{{Alg: AlgHS256, Secret: keys.secret}}})
	enc := base64.RawURLEncoding.EncodeToString

	tests := []struct {
		name     string
		password string
	}{
		{"empty", ""},
		{"plain-password", "hunter2"},
		{"three-short-parts", "a.b.c"},
		{"three-words", "abc.def.ghi"},
		{"four-parts", enc([]byte(`{"alg":"HS256"}`)) + ".e30.sig.x"},
		{"two-parts", enc([]byte(`{"alg":"HS256"}`)) + ".e30"},
		{"empty-header", ".e30.sig"},
		{"empty-payload", enc([]byte(`{"alg":"HS256"}`)) + "..sig"},
		{"padding", enc([]byte(`{"alg":"HS256"}`)) + "=.e30.sig"},
		{"not-base64url", "ey+J.e30.sig"},
		{"header-not-json", enc([]byte("hello world")) + ".e30.sig"},
		{"header-json-array", enc([]byte(`["alg"]`)) + ".e30.sig"},
		{"header-truncated-json", enc([]byte(`{"alg":"HS`)) + ".e30.sig"},
		{"spaces", "my pass.word.here"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Authenticate(context.Background(), Request{Username: "alice", Password: []byte(tc.password)})
			if !errors.Is(err, ErrNoMatch) {
				t.Fatalf("error = %v, want ErrNoMatch", err)
			}
		})
	}
}

func TestJWTAuthenticator_MalformedJWT(t *testing.T) {
	keys := testKeys()
	a := newTestJWTAuthenticator(t, JWTConfig{Keys: []Key{{Alg: AlgHS256, Secret: keys.secret}}})
	valid := makeJWT(t, map[string]any{"alg": "HS256"}, validClaims(), hmacSigner(keys.secret))
	parts := strings.Split(valid, ".")
	enc := base64.RawURLEncoding.EncodeToString

	tests := []struct {
		name     string
		token    string
		wantText string
	}{
		{"claims-tampered", parts[0] + "." + enc([]byte(`{"sub":"root","exp":9999999999}`)) + "." + parts[2], "signature does not verify"},
		{"claims-not-json", parts[0] + "." + enc([]byte("not json")) + "." + parts[2], "malformed token"},
		{"signature-empty", parts[0] + "." + parts[1] + ".", "signature does not verify"},
		{"signature-truncated", parts[0] + "." + parts[1] + "." + parts[2][:12], "signature does not verify"},
		{"signature-bad-base64url", parts[0] + "." + parts[1] + "." + parts[2][:10], "malformed token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Authenticate(context.Background(), Request{Password: []byte(tc.token)})
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("error = %v, want ErrBadCredentials", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not contain %q", err, tc.wantText)
			}
			assertNoTokenInError(t, err, tc.token)
		})
	}
}

func TestJWTAuthenticator_ConnectReason(t *testing.T) {
	keys := testKeys()
	a := newTestJWTAuthenticator(t, JWTConfig{Keys: []Key{{Alg: AlgHS256, Secret: keys.secret}}})
	token := makeJWT(t, map[string]any{"alg": "none"}, validClaims(), noSigner)

	_, err := a.Authenticate(context.Background(), Request{Password: []byte(token)})

	if got := ConnectReason(err); got != ConnectReason(ErrBadCredentials) {
		t.Fatalf("ConnectReason = %v, want %v", got, ConnectReason(ErrBadCredentials))
	}
}

func TestJWTAuthenticator_InChain(t *testing.T) {
	keys := testKeys()
	a := newTestJWTAuthenticator(t, JWTConfig{Keys: []Key{{Alg: AlgHS256, Secret: keys.secret}}})
	fallback := Anonymous{Roles: []string{"guest"}}
	chain := Chain{a, fallback}

	token := makeJWT(t, map[string]any{"alg": "HS256"}, validClaims(), hmacSigner(keys.secret))
	id, err := chain.Authenticate(context.Background(), Request{Password: []byte(token)})
	if err != nil {
		t.Fatalf("JWT through chain: %v", err)
	}
	if id.Method != MethodJWT {
		t.Errorf("Method = %q, want %q", id.Method, MethodJWT)
	}

	id, err = chain.Authenticate(context.Background(), Request{})
	if err != nil {
		t.Fatalf("anonymous through chain: %v", err)
	}
	if id.Method != MethodAnonymous {
		t.Errorf("Method = %q, want %q", id.Method, MethodAnonymous)
	}
}

func TestJWTAuthenticator_KeysCopied(t *testing.T) {
	keys := testKeys()
	secret := slices.Clone(keys.secret)
	a := newTestJWTAuthenticator(t, JWTConfig{Keys: []Key{{Alg: AlgHS256, Secret: secret}}})
	clear(secret)

	token := makeJWT(t, map[string]any{"alg": "HS256"}, validClaims(), hmacSigner(keys.secret))
	if _, err := a.Authenticate(context.Background(), Request{Password: []byte(token)}); err != nil {
		t.Fatalf("Authenticate after the caller zeroed its secret: %v", err)
	}
}

func TestJWTConfig_Validate(t *testing.T) {
	keys := testKeys()
	hsKey := Key{Alg: AlgHS256, Secret: keys.secret}

	tests := []struct {
		name     string
		cfg      JWTConfig
		wantText string // empty for a valid config
	}{
		{"valid", JWTConfig{Keys: []Key{hsKey}}, ""},
		{"no-keys", JWTConfig{}, "has no keys"},
		{"negative-leeway", JWTConfig{Keys: []Key{hsKey}, Leeway: -time.Second}, "Leeway -1s is negative"},
		{"negative-lifetime", JWTConfig{Keys: []Key{hsKey}, MaxLifetime: -time.Second}, "MaxLifetime -1s is negative"},
		{"username-claim-off", JWTConfig{Keys: []Key{hsKey}, UsernameClaim: JWTClaimOff}, "UsernameClaim cannot be turned off"},
		{"invalid-key", JWTConfig{Keys: []Key{{Alg: AlgHS256, Secret: []byte("short")}}}, "Keys[0]"},
		{"key-file-no-path", JWTConfig{KeyFiles: []KeyFile{{Alg: AlgHS256}}}, "KeyFiles[0].Path is empty"},
		{"key-file-bad-alg", JWTConfig{KeyFiles: []KeyFile{{Path: "k", Alg: "none"}}}, `KeyFiles[0].Alg "none"`},
		{"jwks-file-empty", JWTConfig{JWKSFiles: []string{""}}, "JWKSFiles[0] is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantText == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("Validate error = %v, want one containing %q", err, tc.wantText)
			}
		})
	}
}

func TestJWTAuthenticator_DuplicateKeyIDs(t *testing.T) {
	keys := testKeys()
	_, err := NewJWTAuthenticator(JWTConfig{Keys: []Key{
		{ID: "a", Alg: AlgHS256, Secret: keys.secret},
		{ID: "a", Alg: AlgES256, PublicKey: &keys.ec.PublicKey},
	}})
	if !errors.Is(err, ErrInvalidJWTKey) || !strings.Contains(err.Error(), `two keys have ID "a"`) {
		t.Fatalf("error = %v, want duplicate ID", err)
	}
}

func TestJWTAuthenticator_KeyWithoutIDAmongMany(t *testing.T) {
	keys := testKeys()
	_, err := NewJWTAuthenticator(JWTConfig{Keys: []Key{
		{ID: "a", Alg: AlgHS256, Secret: keys.secret},
		{Alg: AlgES256, PublicKey: &keys.ec.PublicKey},
	}})
	if !errors.Is(err, ErrInvalidJWTKey) || !strings.Contains(err.Error(), "has no ID") {
		t.Fatalf("error = %v, want missing ID", err)
	}
}

func TestJWTAuthenticator_ConcurrentAuthenticate(t *testing.T) {
	keys := testKeys()
	a := newTestJWTAuthenticator(t, JWTConfig{Keys: []Key{{Alg: AlgES256, PublicKey: &keys.ec.PublicKey}}})
	token := []byte(makeJWT(t, map[string]any{"alg": "ES256"}, validClaims(), ecSigner(keys.ec)))

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if _, err := a.Authenticate(context.Background(), Request{Password: token}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
