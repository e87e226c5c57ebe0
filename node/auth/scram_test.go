package auth

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// The example exchange of RFC 7677 section 3, for user "user" with
// password "pencil".
const (
	rfcSalt        = "W22ZaJ0SNY7soEsUEjb6gQ=="
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

// scramStore returns a store with the RFC 7677 user.
func scramStore(t *testing.T) *MemStore {
	t.Helper()
	salt, err := base64.StdEncoding.DecodeString(rfcSalt)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := DeriveScramCredential([]byte("pencil"), salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	s := &MemStore{}
	if _, err := s.PutUser(context.Background(), User{Name: "user", Groups: []string{"g"}, SCRAM: cred}); err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestScramServer(store Store) *ScramServer {
	s := NewScramServer(store, []byte("0123456789abcdef0123456789abcdef"))
	s.newNonce = func() (string, error) { return rfcServerNonce, nil }
	return s
}

func TestScramServer_RFC7677Example(t *testing.T) {
	ctx := context.Background()
	s := newTestScramServer(scramStore(t))

	reply, done, err := s.Step(ctx, []byte(rfcClientFirst))
	if err != nil || done {
		t.Fatalf("client-first: done=%v err=%v", done, err)
	}
	if string(reply) != rfcServerFirst {
		t.Errorf("server-first-message:\n got %s\nwant %s", reply, rfcServerFirst)
	}

	reply, done, err = s.Step(ctx, []byte(rfcClientFinal))
	if err != nil || !done {
		t.Fatalf("client-final: done=%v err=%v", done, err)
	}
	if string(reply) != rfcServerFinal {
		t.Errorf("server-final-message:\n got %s\nwant %s", reply, rfcServerFinal)
	}
	u, ok := s.User()
	if !ok || u.Name != "user" || len(u.Groups) != 1 {
		t.Errorf("User() = %+v, %v; want user with its groups", u, ok)
	}
	if _, _, err := s.Step(ctx, []byte(rfcClientFinal)); !errors.Is(err, ErrScram) {
		t.Errorf("a third step: error = %v, want ErrScram", err)
	}
}

// clientProof computes the client-final-message for password, acting as a
// SCRAM client, given the server-first-message.
func clientProof(t *testing.T, password, clientFirstBare, serverFirst, gs2 string) string {
	t.Helper()
	var nonce, salt string
	var iter int
	for _, attr := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(attr, "r="):
			nonce = attr[2:]
		case strings.HasPrefix(attr, "s="):
			salt = attr[2:]
		case strings.HasPrefix(attr, "i="):
			for _, d := range attr[2:] {
				iter = iter*10 + int(d-'0')
			}
		}
	}
	saltBytes, err := base64.StdEncoding.DecodeString(salt)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := DeriveScramCredential([]byte(password), saltBytes, iter)
	if err != nil {
		t.Fatal(err)
	}
	without := "c=" + base64.StdEncoding.EncodeToString([]byte(gs2)) + ",r=" + nonce
	authMessage := clientFirstBare + "," + serverFirst + "," + without
	// ClientKey is not stored; recompute it from the salted password.
	clientKey := clientKeyFor(t, password, saltBytes, iter)
	if sum := sha256.Sum256(clientKey); subtle.ConstantTimeCompare(sum[:], cred.StoredKey) != 1 {
		t.Fatal("test client derived a different StoredKey")
	}
	signature := hmacSHA256(cred.StoredKey, []byte(authMessage))
	proof := make([]byte, len(signature))
	subtle.XORBytes(proof, clientKey, signature)
	return without + ",p=" + base64.StdEncoding.EncodeToString(proof)
}

func clientKeyFor(t *testing.T, password string, salt []byte, iter int) []byte {
	t.Helper()
	salted := pbkdf2SHA256(t, password, salt, iter)
	return hmacSHA256(salted, []byte("Client Key"))
}

func TestScramServer_FreshCredential(t *testing.T) {
	ctx := context.Background()
	store := &MemStore{}
	u := User{Name: "dev,1=x"}
	if err := u.SetPassword([]byte("hunter2"), testArgon2, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutUser(ctx, u); err != nil {
		t.Fatal(err)
	}

	bare := "n=" + encodeSaslname(u.Name) + ",r=abcdef"
	for _, tc := range []struct {
		name     string
		password string
		wantErr  bool
	}{
		{"right-password", "hunter2", false},
		{"wrong-password", "hunter3", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewScramServer(store, nil)
			serverFirst, _, err := s.Step(ctx, []byte("n,,"+bare))
			if err != nil {
				t.Fatal(err)
			}
			final := clientProof(t, tc.password, bare, string(serverFirst), "n,,")
			reply, done, err := s.Step(ctx, []byte(final))
			if !done {
				t.Fatal("exchange not done after client-final")
			}
			if tc.wantErr {
				if !errors.Is(err, ErrScram) || string(reply) != "e=invalid-proof" {
					t.Errorf("reply %q, error %v; want e=invalid-proof and ErrScram", reply, err)
				}
				return
			}
			if err != nil || !strings.HasPrefix(string(reply), "v=") {
				t.Errorf("reply %q, error %v; want v=", reply, err)
			}
		})
	}
}

func TestScramServer_UnknownAndDisabledUsers(t *testing.T) {
	ctx := context.Background()
	store := scramStore(t)
	disabled := User{Name: "off", Disabled: true}
	if err := disabled.SetPassword([]byte("pencil"), testArgon2, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutUser(ctx, disabled); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"nobody", "off"} {
		t.Run(name, func(t *testing.T) {
			bare := "n=" + name + ",r=abc"
			first1, _, err := newTestScramServer(store).Step(ctx, []byte("n,,"+bare))
			if err != nil {
				t.Fatalf("client-first: %v; want a server-first-message as for a real user", err)
			}
			first2, _, _ := newTestScramServer(store).Step(ctx, []byte("n,,"+bare))
			if string(first1) != string(first2) {
				t.Errorf("made-up salt changed between exchanges: %q vs %q", first1, first2)
			}
			s := newTestScramServer(store)
			serverFirst, _, _ := s.Step(ctx, []byte("n,,"+bare))
			reply, _, err := s.Step(ctx, []byte(clientProof(t, "pencil", bare, string(serverFirst), "n,,")))
			if !errors.Is(err, ErrScram) || string(reply) != "e=invalid-proof" {
				t.Errorf("reply %q, error %v; want e=invalid-proof and ErrScram", reply, err)
			}
		})
	}
}

func TestScramServer_BcryptUserHasNoScram(t *testing.T) {
	ctx := context.Background()
	store := &MemStore{}
	u := User{Name: "legacy"}
	if err := u.ImportHash("$2a$04$abcdefghijklmnopqrstuu5GHGrvEl2XSYdrDYB6SUqY8ARq5qzK2"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	_, done, err := NewScramServer(store, nil).Step(ctx, []byte("n,,n=legacy,r=abc"))
	if !done || !errors.Is(err, ErrNoScram) {
		t.Errorf("done=%v err=%v; want done and ErrNoScram", done, err)
	}
	if ConnectReason(err) != 0x8C {
		t.Errorf("ConnectReason = %#x, want 0x8C Bad authentication method", ConnectReason(err))
	}
}

func TestScramServer_BadClientFinal(t *testing.T) {
	ctx := context.Background()
	goodProof := rfcClientFinal[strings.Index(rfcClientFinal, ",p="):]
	cases := map[string]string{
		"wrong-binding": "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" + goodProof,
		"wrong-nonce":   "c=biws,r=rOprNGfwEbeRWgbNEkqO" + goodProof,
		"no-proof":      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		"short-proof":   "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
		"bad-proof":     "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=" + strings.Repeat("A", 43) + "=",
		"proof-not-b64": "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=!!",
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			s := newTestScramServer(scramStore(t))
			if _, _, err := s.Step(ctx, []byte(rfcClientFirst)); err != nil {
				t.Fatal(err)
			}
			reply, done, err := s.Step(ctx, []byte(msg))
			if !done || !errors.Is(err, ErrScram) || !strings.HasPrefix(string(reply), "e=") {
				t.Errorf("reply %q, done %v, error %v; want e=..., done and ErrScram", reply, done, err)
			}
			if _, ok := s.User(); ok {
				t.Error("User() reports success after a failed exchange")
			}
		})
	}
}

