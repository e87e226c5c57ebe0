package auth

import (
	"context"
	"errors"
	"testing"
)

// newTestAuthorizer returns an Authorizer over a store holding roles.
func newTestAuthorizer(t testing.TB, cfg AuthorizerConfig, roles []Role, groups []Group) (*Authorizer, *MemStore) {
	t.Helper()
	ctx := context.Background()
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
	a, err := NewAuthorizer(ctx, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, store
}

func allow(action Action, topic string) Rule {
	return Rule{Action: action, Permission: Allow, Topic: topic}
}
func deny(action Action, topic string) Rule {
	return Rule{Action: action, Permission: Deny, Topic: topic}
}

func TestPolicy_DevicePattern(t *testing.T) {
	a, _ := newTestAuthorizer(t, AuthorizerConfig{}, []Role{{Name: "device", Rules: []Rule{
		allow(ActionAll, "devices/%c/#"),
		allow(ActionPublish, "telemetry/%u/%c"),
	}}}, nil)
	p := a.Policy(Identity{Username: "alice", Roles: []string{"device"}}, "dev-1")

	publish := map[string]bool{
		"devices/dev-1":         true,
		"devices/dev-1/state":   true,
		"devices/dev-1/a/b/c":   true,
		"devices/dev-2/state":   false,
		"devices":               false,
		"telemetry/alice/dev-1": true,
		"telemetry/bob/dev-1":   false,
		"telemetry/alice/dev-2": false,
		"other":                 false,
		"devices/+/state":       false, // invalid topic name
	}
	for topic, want := range publish {
		if got := p.CanPublish(topic); got != want {
			t.Errorf("CanPublish(%q) = %v, want %v", topic, got, want)
		}
	}

	subscribe := map[string]bool{
		"devices/dev-1/+":          true,
		"devices/dev-1/#":          true,
		"devices/dev-1":            true,
		"devices/+/x":              false, // also matches other clients' topics
		"devices/#":                false,
		"#":                        false,
		"telemetry/alice/dev-1":    false, // publish-only rule
		"$share/g/devices/dev-1/+": true,
		"$share/g/devices/+/x":     false,
		"devices/dev-1/#/x":        false, // invalid filter
	}
	for filter, want := range subscribe {
		if got := p.CanSubscribe(filter); got != want {
			t.Errorf("CanSubscribe(%q) = %v, want %v", filter, got, want)
		}
	}
}

// TestPolicy_IdentityIsLiteral covers field bug B26 (CVE-2017-7650): a
// client id or user name containing '+' or '#' must not turn a rule with
// %c or %u into a wildcard rule.
func TestPolicy_IdentityIsLiteral(t *testing.T) {
	a, _ := newTestAuthorizer(t, AuthorizerConfig{}, []Role{{Name: "r", Rules: []Rule{
		allow(ActionAll, "devices/%c/#"),
		allow(ActionAll, "users/%u/#"),
	}}}, nil)

	cases := []struct {
		name, clientID, username string
		publish                  map[string]bool
		subscribe                map[string]bool
	}{
		{
			name: "client-id-plus", clientID: "+", username: "alice",
			publish: map[string]bool{"devices/dev-1/x": false, "devices/x": false},
			subscribe: map[string]bool{
				"devices/+/#": false, "devices/+/x": false, "devices/dev-1/#": false, "#": false,
			},
		},
		{
			name: "client-id-hash", clientID: "#", username: "alice",
			publish:   map[string]bool{"devices/dev-1/x": false, "devices/a/b/c": false},
			subscribe: map[string]bool{"devices/#": false, "devices/+/#": false, "devices/x": false},
		},
		{
			name: "client-id-slash", clientID: "site/a", username: "alice",
			publish: map[string]bool{
				"devices/site/a/x": false, "devices/site/a": false, "devices/site": false,
			},
			subscribe: map[string]bool{"devices/site/a/#": false, "devices/site/#": false},
		},
		{
			name: "username-plus", clientID: "dev-9", username: "+",
			publish:   map[string]bool{"users/alice/x": false, "devices/dev-9/x": true},
			subscribe: map[string]bool{"users/+/#": false, "users/#": false, "devices/dev-9/#": true},
		},
		{
			name: "username-hash", clientID: "dev-9", username: "#",
			publish:   map[string]bool{"users/alice": false, "users/alice/x": false},
			subscribe: map[string]bool{"users/#": false, "users/+": false},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := a.Policy(Identity{Username: tc.username, Roles: []string{"r"}}, tc.clientID)
			for topic, want := range tc.publish {
				if got := p.CanPublish(topic); got != want {
					t.Errorf("CanPublish(%q) = %v, want %v", topic, got, want)
				}
			}
			for filter, want := range tc.subscribe {
				if got := p.CanSubscribe(filter); got != want {
					t.Errorf("CanSubscribe(%q) = %v, want %v", filter, got, want)
				}
			}
		})
	}
}

