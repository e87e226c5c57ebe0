package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// SubjectKind is the kind of client a global rule applies to.
type SubjectKind string

// Subject kinds. The text form of a Subject is the kind alone for
// SubjectAll and SubjectAnonymous, and "kind:name" for the others.
const (
	// SubjectAll matches every client, anonymous ones included.
	SubjectAll SubjectKind = "all"
	// SubjectAnonymous matches clients authenticated by Anonymous
	// (Identity.Method is MethodAnonymous).
	SubjectAnonymous SubjectKind = "anonymous"
	// SubjectUser matches the identity whose Username equals the name,
	// however it authenticated: password, SCRAM, certificate or JWT.
	SubjectUser SubjectKind = "user"
	// SubjectGroup matches identities whose Groups contain the name.
	SubjectGroup SubjectKind = "group"
	// SubjectRole matches identities that hold the role directly or through
	// one of their groups.
	SubjectRole SubjectKind = "role"
	// SubjectClient matches clients whose client id matches the name as a
	// pattern (see Subject).
	SubjectClient SubjectKind = "client"
	// SubjectCert matches clients authenticated by a client certificate
	// (Identity.Method is MethodCertificate) whose certificate name, the
	// identity's Username, matches the name as a pattern.
	SubjectCert SubjectKind = "cert"
)

// Subject names the clients a GlobalRule applies to. Its text form, used by
// ParseSubject, String and the JSON and YAML encodings, is "all",
// "anonymous", "user:NAME", "group:NAME", "role:NAME", "client:PATTERN" or
// "cert:PATTERN". The name is everything after the first ':', so it may
// itself contain ':'.
//
// A client or cert PATTERN is compared with the whole client id or
// certificate name. Each '*' in it matches any run of characters, '/'
// included and the empty run too; every other character matches only
// itself. A pattern without '*' is an exact id. There is no escape, so a
// pattern cannot name an id that contains '*' without also matching ids
// that have other text in that place. User, group and role names are exact.
//
// The zero Subject is invalid.
type Subject struct {
	Kind SubjectKind
	// Name is the user, group or role name, or the client id or
	// certificate name pattern. It is empty for SubjectAll and
	// SubjectAnonymous.
	Name string
}

// ParseSubject parses the text form of a subject. The error wraps
// ErrInvalidRule.
func ParseSubject(text string) (Subject, error) {
	kind, name, hasName := strings.Cut(text, ":")
	s := Subject{Kind: SubjectKind(kind), Name: name}
	if !hasName && kind != string(SubjectAll) && kind != string(SubjectAnonymous) {
		return Subject{}, fmt.Errorf("%w: subject %q is not all, anonymous or KIND:NAME with KIND user, group, role, client or cert", ErrInvalidRule, quoteShort(text))
	}
	if err := s.validate(); err != nil {
		return Subject{}, err
	}
	return s, nil
}

// validate checks the kind and name of s.
func (s Subject) validate() error {
	switch s.Kind {
	case SubjectAll, SubjectAnonymous:
		if s.Name != "" {
			return fmt.Errorf("%w: subject %q takes no name", ErrInvalidRule, s.Kind)
		}
		return nil
	case SubjectUser, SubjectGroup, SubjectRole, SubjectClient, SubjectCert:
	default:
		return fmt.Errorf("%w: subject kind %q is not all, anonymous, user, group, role, client or cert", ErrInvalidRule, quoteShort(string(s.Kind)))
	}
	switch {
	case s.Name == "":
		return fmt.Errorf("%w: subject %q has an empty name", ErrInvalidRule, s.Kind)
	case len(s.Name) > maxNameLen:
		return fmt.Errorf("%w: subject %q name of %d bytes exceeds %d", ErrInvalidRule, s.Kind, len(s.Name), maxNameLen)
	case !utf8.ValidString(s.Name) || strings.IndexByte(s.Name, 0) >= 0:
		return fmt.Errorf("%w: subject %q name is not UTF-8 without NUL", ErrInvalidRule, s.Kind)
	}
	return nil
}

// String returns the text form of s.
func (s Subject) String() string {
	if s.Name == "" {
		return string(s.Kind)
	}
	return string(s.Kind) + ":" + s.Name
}

// MarshalText implements encoding.TextMarshaler. An invalid subject is an
// error, so a broken rule is never written to a store.
func (s Subject) MarshalText() ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseSubject.
func (s *Subject) UnmarshalText(text []byte) error {
	parsed, err := ParseSubject(string(text))
	if err != nil {
		return err
	}
	*s = parsed
	return nil
}