func TestParseClientFirst(t *testing.T) {
	valid := map[string]struct{ user, nonce, gs2 string }{
		"plain":          {"user", "abc", "n,,"},
		"y-flag":         {"user", "abc", "y,,"},
		"escaped-name":   {"a,b=c", "abc", "n,,"},
		"same-authzid":   {"user", "abc", "n,a=user,"},
		"with-extension": {"user", "abc", "n,,"},
	}
	inputs := map[string]string{
		"plain":          "n,,n=user,r=abc",
		"y-flag":         "y,,n=user,r=abc",
		"escaped-name":   "n,,n=a=2Cb=3Dc,r=abc",
		"same-authzid":   "n,a=user,n=user,r=abc",
		"with-extension": "n,,n=user,r=abc,x=ext",
	}
	for name, want := range valid {
		t.Run(name, func(t *testing.T) {
			cf, err := parseClientFirst(inputs[name])
			if err != nil {
				t.Fatalf("parseClientFirst: %v", err)
			}
			if cf.username != want.user || cf.nonce != want.nonce || cf.gs2Header != want.gs2 {
				t.Errorf("got user %q nonce %q gs2 %q, want %q %q %q", cf.username, cf.nonce, cf.gs2Header, want.user, want.nonce, want.gs2)
			}
		})
	}

	invalid := map[string]string{
		"empty":           "",
		"channel-binding": "p=tls-unique,,n=user,r=abc",
		"bad-flag":        "x,,n=user,r=abc",
		"no-gs2-end":      "n,",
		"other-authzid":   "n,a=admin,n=user,r=abc",
		"bad-authzid":     "n,b=user,n=user,r=abc",
		"mandatory-ext":   "n,,m=ext,n=user,r=abc",
		"no-name":         "n,,r=abc",
		"empty-name":      "n,,n=,r=abc",
		"bad-escape":      "n,,n=a=2Db,r=abc",
		"no-nonce":        "n,,n=user",
		"nonce-second":    "n,,n=user,x=1,r=abc",
		"empty-nonce":     "n,,n=user,r=",
		"nonce-space":     "n,,n=user,r=a c",
		"nul-name":        "n,,n=a\x00b,r=abc",
		"too-long":        "n,,n=user,r=" + strings.Repeat("a", maxScramMessageLen),
	}
	for name, msg := range invalid {
		t.Run(name, func(t *testing.T) {
			if _, err := parseClientFirst(msg); !errors.Is(err, ErrScram) {
				t.Errorf("parseClientFirst(%q) error = %v, want ErrScram", msg, err)
			}
		})
	}
}

