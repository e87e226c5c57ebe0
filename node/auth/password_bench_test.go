package auth

import (
	"fmt"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// BenchmarkVerify measures one verification of each kind at the cost
// settings of the table in doc.go. Run with -benchtime=20x; each iteration
// is one full hash.
func BenchmarkVerify(b *testing.B) {
	password := []byte("correct horse battery staple")
	cases := []struct {
		name   string
		params Params
	}{
		{"argon2id-t2-m19MiB-p1", DefaultParams()},
		{"argon2id-t1-m64MiB-p1", Params{Kind: KindArgon2id, Time: 1, MemoryKiB: 64 * 1024, Threads: 1}},
		{"argon2id-t3-m12MiB-p1", Params{Kind: KindArgon2id, Time: 3, MemoryKiB: 12 * 1024, Threads: 1}},
		{"pbkdf2-sha512-i210000", DefaultPBKDF2Params()},
		{"pbkdf2-sha512-i100000", Params{Kind: KindPBKDF2SHA512, Iterations: 100_000}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			creds, err := HashPassword(password, tc.params)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if !Verify(creds, password) {
					b.Fatal("Verify failed")
				}
			}
		})
	}
	for _, cost := range []int{10, 12} {
		b.Run(fmt.Sprintf("bcrypt-cost%d", cost), func(b *testing.B) {
			hash, err := bcrypt.GenerateFromPassword(password, cost)
			if err != nil {
				b.Fatal(err)
			}
			creds, err := ParseCredentials(string(hash))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if !Verify(creds, password) {
					b.Fatal("Verify failed")
				}
			}
		})
	}
	b.Run("scram-derive-i4096", func(b *testing.B) {
		salt := []byte("0123456789abcdef")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DeriveScramCredential(password, salt, DefaultScramIterations); err != nil {
				b.Fatal(err)
			}
		}
	})
}
