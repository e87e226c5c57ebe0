package auth

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// Cheap parameters, so tests spend milliseconds per hash.
var (
	testArgon2 = Params{Kind: KindArgon2id, Time: 1, MemoryKiB: 1024, Threads: 1}
	testPBKDF2 = Params{Kind: KindPBKDF2SHA512, Iterations: 1000}
)

func TestHashPassword_RoundTrip(t *testing.T) {
	for _, p := range []Params{testArgon2, testPBKDF2, {Kind: KindArgon2id, Time: 1, MemoryKiB: 2048, Threads: 4}} {
		t.Run(fmt.Sprintf("%s-%d-%d", p.Kind, p.Iterations, p.Threads), func(t *testing.T) {
			creds, err := HashPassword([]byte("s3cret"), p)
			if err != nil {
				t.Fatalf("HashPassword: %v", err)
			}
			if !Verify(creds, []byte("s3cret")) {
				t.Error("Verify rejected the right password")
			}
			if Verify(creds, []byte("s3cret ")) {
				t.Error("Verify accepted a wrong password")
			}
			if Verify(creds, nil) {
				t.Error("Verify accepted an empty password")
			}

			parsed, err := ParseCredentials(creds.Encode())
			if err != nil {
				t.Fatalf("ParseCredentials(Encode()): %v", err)
			}
			if parsed.Encode() != creds.Encode() {
				t.Errorf("round trip changed the encoding:\n got %s\nwant %s", parsed.Encode(), creds.Encode())
			}
			if !Verify(parsed, []byte("s3cret")) {
				t.Error("Verify rejected the right password after a round trip")
			}
		})
	}
}

func TestHashPassword_SaltsDiffer(t *testing.T) {
	a, err := HashPassword([]byte("pw"), testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := HashPassword([]byte("pw"), testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Salt) == string(b.Salt) || string(a.Hash) == string(b.Hash) {
		t.Error("two hashes of one password share salt or hash")
	}
}

func TestHashPassword_RejectsBcryptAndBadParams(t *testing.T) {
	cases := map[string]Params{
		"bcrypt":            {Kind: KindBcrypt, Cost: 10},
		"unknown-kind":      {Kind: "md5"},
		"zero":              {},
		"pbkdf2-too-few":    {Kind: KindPBKDF2SHA512, Iterations: 999},
		"pbkdf2-too-many":   {Kind: KindPBKDF2SHA512, Iterations: maxPBKDF2Iterations + 1},
		"argon2-no-time":    {Kind: KindArgon2id, Time: 0, MemoryKiB: 1024, Threads: 1},
		"argon2-low-memory": {Kind: KindArgon2id, Time: 1, MemoryKiB: 1023, Threads: 1},
		"argon2-no-threads": {Kind: KindArgon2id, Time: 1, MemoryKiB: 1024, Threads: 0},
		"argon2-huge":       {Kind: KindArgon2id, Time: 1, MemoryKiB: maxArgon2MemoryKiB + 1, Threads: 1},
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := HashPassword([]byte("pw"), p)
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("HashPassword error = %v, want ErrInvalidCredentials", err)
			}
		})
	}
}

// TestDerive_PBKDF2KnownAnswer checks PBKDF2-HMAC-SHA512 against the
// widely published vector for P="password", S="salt", c=1, dkLen=64.
func TestDerive_PBKDF2KnownAnswer(t *testing.T) {
	want := "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252" +
		"c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce"
	c := Credentials{Params: Params{Kind: KindPBKDF2SHA512, Iterations: 1}, Salt: []byte("salt")}
	got, err := derive(c, []byte("password"))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != want {
		t.Errorf("derive = %x, want %s", got, want)
	}
}

func TestVerify_Bcrypt(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("imported"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		t.Run(prefix, func(t *testing.T) {
			encoded := prefix + string(hash[4:])
			creds, err := ParseCredentials(encoded)
			if err != nil {
				t.Fatalf("ParseCredentials: %v", err)
			}
			if creds.Kind != KindBcrypt || creds.Cost != bcrypt.MinCost {
				t.Errorf("parsed kind %q cost %d, want bcrypt cost %d", creds.Kind, creds.Cost, bcrypt.MinCost)
			}
			if !Verify(creds, []byte("imported")) {
				t.Error("Verify rejected the right password")
			}
			if Verify(creds, []byte("imported2")) {
				t.Error("Verify accepted a wrong password")
			}
			if creds.Encode() != encoded {
				t.Errorf("Encode = %q, want the imported string", creds.Encode())
			}
		})
	}
}

