package auth

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestPasswordAuthenticator(t *testing.T) {
	ctx := context.Background()
	store := &MemStore{}
	v := newTestVerifier(t, VerifierConfig{Workers: 2})
	a := &PasswordAuthenticator{Store: store, Verifier: v}

	alice := User{Name: "alice", Groups: []string{"fleet"}, Roles: []string{"r"}, Rules: []Rule{allow(ActionAll, "x")}}
	if err := alice.SetPassword([]byte("pw"), testArgon2, 0); err != nil {
		t.Fatal(err)
	}
	stored, err := store.PutUser(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	off := User{Name: "off", Disabled: true}
	if err := off.SetPassword([]byte("pw"), testArgon2, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutUser(ctx, off); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutUser(ctx, User{Name: "certonly"}); err != nil {
		t.Fatal(err)
	}

	id, err := a.Authenticate(ctx, Request{Username: "alice", Password: []byte("pw"), ClientID: "c"})
	if err != nil {
		t.Fatalf("alice: %v", err)
	}
	if id.Username != "alice" || id.Method != MethodPassword || id.Version != stored.Version ||
		len(id.Groups) != 1 || len(id.Roles) != 1 || len(id.Rules) != 1 {
		t.Errorf("identity %+v does not carry the user's record", id)
	}

	cases := map[string]struct {
		req  Request
		want error
	}{
		"no-username":    {Request{Password: []byte("pw")}, ErrNoMatch},
		"wrong-password": {Request{Username: "alice", Password: []byte("nope")}, ErrBadCredentials},
		"unknown-user":   {Request{Username: "mallory", Password: []byte("pw")}, ErrBadCredentials},
		"disabled":       {Request{Username: "off", Password: []byte("pw")}, ErrBadCredentials},
		"no-password":    {Request{Username: "certonly", Password: []byte("pw")}, ErrBadCredentials},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := a.Authenticate(ctx, tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
			if len(tc.req.Password) > 0 && strings.Contains(err.Error(), string(tc.req.Password)) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}

	// Removing the user applies at once, although the password is cached.
	if err := store.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, Request{Username: "alice", Password: []byte("pw")}); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("removed user: error = %v, want ErrBadCredentials", err)
	}
	// Re-creating it with another password does not revive the cache entry.
	again := User{Name: "alice"}
	if err := again.SetPassword([]byte("other"), testArgon2, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutUser(ctx, again); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, Request{Username: "alice", Password: []byte("pw")}); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("re-created user with the old password: error = %v, want ErrBadCredentials", err)
	}
}

func TestPasswordAuthenticator_ImportedBcrypt(t *testing.T) {
	ctx := context.Background()
	store := &MemStore{}
	// bcrypt cost 4 of "imported", from golang.org/x/crypto/bcrypt.
	u := User{Name: "legacy"}
	if err := u.ImportHash(bcryptOf(t, "imported")); err != nil {
		t.Fatal(err)
	}
	if u.SCRAM != nil {
		t.Error("an imported bcrypt user has a SCRAM credential")
	}
	if _, err := store.PutUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	a := &PasswordAuthenticator{Store: store, Verifier: newTestVerifier(t, VerifierConfig{Workers: 1})}
	if _, err := a.Authenticate(ctx, Request{Username: "legacy", Password: []byte("imported")}); err != nil {
		t.Errorf("imported user: %v", err)
	}
}

// certificate builds an unsigned leaf with the given names; the TLS layer,
// not this package, checks signatures.
func certificate(cn string, dns, email []string, uri string) *x509.Certificate {
	c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns, EmailAddresses: email}
	if uri != "" {
		u, _ := url.Parse(uri)
		c.URIs = []*url.URL{u}
	}
	return c
}