func TestScramCredential_EncodeParse(t *testing.T) {
	c, err := NewScramCredential([]byte("pw"), DefaultScramIterations)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseScramCredential(c.Encode())
	if err != nil {
		t.Fatalf("ParseScramCredential(Encode()): %v", err)
	}
	if parsed.Encode() != c.Encode() {
		t.Errorf("round trip changed the encoding")
	}
	if strings.Contains(c.String(), b64.EncodeToString(c.StoredKey)) {
		t.Errorf("String shows the StoredKey: %s", c.String())
	}
	for name, s := range map[string]string{
		"no-prefix":   "scram$i=4096$AAAAAAAAAAA$A:A",
		"low-iter":    scramPrefix + "i=100$" + strings.Repeat("A", 22) + "$" + strings.Repeat("A", 43) + ":" + strings.Repeat("A", 43),
		"short-key":   scramPrefix + "i=4096$" + strings.Repeat("A", 22) + "$AAAA:" + strings.Repeat("A", 43),
		"no-colon":    scramPrefix + "i=4096$" + strings.Repeat("A", 22) + "$" + strings.Repeat("A", 43),
		"extra-field": scramPrefix + "i=4096$a$b$c",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseScramCredential(s); !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("error = %v, want ErrInvalidCredentials", err)
			}
		})
	}
}

