package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKey_Validate(t *testing.T) {
	keys := testKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pemPublicKey(t, &keys.rsa.PublicKey)

	tests := []struct {
		name     string
		key      Key
		wantText string // empty for a valid key
	}{
		{"hs256", Key{Alg: AlgHS256, Secret: keys.secret}, ""},
		{"rs256", Key{Alg: AlgRS256, PublicKey: &keys.rsa.PublicKey}, ""},
		{"es256", Key{Alg: AlgES256, PublicKey: &keys.ec.PublicKey}, ""},
		{"alg-none", Key{ID: "k", Alg: "none", Secret: keys.secret}, `algorithm "none" is not HS256, RS256 or ES256`},
		{"alg-empty", Key{ID: "k", Secret: keys.secret}, `algorithm "" is not`},
		{"hs256-short", Key{Alg: AlgHS256, Secret: keys.secret[:31]}, "secret has 31 bytes, want at least 32"},
		{"hs256-with-public-key", Key{Alg: AlgHS256, Secret: keys.secret, PublicKey: &keys.rsa.PublicKey}, "has a PublicKey"},
		{"hs256-pem-secret", Key{Alg: AlgHS256, Secret: rsaPEM}, "secret is PEM text"},
		{"rs256-with-secret", Key{Alg: AlgRS256, Secret: keys.secret, PublicKey: &keys.rsa.PublicKey}, "has a Secret"},
		{"rs256-ec-key", Key{Alg: AlgRS256, PublicKey: &keys.ec.PublicKey}, "PublicKey is *ecdsa.PublicKey, want *rsa.PublicKey"},
		{"rs256-nil", Key{Alg: AlgRS256}, "PublicKey is <nil>"},
		{"rs256-1024", Key{Alg: AlgRS256, PublicKey: &small.PublicKey}, "1024 bits, want at least 2048"},
		{"rs256-private-key", Key{Alg: AlgRS256, PublicKey: keys.rsa}, "PublicKey is *rsa.PrivateKey"},
		{"es256-rsa-key", Key{Alg: AlgES256, PublicKey: &keys.rsa.PublicKey}, "want *ecdsa.PublicKey"},
		{"es256-p384", Key{Alg: AlgES256, PublicKey: &p384.PublicKey}, "curve is P-384, want P-256"},
		{"es256-with-secret", Key{Alg: AlgES256, Secret: keys.secret, PublicKey: &keys.ec.PublicKey}, "has a Secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.key.Validate()
			if tc.wantText == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidJWTKey) {
				t.Fatalf("error = %v, want ErrInvalidJWTKey", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not contain %q", err, tc.wantText)
			}
		})
	}
}

func TestKey_PrintHidesSecret(t *testing.T) {
	secret := []byte("do-not-print-this-secret-0123456")
	k := Key{ID: "k1", Alg: AlgHS256, Secret: secret}
	cfg := JWTConfig{Keys: []Key{k}}

	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, value := range []any{k, &k, cfg} {
			out := fmt.Sprintf(format, value)
			if strings.Contains(out, string(secret)) || strings.Contains(out, fmt.Sprint(secret)) {
				t.Errorf("Sprintf(%q, %T) = %q contains the secret", format, value, out)
			}
		}
	}
	if got, want := k.String(), `HS256 key "k1"`; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

// writeFile writes data to name in dir and returns the path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func selfSignedPEM(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer"},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Unix(4_000_000_000, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestJWTAuthenticator_KeyFiles(t *testing.T) {
	keys := testKeys()
	dir := t.TempDir()
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&keys.rsa.PublicKey)})

	tests := []struct {
		name   string
		file   KeyFile
		data   []byte
		header map[string]any
		sign   signer
	}{
		{"pkix-rsa", KeyFile{ID: "r", Alg: AlgRS256}, pemPublicKey(t, &keys.rsa.PublicKey), map[string]any{"alg": "RS256"}, rsaSigner(keys.rsa)},
		{"pkcs1-rsa", KeyFile{ID: "r", Alg: AlgRS256}, pkcs1, map[string]any{"alg": "RS256"}, rsaSigner(keys.rsa)},
		{"pkix-ec", KeyFile{ID: "e", Alg: AlgES256}, pemPublicKey(t, &keys.ec.PublicKey), map[string]any{"alg": "ES256"}, ecSigner(keys.ec)},
		{"certificate-ec", KeyFile{ID: "e", Alg: AlgES256}, selfSignedPEM(t, keys.ec), map[string]any{"alg": "ES256", "kid": "e"}, ecSigner(keys.ec)},
		{"secret", KeyFile{ID: "h", Alg: AlgHS256}, keys.secret, map[string]any{"alg": "HS256"}, hmacSigner(keys.secret)},
		{"secret-with-newline", KeyFile{ID: "h", Alg: AlgHS256}, append(append([]byte{}, keys.secret...), '\n'), map[string]any{"alg": "HS256"}, hmacSigner(keys.secret)},
		{"secret-with-crlf", KeyFile{ID: "h", Alg: AlgHS256}, append(append([]byte{}, keys.secret...), '\r', '\n'), map[string]any{"alg": "HS256"}, hmacSigner(keys.secret)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.file.Path = writeFile(t, dir, tc.name, tc.data)
			a := newTestJWTAuthenticator(t, JWTConfig{KeyFiles: []KeyFile{tc.file}, ReloadInterval: -1})
			token := makeJWT(t, tc.header, validClaims(), tc.sign)

			if _, err := a.Authenticate(context.Background(), Request{Password: []byte(token)}); err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
		})
	}
}

func TestJWTAuthenticator_KeyFileErrors(t *testing.T) {
	keys := testKeys()
	dir := t.TempDir()
	ecDER, err := x509.MarshalECPrivateKey(keys.ec)
	if err != nil {
		t.Fatal(err)
	}
	ecPrivatePEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})
	rsaPEM := pemPublicKey(t, &keys.rsa.PublicKey)
	twoKeys := append(append([]byte{}, rsaPEM...), pemPublicKey(t, &keys.otherRSA.PublicKey)...)

	tests := []struct {
		name     string
		alg      string
		data     []byte
		wantText string
	}{
		{"private-key", AlgES256, ecPrivatePEM, `contains a private key (PEM block "EC PRIVATE KEY")`},
		{"no-pem", AlgRS256, []byte("not pem"), "no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM block found"},
		{"two-keys", AlgRS256, twoKeys, "contains 2 public keys"},
		{"wrong-key-type", AlgES256, rsaPEM, "want *ecdsa.PublicKey"},
		{"pem-as-secret", AlgHS256, rsaPEM, "file is PEM, but an HS256 key file contains the raw secret"},
		{"short-secret", AlgHS256, []byte("short\n"), "secret has 5 bytes"},
		{"broken-der", AlgRS256, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}), "parse PUBLIC KEY block"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, tc.name, tc.data)

			_, err := NewJWTAuthenticator(JWTConfig{KeyFiles: []KeyFile{{Path: path, ID: "k", Alg: tc.alg}}, ReloadInterval: -1})

			if !errors.Is(err, ErrInvalidJWTKey) {
				t.Fatalf("error = %v, want ErrInvalidJWTKey", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not contain %q", err, tc.wantText)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestJWTAuthenticator_MissingKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.pem")

	_, err := NewJWTAuthenticator(JWTConfig{KeyFiles: []KeyFile{{Path: path, Alg: AlgRS256}}})

	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error = %v, want os.ErrNotExist", err)
	}
}