func TestVerify_InvalidCredentialsNeverMatch(t *testing.T) {
	good, err := HashPassword([]byte("pw"), testPBKDF2)
	if err != nil {
		t.Fatal(err)
	}
	shortSalt := good
	shortSalt.Salt = good.Salt[:4]
	noHash := good
	noHash.Hash = nil
	lowIter := good
	lowIter.Iterations = 1
	for name, c := range map[string]Credentials{
		"zero": {}, "short-salt": shortSalt, "no-hash": noHash, "low-iterations": lowIter,
	} {
		t.Run(name, func(t *testing.T) {
			if Verify(c, []byte("pw")) {
				t.Error("Verify accepted invalid credentials")
			}
		})
	}
}

func TestCredentials_StringRedacts(t *testing.T) {
	creds, err := HashPassword([]byte("pw"), testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	u := User{Name: "alice", Credentials: creds}
	salt, hash := b64.EncodeToString(creds.Salt), b64.EncodeToString(creds.Hash)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, u)
		if strings.Contains(out, salt) || strings.Contains(out, hash) || strings.Contains(out, fmt.Sprint(creds.Hash)) {
			t.Errorf("%s of a User shows the salt or hash: %s", verb, out)
		}
	}
	if !strings.Contains(creds.String(), "m=1024,t=1,p=1") {
		t.Errorf("String = %q, want the parameters", creds.String())
	}
}

func TestParseCredentials_Errors(t *testing.T) {
	salt := b64.EncodeToString([]byte("0123456789abcdef"))
	hash := b64.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	cases := map[string]string{
		"empty":             "",
		"no-dollar":         "argon2id$v=19$m=1024,t=1,p=1$" + salt + "$" + hash,
		"unknown-id":        "$md5$" + salt,
		"argon2i":           "$argon2i$v=19$m=1024,t=1,p=1$" + salt + "$" + hash,
		"argon2-version":    "$argon2id$v=16$m=1024,t=1,p=1$" + salt + "$" + hash,
		"argon2-order":      "$argon2id$v=19$t=1,m=1024,p=1$" + salt + "$" + hash,
		"argon2-missing-p":  "$argon2id$v=19$m=1024,t=1$" + salt + "$" + hash,
		"argon2-leading-0":  "$argon2id$v=19$m=01024,t=1,p=1$" + salt + "$" + hash,
		"argon2-plus":       "$argon2id$v=19$m=+1024,t=1,p=1$" + salt + "$" + hash,
		"argon2-p-overflow": "$argon2id$v=19$m=1024,t=1,p=256$" + salt + "$" + hash,
		"argon2-extra":      "$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$" + hash + "$x",
		"pbkdf2-low":        "$pbkdf2-sha512$i=999$" + salt + "$" + hash,
		"pbkdf2-overflow":   "$pbkdf2-sha512$i=99999999999$" + salt + "$" + hash,
		"pbkdf2-padded":     "$pbkdf2-sha512$i=1000$" + salt + "==$" + hash,
		"pbkdf2-bad-b64":    "$pbkdf2-sha512$i=1000$" + salt + "$!!!!",
		"pbkdf2-short-salt": "$pbkdf2-sha512$i=1000$AAAA$" + hash,
		"pbkdf2-short-hash": "$pbkdf2-sha512$i=1000$" + salt + "$AAAA",
		"bcrypt-short":      "$2b$10$abc",
		"bcrypt-cost-high":  "$2b$17$" + strings.Repeat("a", 53),
		"too-long":          "$pbkdf2-sha512$i=1000$" + strings.Repeat("A", maxEncodedLen),
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseCredentials(s)
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("ParseCredentials error = %v, want ErrInvalidCredentials", err)
			}
			if strings.Contains(err.Error(), hash) || strings.Contains(err.Error(), salt) {
				t.Errorf("error quotes the salt or hash: %v", err)
			}
		})
	}
}

// FuzzParseCredentials checks that parsing never panics, and that whatever
// parses encodes back to the same string and verifies without panicking.
func FuzzParseCredentials(f *testing.F) {
	f.Add("$argon2id$v=19$m=1024,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY")
	f.Add("$pbkdf2-sha512$i=1000$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY")
	f.Add("$2b$04$abcdefghijklmnopqrstuu5GHGrvEl2XSYdrDYB6SUqY8ARq5qzK2")
	f.Add("$argon2id$v=19$m=1024,t=1,p=1$$")
	f.Add("$")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCredentials(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("error %v does not wrap ErrInvalidCredentials", err)
			}
			return
		}
		if c.Encode() != s {
			t.Fatalf("Encode = %q, want %q", c.Encode(), s)
		}
		// Keep the fuzzer fast: verify only cheap parameters.
		if (c.Kind == KindArgon2id && c.MemoryKiB*c.Time <= 4096 && c.Threads <= 4) ||
			(c.Kind == KindPBKDF2SHA512 && c.Iterations <= 5000) || (c.Kind == KindBcrypt && c.Cost <= 5) {
			Verify(c, []byte("x"))
		}
	})
}

// bcryptOf returns a cost-4 bcrypt hash of password.
func bcryptOf(t *testing.T, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(hash)
}
