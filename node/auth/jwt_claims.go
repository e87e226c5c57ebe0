package auth

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxNumericDate bounds the seconds of "exp", "nbf" and "iat" (about 31
// million years), so converting them to a time.Time cannot overflow.
const maxNumericDate = 1e15

// identityOf checks the claims of a token whose signature verified and
// maps them to an identity.
func (a *JWTAuthenticator) identityOf(claims jwt.MapClaims, req Request) (Identity, error) {
	expires, err := a.checkTimes(claims)
	if err != nil {
		return Identity{}, err
	}
	if err := a.checkIssuerAudience(claims); err != nil {
		return Identity{}, err
	}
	username, err := a.username(claims, req)
	if err != nil {
		return Identity{}, err
	}
	groups, err := stringsClaim(claims, a.cfg.GroupsClaim)
	if err != nil {
		return Identity{}, err
	}
	roles, err := stringsClaim(claims, a.cfg.RolesClaim)
	if err != nil {
		return Identity{}, err
	}
	rules, err := rulesClaim(claims, a.cfg.ACLClaim)
	if err != nil {
		return Identity{}, err
	}
	return Identity{Username: username, Groups: groups, Roles: roles, Rules: rules, Method: MethodJWT, Expires: expires}, nil
}

// checkTimes checks "exp", "nbf", "iat" and the lifetime against the clock,
// with the leeway on each side (RFC 7519 sections 4.1.4 to 4.1.6). It
// returns when the token stops being valid, "exp" plus the leeway, or zero
// for a token without "exp".
func (a *JWTAuthenticator) checkTimes(claims jwt.MapClaims) (time.Time, error) {
	now := a.cfg.Now()
	leeway := a.cfg.Leeway

	exp, hasExp, err := numericDate(claims, "exp")
	if err != nil {
		return time.Time{}, err
	}
	nbf, hasNbf, err := numericDate(claims, "nbf")
	if err != nil {
		return time.Time{}, err
	}
	iat, hasIat, err := numericDate(claims, "iat")
	if err != nil {
		return time.Time{}, err
	}
	var expires time.Time
	if hasExp {
		expires = exp.Add(leeway)
	}

	switch {
	case !hasExp && !a.cfg.AllowMissingExp:
		return time.Time{}, rejectJWT("token has no exp claim")
	case hasExp && !now.Before(expires):
		return time.Time{}, rejectJWT("token expired at %s", formatClaimTime(exp))
	case hasNbf && now.Before(nbf.Add(-leeway)):
		return time.Time{}, rejectJWT("token is not valid before %s", formatClaimTime(nbf))
	case hasIat && now.Before(iat.Add(-leeway)):
		return time.Time{}, rejectJWT("token is issued in the future, at %s", formatClaimTime(iat))
	}

	if a.cfg.MaxLifetime <= 0 {
		return expires, nil
	}
	start := iat
	if !hasIat {
		start = nbf
	}
	switch {
	case !hasExp:
		return time.Time{}, rejectJWT("token has no exp claim, and a maximum lifetime is set")
	case !hasIat && !hasNbf:
		return time.Time{}, rejectJWT("token has neither iat nor nbf, so its lifetime is unknown")
	case exp.Sub(start) > a.cfg.MaxLifetime:
		return time.Time{}, rejectJWT("token lifetime %s exceeds the maximum %s", exp.Sub(start), a.cfg.MaxLifetime)
	}
	return expires, nil
}

// numericDate reads a NumericDate claim (RFC 7519 section 2): seconds since
// the Unix epoch, possibly fractional. It reports false if the claim is
// absent.
func numericDate(claims jwt.MapClaims, name string) (time.Time, bool, error) {
	v, ok := claims[name]
	if !ok {
		return time.Time{}, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false, rejectJWT("claim %s is not a number", name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.Abs(f) > maxNumericDate {
		return time.Time{}, false, rejectJWT("claim %s is out of range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

func formatClaimTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// checkIssuerAudience checks "iss" and "aud" when the config sets them.
func (a *JWTAuthenticator) checkIssuerAudience(claims jwt.MapClaims) error {
	if a.cfg.Issuer != "" {
		iss, ok := claims["iss"].(string)
		switch {
		case !ok:
			return rejectJWT("token has no iss claim of type string")
		case iss != a.cfg.Issuer:
			return rejectJWT("issuer %q is not %q", quoteShort(iss), a.cfg.Issuer)
		}
	}
	if a.cfg.Audience != "" && !audienceContains(claims["aud"], a.cfg.Audience) {
		return rejectJWT("aud claim does not include %q", a.cfg.Audience)
	}
	return nil
}

// audienceContains reports whether aud, a string or an array of strings
// (RFC 7519 section 4.1.3), contains want.
func audienceContains(aud any, want string) bool {
	switch aud := aud.(type) {
	case string:
		return aud == want
	case []any:
		for _, v := range aud {
			if s, ok := v.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// username returns the user name claim, which the request's user name must
// equal when the client sent one.
func (a *JWTAuthenticator) username(claims jwt.MapClaims, req Request) (string, error) {
	name := a.cfg.UsernameClaim
	v, ok := claims[name]
	if !ok {
		return "", rejectJWT("token has no %q claim", name)
	}
	s, ok := v.(string)
	switch {
	case !ok:
		return "", rejectJWT("claim %q is not a string", name)
	case s == "":
		return "", rejectJWT("claim %q is empty", name)
	case strings.IndexByte(s, 0) >= 0:
		// An MQTT UTF-8 string must not contain U+0000 [MQTT-1.5.4-2], and
		// the user name appears in topics through %u.
		return "", rejectJWT("claim %q contains U+0000", name)
	case req.Username != "" && req.Username != s:
		return "", rejectJWT("claim %q is %q, but the client sent user name %q", name, quoteShort(s), quoteShort(req.Username))
	}
	return s, nil
}

// stringsClaim returns a claim that is an array of non-empty strings. An
// absent or null claim, or a mapping turned off with JWTClaimOff, gives
// nil.
func stringsClaim(claims jwt.MapClaims, name string) ([]string, error) {
	if name == JWTClaimOff || claims[name] == nil {
		return nil, nil
	}
	arr, ok := claims[name].([]any)
	if !ok {
		return nil, rejectJWT("claim %q is not an array of strings", name)
	}
	out := make([]string, 0, len(arr))
	for i, v := range arr {
		s, ok := v.(string)
		if !ok || s == "" {
			return nil, rejectJWT("claim %q element %d is not a non-empty string", name, i)
		}
		out = append(out, s)
	}
	return out, nil
}

// rulesClaim returns the ACL rules of a claim that is an array of objects
// with exactly the members "action", "permission" and "topic", each a
// string. A rule that ParseRule rejects rejects the token, with an error
// that wraps both ErrBadCredentials and ErrInvalidRule.
func rulesClaim(claims jwt.MapClaims, name string) ([]Rule, error) {
	if name == JWTClaimOff || claims[name] == nil {
		return nil, nil
	}
	arr, ok := claims[name].([]any)
	if !ok {
		return nil, rejectJWT("claim %q is not an array of rule objects", name)
	}
	rules := make([]Rule, 0, len(arr))
	for i, v := range arr {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, rejectJWT("claim %q element %d is not an object", name, i)
		}
		var r Rule
		for _, member := range slices.Sorted(maps.Keys(obj)) {
			s, ok := obj[member].(string)
			if !ok {
				return nil, rejectJWT("claim %q element %d: member %q is not a string", name, i, quoteShort(member))
			}
			switch member {
			case "action":
				r.Action = Action(s)
			case "permission":
				r.Permission = Permission(s)
			case "topic":
				r.Topic = s
			default:
				// A misspelt member would otherwise leave a field empty
				// and read as a different rule.
				return nil, rejectJWT("claim %q element %d: unknown member %q; use action, permission and topic", name, i, quoteShort(member))
			}
		}
		if err := ParseRule(r); err != nil {
			return nil, fmt.Errorf("jwt: claim %q element %d: %w: %w", name, i, err, ErrBadCredentials)
		}
		rules = append(rules, r)
	}
	return rules, nil
}
