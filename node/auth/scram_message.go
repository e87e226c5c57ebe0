package auth

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxScramMessageLen bounds a client SCRAM message. Real ones are under 200
// bytes; the bound keeps a hostile client from making the server keep large
// strings for the AuthMessage.
const maxScramMessageLen = 1024

// clientFirst is a parsed client-first-message (RFC 5802 section 7).
type clientFirst struct {
	gs2Header string // "n,," or "y,," and any authzid, sent back in c= later
	bare      string // client-first-message-bare, part of the AuthMessage
	username  string // decoded saslname
	nonce     string // c-nonce
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	channelBinding string // decoded c= value
	nonce          string // c-nonce followed by s-nonce
	withoutProof   string // client-final-message-without-proof
	proof          []byte // decoded p= value
}

// parseClientFirst parses "gs2-header client-first-message-bare". Channel
// binding ("p=") is rejected because the server does not offer
// SCRAM-SHA-256-PLUS. An authzid is accepted only when it names the same
// user, since the broker has no notion of acting for another user.
func parseClientFirst(msg string) (clientFirst, error) {
	if len(msg) > maxScramMessageLen {
		return clientFirst{}, scramErrorf("client-first-message of %d bytes exceeds %d", len(msg), maxScramMessageLen)
	}
	var cf clientFirst

	// gs2-header = gs2-cbind-flag "," [ authzid ] ","
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return clientFirst{}, scramErrorf("client-first-message has no gs2 header")
	}
	switch {
	case flag == "n", flag == "y":
		// "y": the client supports channel binding but thinks the server
		// does not, which is true.
	case strings.HasPrefix(flag, "p="):
		return clientFirst{}, scramErrorf("channel binding is not supported")
	default:
		return clientFirst{}, scramErrorf("invalid gs2-cbind-flag")
	}
	authzField, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return clientFirst{}, scramErrorf("client-first-message has an unterminated gs2 header")
	}
	var authzid string
	if authzField != "" {
		encoded, ok := strings.CutPrefix(authzField, "a=")
		if !ok {
			return clientFirst{}, scramErrorf("invalid authzid attribute")
		}
		var err error
		if authzid, err = decodeSaslname(encoded); err != nil {
			return clientFirst{}, err
		}
	}
	cf.gs2Header = msg[:len(flag)+1+len(authzField)+1]
	cf.bare = bare

	// client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 {
		return clientFirst{}, scramErrorf("client-first-message-bare needs a user name and a nonce")
	}
	if strings.HasPrefix(attrs[0], "m=") {
		// RFC 5802 section 5.1: a server that does not understand a
		// mandatory extension must fail the authentication.
		return clientFirst{}, scramErrorf("mandatory extension is not supported")
	}
	encodedName, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return clientFirst{}, scramErrorf("client-first-message-bare must start with n=")
	}
	var err error
	if cf.username, err = decodeSaslname(encodedName); err != nil {
		return clientFirst{}, err
	}
	if cf.username == "" {
		return clientFirst{}, scramErrorf("empty user name")
	}
	if authzid != "" && authzid != cf.username {
		return clientFirst{}, scramErrorf("authzid differs from the user name")
	}
	if cf.nonce, ok = strings.CutPrefix(attrs[1], "r="); !ok {
		return clientFirst{}, scramErrorf("client nonce r= must follow the user name")
	}
	if err := checkNonce(cf.nonce); err != nil {
		return clientFirst{}, err
	}
	return cf, nil
}

// parseClientFinal parses "channel-binding "," nonce ["," extensions] ","
// proof". The proof must be the last attribute.
func parseClientFinal(msg string) (clientFinal, error) {
	if len(msg) > maxScramMessageLen {
		return clientFinal{}, scramErrorf("client-final-message of %d bytes exceeds %d", len(msg), maxScramMessageLen)
	}
	var cf clientFinal
	proofAt := strings.LastIndex(msg, ",p=")
	if proofAt < 0 {
		return clientFinal{}, scramErrorf("client-final-message has no proof")
	}
	cf.withoutProof = msg[:proofAt]
	proof, ok := decodeCanonical(base64.StdEncoding, msg[proofAt+len(",p="):])
	if !ok {
		return clientFinal{}, scramErrorf("proof is not base64")
	}
	cf.proof = proof

	attrs := strings.Split(cf.withoutProof, ",")
	if len(attrs) < 2 {
		return clientFinal{}, scramErrorf("client-final-message needs c= and r=")
	}
	encodedBinding, found := strings.CutPrefix(attrs[0], "c=")
	if !found {
		return clientFinal{}, scramErrorf("client-final-message must start with c=")
	}
	binding, ok := decodeCanonical(base64.StdEncoding, encodedBinding)
	if !ok {
		return clientFinal{}, scramErrorf("channel binding c= is not base64")
	}
	cf.channelBinding = string(binding)
	if cf.nonce, ok = strings.CutPrefix(attrs[1], "r="); !ok {
		return clientFinal{}, scramErrorf("nonce r= must follow c=")
	}
	if err := checkNonce(cf.nonce); err != nil {
		return clientFinal{}, err
	}
	return cf, nil
}

// checkNonce accepts a non-empty run of printable ASCII other than ','
// (RFC 5802 section 7).
func checkNonce(nonce string) error {
	if nonce == "" {
		return scramErrorf("empty nonce")
	}
	for i := 0; i < len(nonce); i++ {
		if c := nonce[i]; c < 0x21 || c > 0x7e || c == ',' {
			return scramErrorf("nonce contains a character outside printable ASCII")
		}
	}
	return nil
}

// decodeSaslname decodes "=2C" to ',' and "=3D" to '='. Any other '=' is an
// error (RFC 5802 section 5.1), as is a name that is not UTF-8.
func decodeSaslname(s string) (string, error) {
	if !strings.Contains(s, "=") {
		if !validUTF8NoNUL(s) {
			return "", scramErrorf("user name is not UTF-8 without NUL")
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", scramErrorf("user name has an invalid '=' escape")
		}
		i += 2
	}
	if !validUTF8NoNUL(b.String()) {
		return "", scramErrorf("user name is not UTF-8 without NUL")
	}
	return b.String(), nil
}

// encodeSaslname is the inverse of decodeSaslname.
func encodeSaslname(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

func validUTF8NoNUL(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}

func scramErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrScram, fmt.Sprintf(format, args...))
}