func TestCertAuthenticator(t *testing.T) {
	ctx := context.Background()
	store := &MemStore{}
	if _, err := store.PutUser(ctx, User{Name: "dev-1", Groups: []string{"fleet"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutUser(ctx, User{Name: "dev-off", Disabled: true}); err != nil {
		t.Fatal(err)
	}
	leaf := certificate("dev-1", []string{"dev-1.example"}, []string{"dev@example.com"}, "spiffe://example/dev-1")
	chain := []*x509.Certificate{leaf}

	cases := []struct {
		name     string
		auth     CertAuthenticator
		req      Request
		wantUser string
		wantErr  error
	}{
		{"cn", CertAuthenticator{}, Request{CertChain: chain}, "dev-1", nil},
		{"san-dns", CertAuthenticator{Source: CertSANDNS}, Request{CertChain: chain}, "dev-1.example", nil},
		{"san-email", CertAuthenticator{Source: CertSANEmail}, Request{CertChain: chain}, "dev@example.com", nil},
		{"san-uri", CertAuthenticator{Source: CertSANURI}, Request{CertChain: chain}, "spiffe://example/dev-1", nil},
		{"no-cert", CertAuthenticator{}, Request{Username: "dev-1"}, "", ErrNoMatch},
		{"no-san", CertAuthenticator{Source: CertSANDNS}, Request{CertChain: []*x509.Certificate{certificate("x", nil, nil, "")}}, "", ErrBadCredentials},
		{"client-id-match", CertAuthenticator{RequireClientID: true}, Request{CertChain: chain, ClientID: "dev-1"}, "dev-1", nil},
		{"client-id-mismatch", CertAuthenticator{RequireClientID: true}, Request{CertChain: chain, ClientID: "dev-2"}, "", ErrNotAuthorized},
		{"same-username", CertAuthenticator{}, Request{CertChain: chain, Username: "dev-1"}, "dev-1", nil},
		{"other-username", CertAuthenticator{}, Request{CertChain: chain, Username: "admin"}, "", ErrBadCredentials},
		{"store-groups", CertAuthenticator{Store: store}, Request{CertChain: chain}, "dev-1", nil},
		{"store-no-user", CertAuthenticator{Store: store}, Request{CertChain: []*x509.Certificate{certificate("new", nil, nil, "")}}, "new", nil},
		{"require-user", CertAuthenticator{Store: store, RequireUser: true}, Request{CertChain: []*x509.Certificate{certificate("new", nil, nil, "")}}, "", ErrNotAuthorized},
		{"disabled-user", CertAuthenticator{Store: store}, Request{CertChain: []*x509.Certificate{certificate("dev-off", nil, nil, "")}}, "", ErrNotAuthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.auth.Authenticate(ctx, tc.req)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (id.Username != tc.wantUser || id.Method != MethodCertificate) {
				t.Errorf("identity %+v, want user %q by certificate", id, tc.wantUser)
			}
			if tc.name == "store-groups" && (len(id.Groups) != 1 || id.Groups[0] != "fleet") {
				t.Errorf("groups %v, want the stored user's [fleet]", id.Groups)
			}
		})
	}
}

func TestChain(t *testing.T) {
	ctx := context.Background()
	store := &MemStore{}
	testUser(t, store, "alice", "pw")
	password := &PasswordAuthenticator{Store: store, Verifier: newTestVerifier(t, VerifierConfig{Workers: 1})}
	cert := &CertAuthenticator{}
	chain := Chain{cert, password, Anonymous{Groups: []string{"guests"}}}
	closed := Chain{cert, password}

	leaf := []*x509.Certificate{certificate("dev-1", nil, nil, "")}
	cases := []struct {
		name       string
		chain      Chain
		req        Request
		wantMethod Method
		wantErr    error
	}{
		{"certificate-first", chain, Request{CertChain: leaf, Username: "dev-1"}, MethodCertificate, nil},
		{"password", chain, Request{Username: "alice", Password: []byte("pw")}, MethodPassword, nil},
		{"wrong-password-stops", chain, Request{Username: "alice", Password: []byte("x")}, "", ErrBadCredentials},
		{"anonymous", chain, Request{}, MethodAnonymous, nil},
		{"password-without-user", chain, Request{Password: []byte("x")}, "", ErrNotAuthorized},
		{"closed-listener-anonymous", closed, Request{}, "", ErrNotAuthorized},
		{"empty-chain", Chain{}, Request{Username: "alice", Password: []byte("pw")}, "", ErrNotAuthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.chain.Authenticate(ctx, tc.req)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if errors.Is(err, ErrNoMatch) {
				t.Fatal("Chain returned ErrNoMatch")
			}
			if id.Method != tc.wantMethod {
				t.Errorf("method %q, want %q", id.Method, tc.wantMethod)
			}
		})
	}
	if id, _ := chain.Authenticate(ctx, Request{}); len(id.Groups) != 1 || id.Groups[0] != "guests" {
		t.Errorf("anonymous groups %v, want [guests]", id.Groups)
	}
}

func TestListeners(t *testing.T) {
	ctx := context.Background()
	listeners := Listeners{
		"local":  Chain{Anonymous{}},
		"public": Chain{},
	}
	if _, err := listeners.Authenticate(ctx, Request{Listener: "local"}); err != nil {
		t.Errorf("anonymous on local: %v", err)
	}
	if _, err := listeners.Authenticate(ctx, Request{Listener: "public"}); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("anonymous on public: %v, want ErrNotAuthorized", err)
	}
	if _, err := listeners.Authenticate(ctx, Request{Listener: "forgotten"}); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("unconfigured listener: %v, want ErrNotAuthorized", err)
	}
	if !AnonymousByDefault(true) || AnonymousByDefault(false) {
		t.Error("only loopback listeners admit anonymous clients by default")
	}
}

func TestConnectReason(t *testing.T) {
	cases := []struct {
		err  error
		want byte
	}{
		{nil, 0x00},
		{ErrBadCredentials, 0x86},
		{ErrScram, 0x86},
		{ErrNotAuthorized, 0x87},
		{ErrBusy, 0x89},
		{ErrClosed, 0x8B},
		{ErrNoScram, 0x8C},
		{errors.New("disk on fire"), 0x80},
	}
	for _, tc := range cases {
		if got := ConnectReason(tc.err); byte(got) != tc.want {
			t.Errorf("ConnectReason(%v) = %#x, want %#x", tc.err, byte(got), tc.want)
		}
	}
}
