package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the logger of the polling
// goroutine and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// authenticateKid signs a valid HS256 token with secret under kid and
// returns Authenticate's error.
func authenticateKid(t *testing.T, a *JWTAuthenticator, kid string, secret []byte) error {
	t.Helper()
	token := makeJWT(t, map[string]any{"alg": "HS256", "kid": kid}, validClaims(), hmacSigner(secret))
	_, err := a.Authenticate(context.Background(), Request{Password: []byte(token)})
	return err
}

func TestJWTAuthenticator_Reload(t *testing.T) {
	keys := testKeys()
	dir := t.TempDir()
	path := writeFile(t, dir, "jwks.json", jwksJSON(t, jwkOct("h1", keys.secret)))
	var logs syncBuffer
	a := newTestJWTAuthenticator(t, JWTConfig{
		JWKSFiles:      []string{path},
		ReloadInterval: -1,
		Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err := authenticateKid(t, a, "h1", keys.secret); err != nil {
		t.Fatalf("first key: %v", err)
	}

	// Unchanged files: nothing happens.
	if err := a.Reload(); err != nil {
		t.Fatalf("Reload of unchanged files: %v", err)
	}
	if got := a.Stats().Reloads; got != 0 {
		t.Errorf("Reloads after an unchanged reload = %d, want 0", got)
	}

	// Rotation: h2 replaces h1.
	writeFile(t, dir, "jwks.json", jwksJSON(t, jwkOct("h2", keys.otherSecret)))
	if err := a.Reload(); err != nil {
		t.Fatalf("Reload after rotation: %v", err)
	}
	if err := authenticateKid(t, a, "h2", keys.otherSecret); err != nil {
		t.Errorf("new key after rotation: %v", err)
	}
	if err := authenticateKid(t, a, "h1", keys.secret); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old key after rotation: error = %v, want ErrBadCredentials", err)
	}
	if s := a.Stats(); s.Reloads != 1 || s.Keys != 1 {
		t.Errorf("Stats = %+v, want Reloads 1 and Keys 1", s)
	}

	// A broken file keeps the old keys and is counted once.
	writeFile(t, dir, "jwks.json", []byte(`{"keys":[{"kty":"oct","kid":"h3","alg":"HS256","k":"c2hvcnQ"}]}`))
	err := a.Reload()
	if !errors.Is(err, ErrInvalidJWTKey) {
		t.Fatalf("Reload of a broken file: error = %v, want ErrInvalidJWTKey", err)
	}
	if err2 := a.Reload(); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second Reload of the broken file = %v, want %v", err2, err)
	}
	if err := authenticateKid(t, a, "h2", keys.otherSecret); err != nil {
		t.Errorf("old key after a failed reload: %v", err)
	}
	if s := a.Stats(); s.Failures != 1 {
		t.Errorf("Failures = %d, want 1", s.Failures)
	}
	if a.LastError() == nil {
		t.Error("LastError = nil after a failed reload")
	}
	if n := strings.Count(logs.String(), "JWT key reload failed"); n != 1 {
		t.Errorf("reload failure logged %d times, want 1", n)
	}

	// Restoring the loaded contents clears the error.
	writeFile(t, dir, "jwks.json", jwksJSON(t, jwkOct("h2", keys.otherSecret)))
	if err := a.Reload(); err != nil {
		t.Fatalf("Reload after the file was restored: %v", err)
	}
	if err := a.LastError(); err != nil {
		t.Errorf("LastError after the file was restored = %v, want nil", err)
	}

	// A missing file keeps the old keys too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reload of a missing file: error = %v, want os.ErrNotExist", err)
	}
	if err := authenticateKid(t, a, "h2", keys.otherSecret); err != nil {
		t.Errorf("old key after the file vanished: %v", err)
	}

	for _, secret := range [][]byte{keys.secret, keys.otherSecret} {
		if strings.Contains(logs.String(), string(secret)) || strings.Contains(logs.String(), base64URL(secret)) {
			t.Errorf("log contains a secret:\n%s", logs.String())
		}
	}
}

func TestJWTAuthenticator_Poll(t *testing.T) {
	keys := testKeys()
	dir := t.TempDir()
	path := writeFile(t, dir, "secret", keys.secret)
	a := newTestJWTAuthenticator(t, JWTConfig{
		KeyFiles:       []KeyFile{{Path: path, ID: "h", Alg: AlgHS256}},
		ReloadInterval: 10 * time.Millisecond,
	})
	if err := authenticateKid(t, a, "h", keys.secret); err != nil {
		t.Fatalf("first secret: %v", err)
	}

	writeFile(t, dir, "secret", keys.otherSecret)

	deadline := time.Now().Add(5 * time.Second)
	for authenticateKid(t, a, "h", keys.otherSecret) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the poller did not load the new secret within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := authenticateKid(t, a, "h", keys.secret); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old secret after the poll: error = %v, want ErrBadCredentials", err)
	}
}

func TestJWTAuthenticator_CloseIdempotent(t *testing.T) {
	keys := testKeys()
	path := writeFile(t, t.TempDir(), "secret", keys.secret)
	a, err := NewJWTAuthenticator(JWTConfig{
		KeyFiles:       []KeyFile{{Path: path, Alg: AlgHS256}},
		ReloadInterval: time.Hour,
		Now:            func() time.Time { return jwtTestNow },
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := a.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := authenticateKid(t, a, "", keys.secret); err != nil {
		t.Errorf("Authenticate after Close: %v", err)
	}
}

func TestJWTAuthenticator_ReloadDuringAuthenticate(t *testing.T) {
	keys := testKeys()
	dir := t.TempDir()
	both := jwksJSON(t, jwkOct("h1", keys.secret), jwkOct("h2", keys.otherSecret))
	path := writeFile(t, dir, "jwks.json", both)
	a := newTestJWTAuthenticator(t, JWTConfig{JWKSFiles: []string{path}, ReloadInterval: -1})

	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := authenticateKid(t, a, "h1", keys.secret); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range 20 {
		// Alternate the order of the keys so that every write changes the
		// file while h1 stays valid.
		data := both
		if i%2 == 0 {
			data = jwksJSON(t, jwkOct("h2", keys.otherSecret), jwkOct("h1", keys.secret))
		}
		writeFile(t, dir, "jwks.json", data)
		if err := a.Reload(); err != nil {
			t.Errorf("Reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