// GlobalRule is a rule that is not stored in a user or role record but in
// the Store's global list (RuleStore), and applies to the clients its
// Subject names. Its JSON form is the Rule's fields beside "Subject".
type GlobalRule struct {
	Subject Subject
	Rule
}

// ValidateGlobalRules checks a global rule list, as a RuleStore must on
// PutRules. The error wraps ErrInvalidRule and names the rule by its
// position, counted from 1.
func ValidateGlobalRules(rules []GlobalRule) error {
	for i, r := range rules {
		if _, err := compileGlobalRule(r); err != nil {
			return fmt.Errorf("global rule %d: %w", i+1, err)
		}
	}
	return nil
}

// cloneGlobalRules returns a deep copy of rules.
func cloneGlobalRules(rules []GlobalRule) []GlobalRule {
	if rules == nil {
		return nil
	}
	out := make([]GlobalRule, len(rules))
	for i, r := range rules {
		out[i] = GlobalRule{Subject: r.Subject, Rule: cloneRule(r.Rule)}
	}
	return out
}

// compiledGlobalRule is a GlobalRule with its subject and rule parsed.
type compiledGlobalRule struct {
	subject Subject
	glob    []string // the client or cert pattern split at '*'
	rule    *compiledRule
}

// compileGlobalRule checks and parses a global rule.
func compileGlobalRule(r GlobalRule) (*compiledGlobalRule, error) {
	if err := r.Subject.validate(); err != nil {
		return nil, err
	}
	rule, err := compileRule(r.Rule)
	if err != nil {
		return nil, err
	}
	g := &compiledGlobalRule{subject: r.Subject, rule: rule}
	if r.Subject.Kind == SubjectClient || r.Subject.Kind == SubjectCert {
		g.glob = strings.Split(r.Subject.Name, "*")
	}
	return g, nil
}

// compileGlobalRules compiles a stored global list in order. A rule that
// does not compile is replaced by one that denies everything, at its own
// priority and for its own subject, or for every client when the subject
// itself is invalid. So a broken record takes permissions away and never
// grants them. The error names every broken rule.
func compileGlobalRules(rules []GlobalRule) ([]*compiledGlobalRule, error) {
	out := make([]*compiledGlobalRule, 0, len(rules))
	var errs []error
	for i, r := range rules {
		g, err := compileGlobalRule(r)
		if err == nil {
			out = append(out, g)
			continue
		}
		errs = append(errs, fmt.Errorf("global rule %d: %w", i+1, err))
		deny := *denyEverything
		deny.priority = r.Priority
		g = &compiledGlobalRule{subject: Subject{Kind: SubjectAll}, rule: &deny}
		if r.Subject.validate() == nil {
			g.subject = r.Subject
			if r.Subject.Kind == SubjectClient || r.Subject.Kind == SubjectCert {
				g.glob = strings.Split(r.Subject.Name, "*")
			}
		}
		out = append(out, g)
	}
	return out, errors.Join(errs...)
}

// subjectScope is the identity of one connection, and the roles it reaches
// in one snapshot, against which global rules' subjects are matched.
type subjectScope struct {
	clientID, username string
	method             Method
	groups             []string
	roles              map[string]bool // roles held directly or through a group
}

// appliesTo reports whether the rule's subject names the client in scope.
func (g *compiledGlobalRule) appliesTo(scope *subjectScope) bool {
	switch g.subject.Kind {
	case SubjectAll:
		return true
	case SubjectAnonymous:
		return scope.method == MethodAnonymous
	case SubjectUser:
		return scope.username == g.subject.Name
	case SubjectGroup:
		return slices.Contains(scope.groups, g.subject.Name)
	case SubjectRole:
		return scope.roles[g.subject.Name]
	case SubjectClient:
		return matchGlob(g.glob, scope.clientID)
	case SubjectCert:
		return scope.method == MethodCertificate && matchGlob(g.glob, scope.username)
	}
	return false
}

// matchGlob reports whether s matches a pattern split at its '*'s. The
// first part must start s, the last part must end it, and the parts between
// must appear in order without overlapping. Taking the leftmost place of each
// middle part is enough, because '*' is the only wildcard: a later place
// never leaves more room for the parts after it.
func matchGlob(parts []string, s string) bool {
	if len(parts) == 1 {
		return s == parts[0]
	}
	first, last := parts[0], parts[len(parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	middle := s[len(first) : len(s)-len(last)]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(middle, part)
		if i < 0 {
			return false
		}
		middle = middle[i+len(part):]
	}
	return true
}