// TestPolicy_UnsubstitutableIdentityDenies checks the rule for an identity
// that cannot fill one level: a deny rule using it widens to "+".
func TestPolicy_UnsubstitutableIdentityDenies(t *testing.T) {
	a, _ := newTestAuthorizer(t, AuthorizerConfig{}, []Role{{Name: "r", Rules: []Rule{
		deny(ActionAll, "devices/%c/secret"),
		allow(ActionAll, "devices/#"),
	}}}, nil)
	for _, clientID := range []string{"site/a", ""} {
		p := a.Policy(Identity{Roles: []string{"r"}}, clientID)
		if p.CanPublish("devices/x/secret") {
			t.Errorf("client %q may publish devices/x/secret; the deny rule should widen to devices/+/secret", clientID)
		}
		if !p.CanPublish("devices/x/public") {
			t.Errorf("client %q may not publish devices/x/public", clientID)
		}
		if p.CanSubscribe("devices/#") {
			t.Errorf("client %q may subscribe to devices/#, which includes denied topics", clientID)
		}
	}
}

// TestPolicy_WillIsAPublish covers field bug B25: a will message gets the
// same check as any publish.
func TestPolicy_WillIsAPublish(t *testing.T) {
	a, _ := newTestAuthorizer(t, AuthorizerConfig{}, []Role{{Name: "r", Rules: []Rule{
		allow(ActionPublish, "devices/%c/status"),
		allow(ActionSubscribe, "alarms/#"),
	}}}, nil)
	p := a.Policy(Identity{Roles: []string{"r"}}, "dev-1")
	cases := map[string]bool{
		"devices/dev-1/status": true,
		"devices/dev-2/status": false, // another device's status
		"alarms/fire":          false, // subscribe-only
		"$SYS/broker/uptime":   false,
	}
	for topic, want := range cases {
		if got := p.CanPublishWill(topic); got != want {
			t.Errorf("CanPublishWill(%q) = %v, want %v", topic, got, want)
		}
		if p.CanPublishWill(topic) != p.CanPublish(topic) {
			t.Errorf("CanPublishWill(%q) differs from CanPublish", topic)
		}
	}
}