func TestDeriveScramCredential_RFC7677Keys(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString(rfcSalt)
	c, err := DeriveScramCredential([]byte("pencil"), salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	// ServerSignature of the RFC example is HMAC(ServerKey, AuthMessage).
	authMessage := rfcClientFirst[3:] + "," + rfcServerFirst + "," + rfcClientFinal[:strings.Index(rfcClientFinal, ",p=")]
	got := "v=" + base64.StdEncoding.EncodeToString(hmacSHA256(c.ServerKey, []byte(authMessage)))
	if got != rfcServerFinal {
		t.Errorf("server signature %s, want %s", got, rfcServerFinal)
	}
}

func FuzzScramClientFirst(f *testing.F) {
	f.Add(rfcClientFirst)
	f.Add("y,a=user,n=user,r=abc,x=1")
	f.Add("n,,n=a=2Cb=3D,r=!~")
	f.Fuzz(func(t *testing.T, msg string) {
		cf, err := parseClientFirst(msg)
		if err != nil {
			if !errors.Is(err, ErrScram) {
				t.Fatalf("error %v does not wrap ErrScram", err)
			}
			return
		}
		if !strings.HasPrefix(msg, cf.gs2Header) || cf.gs2Header+cf.bare != msg {
			t.Fatalf("gs2 header %q and bare %q do not rebuild %q", cf.gs2Header, cf.bare, msg)
		}
		if cf.username == "" || cf.nonce == "" {
			t.Fatalf("accepted an empty user name or nonce: %+v", cf)
		}
		if decoded, err := decodeSaslname(encodeSaslname(cf.username)); err != nil || decoded != cf.username {
			t.Fatalf("saslname round trip of %q gave %q, %v", cf.username, decoded, err)
		}
	})
}

func FuzzScramClientFinal(f *testing.F) {
	f.Add(rfcClientFinal)
	f.Add("c=biws,r=abc,x=1,p=AAAA")
	f.Add("c=biws,r=abc,p=")
	f.Fuzz(func(t *testing.T, msg string) {
		cf, err := parseClientFinal(msg)
		if err != nil {
			if !errors.Is(err, ErrScram) {
				t.Fatalf("error %v does not wrap ErrScram", err)
			}
			return
		}
		if !strings.HasPrefix(msg, cf.withoutProof+",p=") {
			t.Fatalf("without-proof %q is not a prefix of %q", cf.withoutProof, msg)
		}
	})
}

// FuzzScramServer feeds arbitrary messages to a server with the RFC user;
// it must never panic and never succeed without the right proof.
func FuzzScramServer(f *testing.F) {
	f.Add(rfcClientFirst, rfcClientFinal)
	f.Add("n,,n=user,r=x", "c=biws,r=x,p=AAAA")
	salt, _ := base64.StdEncoding.DecodeString(rfcSalt)
	cred, err := DeriveScramCredential([]byte("pencil"), salt, 4096)
	if err != nil {
		f.Fatal(err)
	}
	store := &MemStore{}
	if _, err := store.PutUser(context.Background(), User{Name: "user", SCRAM: cred}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, first, final string) {
		s := newTestScramServer(store)
		if _, done, err := s.Step(context.Background(), []byte(first)); err != nil || done {
			return
		}
		_, _, err = s.Step(context.Background(), []byte(final))
		if err == nil && (first != rfcClientFirst || !strings.HasSuffix(final, rfcClientFinal[strings.Index(rfcClientFinal, ",p="):])) {
			t.Fatalf("exchange succeeded with %q then %q", first, final)
		}
	})
}

func pbkdf2SHA256(t *testing.T, password string, salt []byte, iter int) []byte {
	t.Helper()
	key, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
