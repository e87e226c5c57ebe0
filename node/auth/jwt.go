package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MethodJWT is the Method of an identity authenticated by a JWT bearer
// token.
const MethodJWT Method = "jwt"

// Defaults of JWTConfig.
const (
	DefaultJWTLeeway         = 30 * time.Second
	DefaultJWTReloadInterval = 5 * time.Second
	DefaultJWTUsernameClaim  = "sub"
	DefaultJWTGroupsClaim    = "groups"
	DefaultJWTRolesClaim     = "roles"
	DefaultJWTACLClaim       = "acl"
)

// JWTClaimOff, as GroupsClaim, RolesClaim or ACLClaim, turns that mapping
// off: the claim is ignored even when a token carries it.
const JWTClaimOff = "-"

// JWTConfig configures a JWTAuthenticator. Zero fields take the defaults
// named on each field. Only the key files are reloadable: build a new
// JWTAuthenticator to change anything else.
type JWTConfig struct {
	// Keys are keys given directly. They stay in use across reloads.
	Keys []Key

	// KeyFiles are files of one key each, reread on Reload.
	KeyFiles []KeyFile

	// JWKSFiles are JSON Web Key Set files (RFC 7517), reread on Reload.
	// See ParseJWKS for what a set may contain.
	JWKSFiles []string

	// ReloadInterval is how often KeyFiles and JWKSFiles are polled for
	// changes. Zero means DefaultJWTReloadInterval, 5 s; a negative value
	// turns polling off, so only Reload rereads them. Without files there
	// is nothing to poll.
	ReloadInterval time.Duration

	// Issuer, if set, must equal the token's "iss" claim.
	Issuer string

	// Audience, if set, must be the token's "aud" claim or one of its
	// elements.
	Audience string

	// UsernameClaim is the claim that contains the user name. Default: "sub".
	UsernameClaim string

	// GroupsClaim and RolesClaim are claims containing arrays of group and
	// role names. Default: "groups" and "roles". JWTClaimOff ignores them.
	GroupsClaim string
	RolesClaim  string

	// ACLClaim is a claim containing an array of extra ACL rules, each an
	// object {"action", "permission", "topic"} as in Rule. Default: "acl".
	// JWTClaimOff ignores it, for issuers that must not grant topics.
	ACLClaim string

	// AllowMissingExp accepts tokens without an "exp" claim. By default
	// such a token is rejected, because it would be valid for ever.
	AllowMissingExp bool

	// Leeway is the clock skew tolerated on "exp", "nbf" and "iat".
	// Default: DefaultJWTLeeway, 30 s. Negative is invalid.
	Leeway time.Duration

	// MaxLifetime, if positive, rejects tokens whose "exp" lies more than
	// MaxLifetime after their "iat" (or "nbf" when "iat" is missing). Such
	// a token must then have "exp" and one of "iat" and "nbf".
	MaxLifetime time.Duration

	// Now is the clock, called concurrently by Authenticate. Nil means
	// time.Now.
	Now func() time.Time

	// Logger receives key loads and reload failures, never a token or a
	// key. Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultJWTConfig returns a config with the defaults described on
// JWTConfig and no keys.
func DefaultJWTConfig() JWTConfig {
	return JWTConfig{
		ReloadInterval: DefaultJWTReloadInterval,
		UsernameClaim:  DefaultJWTUsernameClaim,
		GroupsClaim:    DefaultJWTGroupsClaim,
		RolesClaim:     DefaultJWTRolesClaim,
		ACLClaim:       DefaultJWTACLClaim,
		Leeway:         DefaultJWTLeeway,
	}
}

// withDefaults fills zero fields.
func (c JWTConfig) withDefaults() JWTConfig {
	d := DefaultJWTConfig()
	if c.ReloadInterval == 0 {
		c.ReloadInterval = d.ReloadInterval
	}
	if c.UsernameClaim == "" {
		c.UsernameClaim = d.UsernameClaim
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = d.GroupsClaim
	}
	if c.RolesClaim == "" {
		c.RolesClaim = d.RolesClaim
	}
	if c.ACLClaim == "" {
		c.ACLClaim = d.ACLClaim
	}
	if c.Leeway == 0 {
		c.Leeway = d.Leeway
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the settings and the directly given Keys, but not the
// files: NewJWTAuthenticator reads those.
func (c JWTConfig) Validate() error {
	switch {
	case len(c.Keys) == 0 && len(c.KeyFiles) == 0 && len(c.JWKSFiles) == 0:
		return errors.New("auth: JWTConfig has no keys: set Keys, KeyFiles or JWKSFiles")
	case c.Leeway < 0:
		return fmt.Errorf("auth: JWTConfig.Leeway %s is negative", c.Leeway)
	case c.MaxLifetime < 0:
		return fmt.Errorf("auth: JWTConfig.MaxLifetime %s is negative", c.MaxLifetime)
	case c.UsernameClaim == JWTClaimOff:
		return errors.New("auth: JWTConfig.UsernameClaim cannot be turned off: every identity needs a user name")
	}
	for i, k := range c.Keys {
		if err := k.Validate(); err != nil {
			return fmt.Errorf("auth: JWTConfig.Keys[%d]: %w", i, err)
		}
	}
	for i, f := range c.KeyFiles {
		switch {
		case f.Path == "":
			return fmt.Errorf("auth: JWTConfig.KeyFiles[%d].Path is empty", i)
		case f.Alg != AlgHS256 && f.Alg != AlgRS256 && f.Alg != AlgES256:
			return fmt.Errorf("auth: JWTConfig.KeyFiles[%d].Alg %q is not %s, %s or %s", i, f.Alg, AlgHS256, AlgRS256, AlgES256)
		}
	}
	for i, path := range c.JWKSFiles {
		if path == "" {
			return fmt.Errorf("auth: JWTConfig.JWKSFiles[%d] is empty", i)
		}
	}
	return nil
}

// JWTAuthenticator authenticates a client by a JSON Web Token (RFC 7519)
// signed with JWS compact serialization (RFC 7515), sent in the CONNECT
// password field.
//
// A password that is not three base64url parts separated by dots, with a
// first part that decodes to a JSON object, is not a JWT: the request gets
// ErrNoMatch, so a PasswordAuthenticator later in the Chain can check it.
// A JWT that fails any check gets an error wrapping ErrBadCredentials that
// names the check. No error contains the token or a key.
//
// Checks, in order:
//   - The alg header is HS256, RS256 or ES256. "none" and every other
//     algorithm are rejected, and so is a "crit" header.
//   - The key is the one whose ID equals the kid header or, for a token
//     without kid, the only configured key. The token's alg must equal
//     the key's pinned Alg, so a token cannot choose to have a public key
//     used as an HMAC secret.
//   - The signature verifies.
//   - "exp" is present (unless AllowMissingExp) and not past, "nbf" is not
//     in the future and "iat" is not in the future, each with Leeway.
//     MaxLifetime, if set, bounds exp minus iat.
//   - "iss" equals Issuer and "aud" contains Audience, when those are set.
//   - The UsernameClaim is a non-empty string. If the client sent a user
//     name, it must equal the claim. MQTT 3.1.1 clients must send a user
//     name with a password, so they send the claim's value.
//   - GroupsClaim and RolesClaim, when present, are arrays of non-empty
//     strings, and every element of ACLClaim is a valid Rule.
//
// The identity has the claim's user name, the groups, roles and rules of
// the claims, and Method MethodJWT. Groups and roles are names that the
// Authorizer looks up in its Store, as for any other identity.
//
// Keys come from JWTConfig.Keys, KeyFiles and JWKSFiles. Reload rereads the
// files and, if they all parse, swaps the new keys in atomically. A failed
// reload keeps the old keys. Unless polling is off, a goroutine polls the
// files until Close.
//
// Authenticate is safe for concurrent use. It checks the token in the
// calling goroutine, does no I/O and takes no lock.
type JWTAuthenticator struct {
	cfg    JWTConfig
	logger *slog.Logger

	// parsers verify the signature of a token with one algorithm each, the
	// key's pinned one.
	parsers map[string]*jwt.Parser

	keys atomic.Pointer[keySet]

	// reloadMu serializes reloads from the poller and from Reload.
	reloadMu sync.Mutex

	mu struct {
		sync.Mutex
		stats   JWTKeyStats
		lastErr error
		// failedKey identifies the input of the last failed reload, so the
		// same failure is neither counted nor logged on every poll.
		failedKey [sha256.Size]byte
	}

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// NewJWTAuthenticator validates cfg, loads the keys and, when files are
// configured and polling is on, starts the goroutine that polls them. Call
// Close to stop it.
func NewJWTAuthenticator(cfg JWTConfig) (*JWTAuthenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Keys = cloneKeys(cfg.Keys)

	a := &JWTAuthenticator{
		cfg:     cfg,
		logger:  cfg.Logger.With("component", "jwt"),
		parsers: make(map[string]*jwt.Parser),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	for _, alg := range []string{AlgHS256, AlgRS256, AlgES256} {
		a.parsers[alg] = jwt.NewParser(
			jwt.WithValidMethods([]string{alg}),
			jwt.WithJSONNumber(),
			jwt.WithStrictDecoding(),
			// identityOf checks the claims, with JWTConfig.Now and this
			// package's error messages.
			jwt.WithoutClaimsValidation(),
		)
	}

	snap, err := a.readFiles()
	if err != nil {
		return nil, err
	}
	set, err := a.buildKeySet(snap)
	if err != nil {
		return nil, err
	}
	a.publish(set, false)

	if !a.hasFiles() || cfg.ReloadInterval < 0 {
		close(a.done)
		return a, nil
	}
	go a.poll(cfg.ReloadInterval)
	return a, nil
}

// jwtHeader is the part of the JOSE header that selects the key.
type jwtHeader struct {
	alg, kid string
	hasCrit  bool
}

// base64URLStrict decodes unpadded base64url and rejects non-zero trailing
// bits, so each token has exactly one encoding.
var base64URLStrict = base64.RawURLEncoding.Strict()

// parseJWTHeader reads alg, kid and crit from a decoded JOSE header. It
// decodes into a map rather than a struct because encoding/json matches
// struct fields case-insensitively, and header names are case-sensitive
// (RFC 7515 section 4).
func parseJWTHeader(header []byte) (jwtHeader, error) {
	var m map[string]any
	if err := json.Unmarshal(header, &m); err != nil {
		return jwtHeader{}, rejectJWT("malformed JOSE header")
	}
	var h jwtHeader
	var ok bool
	if v, present := m["alg"]; present {
		if h.alg, ok = v.(string); !ok {
			return jwtHeader{}, rejectJWT("malformed JOSE header: alg is not a string")
		}
	}
	if v, present := m["kid"]; present {
		if h.kid, ok = v.(string); !ok {
			return jwtHeader{}, rejectJWT("malformed JOSE header: kid is not a string")
		}
	}
	_, h.hasCrit = m["crit"]
	return h, nil
}

// Authenticate implements Authenticator.
func (a *JWTAuthenticator) Authenticate(_ context.Context, req Request) (Identity, error) {
	header, ok := splitJWT(req.Password)
	if !ok {
		return Identity{}, ErrNoMatch
	}
	h, err := parseJWTHeader(header)
	if err != nil {
		return Identity{}, err
	}
	key, err := a.selectKey(h)
	if err != nil {
		return Identity{}, err
	}

	// NOTE: the string copy of the token cannot be zeroed after use, unlike
	// the Verifier's copy of a password. It stays in memory until the
	// garbage collector reuses it.
	claims := jwt.MapClaims{}
	_, err = a.parsers[key.Alg].ParseWithClaims(string(req.Password), claims, func(t *jwt.Token) (any, error) {
		// The parser admits only key.Alg already; this repeats the check
		// next to the key it protects.
		if t.Method.Alg() != key.Alg {
			return nil, errAlgMismatch
		}
		return key.verificationKey(), nil
	})
	if err != nil {
		return Identity{}, signatureError(key, err)
	}

	return a.identityOf(claims, req)
}

// errAlgMismatch is returned by the key function if the token's alg is not
// the key's.
var errAlgMismatch = errors.New("token alg differs from the key's")

// splitJWT reports whether password looks like a JWS compact serialization
// and returns its decoded header. It does not check that the header is a
// JOSE header, only that it is a JSON object, so that other passwords with
// two dots are left to other authenticators.
func splitJWT(password []byte) ([]byte, bool) {
	if bytes.Count(password, []byte{'.'}) != 2 {
		return nil, false
	}
	for _, c := range password {
		if !isBase64URL(c) && c != '.' {
			return nil, false
		}
	}
	headerPart, rest, _ := bytes.Cut(password, []byte{'.'})
	if len(headerPart) == 0 || rest[0] == '.' {
		return nil, false
	}
	header := make([]byte, base64.RawURLEncoding.DecodedLen(len(headerPart)))
	n, err := base64URLStrict.Decode(header, headerPart)
	if err != nil {
		return nil, false
	}
	header = header[:n]
	if trimmed := bytes.TrimLeft(header, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(header) {
		return nil, false
	}
	return header, true
}

func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// selectKey checks the header's alg and returns the key that verifies the
// token.
func (a *JWTAuthenticator) selectKey(h jwtHeader) (*Key, error) {
	switch h.alg {
	case AlgHS256, AlgRS256, AlgES256:
	case "none":
		return nil, rejectJWT("unsigned token (alg none) is not accepted")
	case "":
		return nil, rejectJWT("JOSE header has no alg")
	default:
		return nil, rejectJWT("alg %q is not accepted; use %s, %s or %s", quoteShort(h.alg), AlgHS256, AlgRS256, AlgES256)
	}
	if h.hasCrit {
		// RFC 7515 section 4.1.11: a recipient that does not understand a
		// critical extension must reject the token, and none is supported.
		return nil, rejectJWT("JOSE header has crit, and no extension is supported")
	}

	set := a.keys.Load()
	var key *Key
	if h.kid != "" {
		key = set.byID[h.kid]
		if key == nil {
			return nil, rejectJWT("no key has kid %q", quoteShort(h.kid))
		}
	} else {
		key = set.only
		if key == nil {
			return nil, rejectJWT("token has no kid, and %d keys are configured", set.count)
		}
	}
	if key.Alg != h.alg {
		return nil, rejectJWT("token alg %s does not match the %s", h.alg, key)
	}
	return key, nil
}

// signatureError turns a parse error of the jwt package into a rejection
// that names what failed without quoting the token.
func signatureError(key *Key, err error) error {
	switch {
	case errors.Is(err, errAlgMismatch):
		return rejectJWT("token alg does not match the %s", key)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return rejectJWT("signature does not verify with the %s", key)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return rejectJWT("malformed token: the claims are not base64url-encoded JSON, or the signature is not base64url")
	default:
		return rejectJWT("token cannot be verified with the %s", key)
	}
}

// rejectJWT returns an error wrapping ErrBadCredentials. The message must
// not contain the token: pass only parsed, shortened values.
func rejectJWT(format string, args ...any) error {
	return fmt.Errorf("jwt: %s: %w", fmt.Sprintf(format, args...), ErrBadCredentials)
}

// Close stops the polling goroutine and waits for it to return. The loaded
// keys stay in use, so Authenticate keeps working. Close is idempotent.
func (a *JWTAuthenticator) Close() error {
	a.closeOnce.Do(func() { close(a.stop) })
	<-a.done
	return nil
}