func TestPolicy_FirstMatchWins(t *testing.T) {
	a, _ := newTestAuthorizer(t, AuthorizerConfig{}, []Role{
		{Name: "deny-first", Rules: []Rule{deny(ActionAll, "a/secret"), allow(ActionAll, "a/#")}},
		{Name: "allow-first", Rules: []Rule{allow(ActionAll, "a/#"), deny(ActionAll, "a/secret")}},
	}, nil)

	denyFirst := a.Policy(Identity{Roles: []string{"deny-first"}}, "c")
	checks := []struct {
		got, want bool
		what      string
	}{
		{denyFirst.CanPublish("a/secret"), false, "deny-first publish a/secret"},
		{denyFirst.CanPublish("a/open"), true, "deny-first publish a/open"},
		{denyFirst.CanSubscribe("a/#"), false, "deny-first subscribe a/# (meets the deny)"},
		{denyFirst.CanSubscribe("a/+/x"), true, "deny-first subscribe a/+/x (misses a/secret)"},
		{denyFirst.CanSubscribe("a/open"), true, "deny-first subscribe a/open"},
	}
	allowFirst := a.Policy(Identity{Roles: []string{"allow-first"}}, "c")
	checks = append(checks, []struct {
		got, want bool
		what      string
	}{
		{allowFirst.CanPublish("a/secret"), true, "allow-first publish a/secret (the deny is shadowed)"},
		{allowFirst.CanSubscribe("a/#"), true, "allow-first subscribe a/#"},
	}...)
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestPolicy_SourcesInOrder(t *testing.T) {
	a, _ := newTestAuthorizer(t, AuthorizerConfig{},
		[]Role{
			{Name: "reader", Rules: []Rule{allow(ActionSubscribe, "fleet/#")}},
			{Name: "no-secrets", Rules: []Rule{deny(ActionAll, "fleet/secret/#")}},
			{Name: "writer", Rules: []Rule{allow(ActionPublish, "fleet/+/cmd")}},
		},
		[]Group{{Name: "fleet-a", Roles: []string{"no-secrets", "reader"}}},
	)

	// Groups give their roles in order: no-secrets before reader.
	member := a.Policy(Identity{Groups: []string{"fleet-a"}}, "c")
	if member.CanSubscribe("fleet/secret/x") || !member.CanSubscribe("fleet/open/x") {
		t.Error("group roles not applied in order")
	}
	if member.CanPublish("fleet/a/cmd") {
		t.Error("group member may publish without the writer role")
	}

	// The identity's own roles come before its groups' roles, and its own
	// rules come before both.
	own := a.Policy(Identity{Roles: []string{"reader"}, Groups: []string{"fleet-a"}}, "c")
	if !own.CanSubscribe("fleet/secret/x") {
		t.Error("identity role reader should be checked before the group's no-secrets")
	}
	withRule := a.Policy(Identity{
		Rules:  []Rule{deny(ActionSubscribe, "fleet/private/#")},
		Roles:  []string{"reader"},
		Groups: []string{"fleet-a"},
	}, "c")
	if withRule.CanSubscribe("fleet/private/x") || !withRule.CanSubscribe("fleet/public/x") {
		t.Error("the identity's own rules are not checked first")
	}

	unknown := a.Policy(Identity{Roles: []string{"missing"}, Groups: []string{"missing"}}, "c")
	if unknown.CanPublish("fleet/a/cmd") || unknown.CanSubscribe("fleet/#") {
		t.Error("unknown roles and groups granted something")
	}
}

func TestPolicy_Default(t *testing.T) {
	for _, defaultAllow := range []bool{false, true} {
		a, _ := newTestAuthorizer(t, AuthorizerConfig{DefaultAllow: defaultAllow},
			[]Role{{Name: "r", Rules: []Rule{deny(ActionAll, "blocked/#")}}}, nil)
		p := a.Policy(Identity{Roles: []string{"r"}}, "c")
		if got := p.CanPublish("any/topic"); got != defaultAllow {
			t.Errorf("DefaultAllow=%v: CanPublish(any/topic) = %v", defaultAllow, got)
		}
		if got := p.CanSubscribe("any/#"); got != defaultAllow {
			t.Errorf("DefaultAllow=%v: CanSubscribe(any/#) = %v", defaultAllow, got)
		}
		if p.CanPublish("blocked/x") || p.CanSubscribe("#") {
			t.Errorf("DefaultAllow=%v: the deny rule did not apply", defaultAllow)
		}
	}
}

func TestPolicy_DollarTopicsNeedTheirOwnRule(t *testing.T) {
	a, _ := newTestAuthorizer(t, AuthorizerConfig{}, []Role{
		{Name: "all", Rules: []Rule{allow(ActionAll, "#")}},
		{Name: "sys", Rules: []Rule{allow(ActionSubscribe, "$SYS/#")}},
	}, nil)
	all := a.Policy(Identity{Roles: []string{"all"}}, "c")
	if all.CanSubscribe("$SYS/#") || all.CanPublish("$SYS/x") {
		t.Error(`rule "#" granted a "$SYS" topic`)
	}
	if !all.CanSubscribe("#") || !all.CanSubscribe("+/+") {
		t.Error(`rule "#" did not grant "#"`)
	}
	sys := a.Policy(Identity{Roles: []string{"sys"}}, "c")
	if !sys.CanSubscribe("$SYS/broker/+") {
		t.Error(`rule "$SYS/#" did not grant "$SYS/broker/+"`)
	}
}

func TestAuthorizer_ReloadAppliesToExistingPolicies(t *testing.T) {
	ctx := context.Background()
	a, store := newTestAuthorizer(t, AuthorizerConfig{}, []Role{{Name: "r", Rules: []Rule{allow(ActionAll, "x/#")}}}, nil)
	p := a.Policy(Identity{Roles: []string{"r"}}, "c")
	if !p.CanPublish("x/1") {
		t.Fatal("CanPublish(x/1) before revoke = false")
	}
	if err := store.PutRole(ctx, Role{Name: "r", Rules: []Rule{deny(ActionAll, "x/#")}}); err != nil {
		t.Fatal(err)
	}
	if !p.CanPublish("x/1") {
		t.Error("the store change applied before Reload")
	}
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if p.CanPublish("x/1") {
		t.Error("a revoked grant still applies to an existing Policy after Reload")
	}
}

// badRoleStore returns a role whose rule does not compile, as a corrupt or
// newer store might.
type badRoleStore struct{ MemStore }

func (s *badRoleStore) Roles(context.Context) ([]Role, error) {
	return []Role{
		{Name: "broken", Rules: []Rule{allow(ActionAll, "#"), {Action: "bogus", Permission: Allow, Topic: "#"}}},
		{Name: "ok", Rules: []Rule{allow(ActionAll, "ok/#")}},
	}, nil
}

func TestAuthorizer_InvalidRoleDeniesEverything(t *testing.T) {
	a, err := NewAuthorizer(context.Background(), &badRoleStore{}, AuthorizerConfig{DefaultAllow: true})
	if !errors.Is(err, ErrInvalidRule) {
		t.Fatalf("NewAuthorizer error = %v, want ErrInvalidRule", err)
	}
	p := a.Policy(Identity{Roles: []string{"broken", "ok"}}, "c")
	if p.CanPublish("ok/1") || p.CanPublish("$SYS/x") || p.CanSubscribe("#") {
		t.Error("a role with an invalid rule granted something")
	}
	if !a.Policy(Identity{Roles: []string{"ok"}}, "c").CanPublish("ok/1") {
		t.Error("the valid role was not installed")
	}

	bad := a.Policy(Identity{Rules: []Rule{{Action: ActionAll, Permission: Allow, Topic: "a/#/b"}}}, "c")
	if bad.CanPublish("a/x") {
		t.Error("an identity with an invalid rule was allowed by DefaultAllow")
	}
}

func TestAuthorizer_ConvenienceMethods(t *testing.T) {
	a, _ := newTestAuthorizer(t, AuthorizerConfig{}, []Role{{Name: "r", Rules: []Rule{allow(ActionAll, "d/%c/#")}}}, nil)
	id := Identity{Roles: []string{"r"}}
	if !a.CanPublish(id, "c1", "d/c1/x") || a.CanPublish(id, "c1", "d/c2/x") {
		t.Error("Authorizer.CanPublish")
	}
	if !a.CanSubscribe(id, "c1", "d/c1/#") || a.CanSubscribe(id, "c1", "d/+/x") {
		t.Error("Authorizer.CanSubscribe")
	}
}

func TestDenialReasons(t *testing.T) {
	if SubscribeDeniedReason != 0x87 {
		t.Errorf("SubscribeDeniedReason = %#x, want 0x87", SubscribeDeniedReason)
	}
	if reason, ack := PublishDenied(5); reason != 0x87 || !ack {
		t.Errorf("PublishDenied(5) = %#x, %v; want 0x87, true", reason, ack)
	}
	// [MQTT-3.3.5-2]: 3.1.1 acknowledges as usual and drops the message.
	for _, v := range []byte{3, 4} {
		if reason, ack := PublishDenied(v); reason != 0 || !ack {
			t.Errorf("PublishDenied(%d) = %#x, %v; want 0, true", v, reason, ack)
		}
	}
}

// BenchmarkPolicy_CanPublish100Rules measures a check that walks 100
// rules, the last of which matches.
func BenchmarkPolicy_CanPublish100Rules(b *testing.B) {
	rules := make([]Rule, 0, 100)
	for i := range 99 {
		rules = append(rules, allow(ActionAll, "fleet/"+string(rune('a'+i%26))+"/%c/"+string(rune('a'+i/26))+"/#"))
	}
	rules = append(rules, allow(ActionAll, "devices/%c/telemetry/+"))
	a, _ := newTestAuthorizer(b, AuthorizerConfig{}, []Role{{Name: "r", Rules: rules}}, nil)
	p := a.Policy(Identity{Username: "u", Roles: []string{"r"}}, "dev-42")

	b.Run("Policy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !p.CanPublish("devices/dev-42/telemetry/temp") {
				b.Fatal("denied")
			}
		}
	})
	b.Run("Policy-subscribe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !p.CanSubscribe("devices/dev-42/telemetry/+") {
				b.Fatal("denied")
			}
		}
	})
	b.Run("Authorizer", func(b *testing.B) {
		id := Identity{Username: "u", Roles: []string{"r"}}
		b.ReportAllocs()
		for b.Loop() {
			if !a.CanPublish(id, "dev-42", "devices/dev-42/telemetry/temp") {
				b.Fatal("denied")
			}
		}
	})
}

