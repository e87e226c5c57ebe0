package auth

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseSubject(t *testing.T) {
	valid := map[string]Subject{
		"all":               {Kind: SubjectAll},
		"anonymous":         {Kind: SubjectAnonymous},
		"user:alice":        {Kind: SubjectUser, Name: "alice"},
		"user:a:b":          {Kind: SubjectUser, Name: "a:b"},
		"group:fleet":       {Kind: SubjectGroup, Name: "fleet"},
		"role:reader":       {Kind: SubjectRole, Name: "reader"},
		"client:dev-*":      {Kind: SubjectClient, Name: "dev-*"},
		"client:exact-id":   {Kind: SubjectClient, Name: "exact-id"},
		"client:*":          {Kind: SubjectClient, Name: "*"},
		"cert:*.example.io": {Kind: SubjectCert, Name: "*.example.io"},
		"cert:device-7":     {Kind: SubjectCert, Name: "device-7"},
	}
	for text, want := range valid {
		t.Run("valid:"+text, func(t *testing.T) {
			got, err := ParseSubject(text)
			if err != nil {
				t.Fatalf("ParseSubject(%q): %v", text, err)
			}
			if got != want {
				t.Errorf("ParseSubject(%q) = %+v, want %+v", text, got, want)
			}
			if got.String() != text {
				t.Errorf("String() = %q, want %q", got.String(), text)
			}
		})
	}

	invalid := []string{
		"", "everyone", "user", "user:", "group:", "role:", "client:", "cert:",
		"all:x", "anonymous:x", "User:alice", "user:a\x00b", "client:\xff", ":alice",
		"user:" + strings.Repeat("a", maxNameLen+1),
	}
	for _, text := range invalid {
		t.Run("invalid:"+quoteShort(text), func(t *testing.T) {
			if _, err := ParseSubject(text); !errors.Is(err, ErrInvalidRule) {
				t.Errorf("ParseSubject(%q) error = %v, want ErrInvalidRule", text, err)
			}
		})
	}
}

func TestGlobalRule_JSON(t *testing.T) {
	in := GlobalRule{
		Subject: Subject{Kind: SubjectClient, Name: "dev-*"},
		Rule:    Rule{Action: ActionPublish, Permission: Allow, Topic: "d/%c/#", MaxQoS: new(byte(1)), Retain: new(false), Priority: 5},
	}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"Subject":"client:dev-*","Action":"publish","Permission":"allow","Topic":"d/%c/#","MaxQoS":1,"Retain":false,"Priority":5}`
	if string(raw) != want {
		t.Errorf("JSON = %s, want %s", raw, want)
	}
	var out GlobalRule
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if out.Subject != in.Subject || out.Topic != in.Topic || *out.MaxQoS != 1 || *out.Retain || out.Priority != 5 {
		t.Errorf("round trip = %+v, want %+v", out, in)
	}

	if err := json.Unmarshal([]byte(`{"Subject":"nobody","Action":"publish"}`), &out); !errors.Is(err, ErrInvalidRule) {
		t.Errorf("unmarshal of an invalid subject: %v, want ErrInvalidRule", err)
	}
	if _, err := json.Marshal(GlobalRule{}); !errors.Is(err, ErrInvalidRule) {
		t.Errorf("marshal of the zero subject: %v, want ErrInvalidRule", err)
	}
}

// TestRule_JSONWithoutLimits checks that a rule without the newer fields
// encodes as it did before they existed, so stored records stay the same.
func TestRule_JSONWithoutLimits(t *testing.T) {
	raw, err := json.Marshal(Rule{Action: ActionAll, Permission: Deny, Topic: "a/#"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Action":"all","Permission":"deny","Topic":"a/#"}`; string(raw) != want {
		t.Errorf("JSON = %s, want %s", raw, want)
	}
}

func TestMatchGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"dev-1", "dev-1", true},
		{"dev-1", "dev-12", false},
		{"dev-1", "dev-", false},
		{"dev-*", "dev-", true},
		{"dev-*", "dev-42", true},
		{"dev-*", "dev/42", false},
		{"dev-*", "site/dev-42", false},
		{"*", "", true},
		{"*", "any/thing+#", true},
		{"*-sensor", "a-sensor", true},
		{"*-sensor", "a-sensor-x", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "acb", false},
		{"a*b*c", "abcbc", true},
		{"a*bc", "abc", true},
		{"ab*bc", "abc", false},
		{"a**b", "ab", true},
		{"*a*", "bab", true},
		{"*a*", "bbb", false},
		{"x*x", "x", false},
	}
	for _, tc := range cases {
		if got := matchGlob(strings.Split(tc.pattern, "*"), tc.s); got != tc.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

// FuzzParseSubject checks that parsing never panics, that a parsed subject
// prints back to its input, and that matchGlob agrees with a regular
// expression in which each '*' is ".*" and everything else is literal.
func FuzzParseSubject(f *testing.F) {
	f.Add("client:dev-*", "dev-42")
	f.Add("cert:*.example.io", "a.example.io")
	f.Add("client:a*b*c", "aXbYbc")
	f.Add("user:a:b", "a:b")
	f.Add("all", "")
	f.Add("client:**", "*")
	f.Add("role:", "x")
	f.Fuzz(func(t *testing.T, text, id string) {
		s, err := ParseSubject(text)
		if err != nil {
			if !errors.Is(err, ErrInvalidRule) {
				t.Fatalf("error %v does not wrap ErrInvalidRule", err)
			}
			return
		}
		if s.String() != text {
			t.Fatalf("ParseSubject(%q).String() = %q", text, s.String())
		}
		if !utf8.ValidString(id) {
			return
		}
		parts := strings.Split(s.Name, "*")
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		reference := regexp.MustCompile(`(?s)\A` + strings.Join(parts, ".*") + `\z`)
		if got, want := matchGlob(strings.Split(s.Name, "*"), id), reference.MatchString(id); got != want {
			t.Fatalf("matchGlob(%q, %q) = %v, regexp says %v", s.Name, id, got, want)
		}
	})
}

// newGlobalAuthorizer returns an Authorizer over a MemStore holding roles,
// groups and the global rule list global.
func newGlobalAuthorizer(t testing.TB, cfg AuthorizerConfig, roles []Role, groups []Group, global []GlobalRule) (*Authorizer, *MemStore) {
	t.Helper()
	ctx := t.Context()
	store := &MemStore{}
	for _, r := range roles {
		if err := store.PutRole(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range groups {
		if err := store.PutGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.PutRules(ctx, global); err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthorizer(ctx, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, store
}

// global returns a global rule for subject, which must parse.
func global(t testing.TB, subject string, r Rule) GlobalRule {
	t.Helper()
	s, err := ParseSubject(subject)
	if err != nil {
		t.Fatal(err)
	}
	return GlobalRule{Subject: s, Rule: r}
}

// TestPolicy_GlobalSubjects gives each subject kind one global rule that
// allows publishing to a topic named after it, then checks which clients
// each rule reaches.
func TestPolicy_GlobalSubjects(t *testing.T) {
	subjects := []string{
		"all", "anonymous", "user:alice", "group:fleet", "role:reader", "role:tag-only",
		"client:dev-*", "client:exact", "cert:*.example.io", "cert:alice",
	}
	var rules []GlobalRule
	for _, s := range subjects {
		rules = append(rules, global(t, s, allow(ActionPublish, "s/"+s)))
	}
	a, _ := newGlobalAuthorizer(t, AuthorizerConfig{},
		[]Role{{Name: "reader"}},
		[]Group{{Name: "fleet", Roles: []string{"reader"}}},
		rules,
	)

	type client struct {
		id       Identity
		clientID string
	}
	clients := map[string]client{
		"alice-password": {Identity{Username: "alice", Method: MethodPassword}, "laptop"},
		"alice-cert":     {Identity{Username: "alice", Method: MethodCertificate}, "laptop"},
		"alice-jwt":      {Identity{Username: "alice", Method: MethodJWT}, "laptop"},
		"bob-in-fleet":   {Identity{Username: "bob", Groups: []string{"fleet"}, Method: MethodPassword}, "bob-1"},
		"carol-reader":   {Identity{Username: "carol", Roles: []string{"reader"}, Method: MethodScram}, "carol-1"},
		"dan-tag-only":   {Identity{Username: "dan", Roles: []string{"tag-only"}, Method: MethodPassword}, "dan-1"},
		"anonymous":      {Identity{Method: MethodAnonymous}, "guest"},
		"anonymous-dev":  {Identity{Method: MethodAnonymous}, "dev-9"},
		"sensor-cert":    {Identity{Username: "s1.example.io", Method: MethodCertificate}, "exact"},
		"sensor-pass":    {Identity{Username: "s1.example.io", Method: MethodPassword}, "dev-"},
		"dev-slash":      {Identity{Username: "eve", Method: MethodPassword}, "site/dev-1"},
	}
	want := map[string][]string{
		"alice-password": {"all", "user:alice"},
		"alice-cert":     {"all", "user:alice", "cert:alice"},
		"alice-jwt":      {"all", "user:alice"},
		"bob-in-fleet":   {"all", "group:fleet", "role:reader"},
		"carol-reader":   {"all", "role:reader"},
		"dan-tag-only":   {"all", "role:tag-only"},
		"anonymous":      {"all", "anonymous"},
		"anonymous-dev":  {"all", "anonymous", "client:dev-*"},
		"sensor-cert":    {"all", "client:exact", "cert:*.example.io"},
		"sensor-pass":    {"all", "client:dev-*"},
		"dev-slash":      {"all"},
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			p := a.Policy(c.id, c.clientID)
			for _, s := range subjects {
				wantAllowed := false
				for _, w := range want[name] {
					wantAllowed = wantAllowed || w == s
				}
				if got := p.CanPublish("s/" + s); got != wantAllowed {
					t.Errorf("rule for subject %q applies = %v, want %v", s, got, wantAllowed)
				}
			}
		})
	}
}

func TestPolicy_GlobalRulesFollowReload(t *testing.T) {
	ctx := t.Context()
	a, store := newGlobalAuthorizer(t, AuthorizerConfig{}, nil, nil, []GlobalRule{
		global(t, "client:dev-*", allow(ActionAll, "devices/%c/#")),
	})
	p := a.Policy(Identity{Username: "u", Method: MethodPassword}, "dev-1")
	if !p.CanPublish("devices/dev-1/x") {
		t.Fatal("global rule not applied")
	}
	if err := store.PutRules(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if p.CanPublish("devices/dev-1/x") {
		t.Error("a removed global rule still applies to an existing Policy after Reload")
	}
}

// plainStore hides MemStore's RuleStore methods, as a Store written before
// global rules existed would.
type plainStore struct{ Store }

func TestAuthorizer_StoreWithoutGlobalRules(t *testing.T) {
	ctx := t.Context()
	mem := &MemStore{}
	if err := mem.PutRole(ctx, Role{Name: "r", Rules: []Rule{allow(ActionAll, "x/#")}}); err != nil {
		t.Fatal(err)
	}
	if err := mem.PutRules(ctx, []GlobalRule{global(t, "all", allow(ActionAll, "y/#"))}); err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthorizer(ctx, plainStore{mem}, AuthorizerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p := a.Policy(Identity{Roles: []string{"r"}}, "c")
	if !p.CanPublish("x/1") {
		t.Error("role rule not applied")
	}
	if p.CanPublish("y/1") {
		t.Error("global rules read from a Store that does not implement RuleStore")
	}
}

// badGlobalStore returns global rules that do not compile, as a corrupt or
// newer store might.
type badGlobalStore struct {
	MemStore
	rules []GlobalRule
}

func (s *badGlobalStore) Rules(context.Context) ([]GlobalRule, error) { return s.rules, nil }

func TestAuthorizer_InvalidGlobalRuleDenies(t *testing.T) {
	store := &badGlobalStore{rules: []GlobalRule{
		{Subject: Subject{Kind: SubjectAll}, Rule: allow(ActionAll, "open/#")},
		{Subject: Subject{Kind: SubjectClient, Name: "dev-*"}, Rule: Rule{Action: ActionAll, Permission: Allow, Topic: "a/#/b"}},
		{Subject: Subject{Kind: SubjectAll}, Rule: allow(ActionAll, "late/#")},
		{Subject: Subject{Kind: "nobody"}, Rule: Rule{Action: ActionAll, Permission: Allow, Topic: "team/#", Priority: -1}},
	}}
	a, err := NewAuthorizer(t.Context(), store, AuthorizerConfig{DefaultAllow: true})
	if !errors.Is(err, ErrInvalidRule) {
		t.Fatalf("NewAuthorizer error = %v, want ErrInvalidRule", err)
	}
	for _, msg := range []string{"global rule 2", "global rule 4"} {
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("error %q does not name %s", err, msg)
		}
	}

	// The broken rule for client:dev-* denies those clients everything
	// after the rules before it.
	dev := a.Policy(Identity{Method: MethodPassword}, "dev-1")
	if !dev.CanPublish("open/x") {
		t.Error("the valid global rule before the broken one no longer applies")
	}
	if dev.CanPublish("late/x") || dev.CanSubscribe("late/#") || dev.CanSubscribe("$SYS/#") {
		t.Error("the broken rule for client:dev-* did not deny everything after it")
	}

	// The rule with an invalid subject denies every client at its
	// priority, so DefaultAllow no longer reaches anyone.
	other := a.Policy(Identity{Method: MethodPassword}, "laptop")
	if !other.CanPublish("open/x") || !other.CanPublish("late/x") {
		t.Error("valid rules of a higher priority than the broken ones were lost")
	}
	if other.CanPublish("team/x") || other.CanPublish("other") {
		t.Error("the rule with an invalid subject did not deny every client")
	}
}

func TestPolicy_InvalidIdentityRuleBeatsGlobalRules(t *testing.T) {
	a, _ := newGlobalAuthorizer(t, AuthorizerConfig{}, nil, nil, []GlobalRule{
		global(t, "all", withPriority(allow(ActionAll, "#"), 1000)),
	})
	bad := a.Policy(Identity{Rules: []Rule{{Action: ActionAll, Permission: Allow, Topic: "a/#/b"}}}, "c")
	if bad.CanPublish("x") || bad.CanSubscribe("x/#") {
		t.Error("a global rule allowed an identity whose own rules do not compile")
	}
	if !a.Policy(Identity{}, "c").CanPublish("x") {
		t.Error("the global rule does not apply to a valid identity")
	}
}
