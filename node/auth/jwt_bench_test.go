package auth

import (
	"context"
	"testing"
)

// benchmarkJWT verifies one valid token per iteration.
func benchmarkJWT(b *testing.B, key Key, header map[string]any, sign signer) {
	a := newTestJWTAuthenticator(b, JWTConfig{Keys: []Key{key}})
	claims := withClaims(map[string]any{
		"groups": []string{"plant-a"},
		"acl":    []map[string]string{{"action": "publish", "permission": "allow", "topic": "devices/%u/#"}},
	})
	req := Request{ClientID: "c1", Username: "alice", Password: []byte(makeJWT(b, header, claims, sign))}
	ctx := context.Background()

	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWTAuthenticator_HS256(b *testing.B) {
	keys := testKeys()
	benchmarkJWT(b, Key{ID: "h", Alg: AlgHS256, Secret: keys.secret}, map[string]any{"alg": "HS256", "kid": "h"}, hmacSigner(keys.secret))
}

func BenchmarkJWTAuthenticator_ES256(b *testing.B) {
	keys := testKeys()
	benchmarkJWT(b, Key{ID: "e", Alg: AlgES256, PublicKey: &keys.ec.PublicKey}, map[string]any{"alg": "ES256", "kid": "e"}, ecSigner(keys.ec))
}

func BenchmarkJWTAuthenticator_RS256(b *testing.B) {
	keys := testKeys()
	benchmarkJWT(b, Key{ID: "r", Alg: AlgRS256, PublicKey: &keys.rsa.PublicKey}, map[string]any{"alg": "RS256", "kid": "r"}, rsaSigner(keys.rsa))
}