func TestAuthorizer_EqualIdentitiesShareRules(t *testing.T) {
	a, _ := newTestAuthorizer(t, AuthorizerConfig{}, []Role{{Name: "r", Rules: []Rule{allow(ActionAll, "x/#")}}}, nil)
	p1 := a.Policy(Identity{Username: "u", Roles: []string{"r"}, Method: MethodPassword}, "c1")
	p2 := a.Policy(Identity{Username: "u", Roles: []string{"r"}, Method: MethodPassword}, "c2")
	other := a.Policy(Identity{Username: "v", Roles: []string{"r"}, Method: MethodPassword}, "c3")
	own := a.Policy(Identity{Username: "u", Roles: []string{"r"}, Method: MethodPassword, Rules: []Rule{allow(ActionAll, "y")}}, "c4")

	if p1.s != p2.s {
		t.Error("two policies of one identity have separate subjects")
	}
	if p1.s == other.s {
		t.Error("policies of two users share a subject")
	}
	if own.s == p1.s {
		t.Error("an identity with rules of its own shares a subject")
	}
	if !p1.CanPublish("x/1") || !p2.CanPublish("x/1") {
		t.Error("a shared subject lost the role's grant")
	}
	if p1.CanPublish("y") || !own.CanPublish("y") {
		t.Error("an identity's own rule applies to another policy, or not to its own")
	}
}

