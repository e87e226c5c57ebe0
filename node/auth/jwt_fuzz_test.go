package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fuzzJWTSecret is the HS256 secret of the fuzz targets. The seed files in
// testdata/fuzz/FuzzJWTAuthenticate are signed with it at jwtTestNow.
var fuzzJWTSecret = []byte("0123456789abcdef0123456789abcdef")

func newFuzzJWTAuthenticator(f *testing.F) *JWTAuthenticator {
	a, err := NewJWTAuthenticator(JWTConfig{
		Keys:        []Key{{Alg: AlgHS256, Secret: fuzzJWTSecret}},
		Issuer:      "https://idp.example",
		MaxLifetime: 24 * time.Hour,
		Now:         func() time.Time { return jwtTestNow },
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	return a
}

// checkJWTResult checks the invariants of any Authenticate result.
func checkJWTResult(t *testing.T, id Identity, err error, password string) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrNoMatch) && !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("error %v is neither ErrNoMatch nor ErrBadCredentials", err)
		}
		if parts := strings.Split(password, "."); len(parts) == 3 && len(parts[2]) >= 8 && strings.Contains(err.Error(), parts[2]) {
			t.Fatalf("error %q contains the signature", err)
		}
		return
	}
	if id.Username == "" || id.Method != MethodJWT {
		t.Fatalf("accepted identity %+v has no user name or the wrong method", id)
	}
	for _, r := range id.Rules {
		if err := ParseRule(r); err != nil {
			t.Fatalf("accepted identity has invalid rule %+v: %v", r, err)
		}
	}
}

// FuzzJWTAuthenticate feeds arbitrary passwords to Authenticate. Almost all
// fail the signature check; the seeds reach the claim checks.
func FuzzJWTAuthenticate(f *testing.F) {
	a := newFuzzJWTAuthenticator(f)
	f.Add([]byte("hunter2"))
	f.Add([]byte("a.b.c"))
	f.Add([]byte("eyJhbGciOiJub25lIn0.e30."))
	f.Fuzz(func(t *testing.T, password []byte) {
		id, err := a.Authenticate(context.Background(), Request{Password: password})
		checkJWTResult(t, id, err, string(password))
	})
}

// FuzzJWTClaims signs an arbitrary header and claims set with the fuzz
// secret, so every input passes the signature check and reaches the header
// and claim checks.
func FuzzJWTClaims(f *testing.F) {
	a := newFuzzJWTAuthenticator(f)
	f.Add([]byte(`{"alg":"HS256"}`), []byte(`{"sub":"alice","iss":"https://idp.example","iat":1699999940,"exp":1700003600}`))
	f.Add([]byte(`{"alg":"HS256","kid":"x"}`), []byte(`{"sub":"alice"}`))
	f.Add([]byte(`{"alg":"HS256"}`), []byte(`{"sub":"alice","iss":"https://idp.example","iat":1699999940,"exp":1700003600,`+
		`"groups":["g"],"roles":["r"],"acl":[{"action":"all","permission":"allow","topic":"devices/%u/#"}]}`))
	f.Add([]byte(`{"alg":"HS256"}`), []byte(`{"sub":"alice","iss":"https://idp.example","iat":-1e15,"exp":1e15}`))
	f.Fuzz(func(t *testing.T, header, claims []byte) {
		enc := base64.RawURLEncoding
		input := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
		token := input + "." + enc.EncodeToString(hmacSigner(fuzzJWTSecret)(t, []byte(input)))

		id, err := a.Authenticate(context.Background(), Request{Password: []byte(token)})
		checkJWTResult(t, id, err, token)
	})
}

// FuzzJWTParseJWKS checks that ParseJWKS never panics, wraps every error
// in ErrInvalidJWTKey, and returns only valid keys with distinct IDs.
func FuzzJWTParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","kid":"h1","alg":"HS256","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","kid":"e1","alg":"ES256","crv":"P-256",` +
		`"x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"r1","alg":"RS256","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","alg":"RS256","use":"enc"},{"kty":"oct","alg":"HS256","k":""}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseJWKS(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidJWTKey) {
				t.Fatalf("error %v does not wrap ErrInvalidJWTKey", err)
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("ParseJWKS returned no keys and no error")
		}
		ids := make(map[string]bool)
		for _, k := range keys {
			if err := k.Validate(); err != nil {
				t.Fatalf("ParseJWKS returned an invalid key: %v", err)
			}
			if ids[k.ID] {
				t.Fatalf("ParseJWKS returned kid %q twice", k.ID)
			}
			ids[k.ID] = true
		}
	})
}