func TestAuthorizer_SharedRulesBindClientAfterReload(t *testing.T) {
	ctx := context.Background()
	a, store := newTestAuthorizer(t, AuthorizerConfig{}, []Role{{Name: "r", Rules: []Rule{allow(ActionAll, "x/#")}}}, nil)
	p1 := a.Policy(Identity{Method: MethodAnonymous, Roles: []string{"r"}}, "dev-1")
	p2 := a.Policy(Identity{Method: MethodAnonymous, Roles: []string{"r"}}, "dev-2")
	if p1.s != p2.s {
		t.Fatal("two anonymous policies have separate subjects")
	}

	// A %c rule in the role, and a global rule for client ids "dev-2*",
	// make the shared rules differ per client.
	if err := store.PutRole(ctx, Role{Name: "r", Rules: []Rule{allow(ActionAll, "devices/%c/#")}}); err != nil {
		t.Fatal(err)
	}
	if err := store.PutRules(ctx, []GlobalRule{{Subject: Subject{Kind: SubjectClient, Name: "dev-2*"}, Rule: allow(ActionPublish, "extra")}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		p     *Policy
		topic string
		want  bool
	}{
		{p1, "devices/dev-1/a", true},
		{p1, "devices/dev-2/a", false},
		{p1, "extra", false},
		{p1, "x/1", false},
		{p2, "devices/dev-2/a", true},
		{p2, "devices/dev-1/a", false},
		{p2, "extra", true},
	}
	for _, c := range cases {
		if got := c.p.CanPublish(c.topic); got != c.want {
			t.Errorf("client %s: CanPublish(%q) = %v, want %v", c.p.clientID, c.topic, got, c.want)
		}
	}

	// A policy made after the reload binds its client id too.
	p3 := a.Policy(Identity{Method: MethodAnonymous, Roles: []string{"r"}}, "dev-3")
	if !p3.CanPublish("devices/dev-3/a") || p3.CanPublish("devices/dev-1/a") {
		t.Error("a policy made after the reload does not bind its client id")
	}
}
