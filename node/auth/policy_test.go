package auth

import (
	"fmt"
	"testing"
)

// withPriority returns r with Priority p.
func withPriority(r Rule, p int) Rule {
	r.Priority = p
	return r
}

// withMaxQoS returns r with MaxQoS q.
func withMaxQoS(r Rule, q byte) Rule {
	r.MaxQoS = new(q)
	return r
}

// withRetain returns r with Retain set to retain.
func withRetain(r Rule, retain bool) Rule {
	r.Retain = new(retain)
	return r
}

func TestPolicy_Priorities(t *testing.T) {
	a, _ := newGlobalAuthorizer(t, AuthorizerConfig{},
		[]Role{
			{Name: "ops", Rules: []Rule{
				allow(ActionAll, "plant/#"),
				withPriority(deny(ActionAll, "plant/safety/#"), 5),
			}},
			{Name: "viewer", Rules: []Rule{deny(ActionPublish, "plant/#")}},
		},
		[]Group{{Name: "night", Roles: []string{"viewer"}}},
		[]GlobalRule{
			global(t, "all", withPriority(deny(ActionAll, "plant/secret/#"), 10)),
			global(t, "all", withPriority(allow(ActionPublish, "plant/safety/drill"), 20)),
			global(t, "group:night", withPriority(allow(ActionPublish, "plant/night/#"), -1)),
			global(t, "group:night", allow(ActionPublish, "plant/log/#")),
		},
	)

	cases := []struct {
		name   string
		id     Identity
		topic  string
		filter string
		want   bool
	}{
		// Equal priorities keep the old order: own rules, roles, groups'
		// roles, global rules.
		{name: "role-allow-before-global", id: Identity{Roles: []string{"ops"}}, topic: "plant/a", want: true},
		{name: "group-deny-before-global", id: Identity{Groups: []string{"night"}}, topic: "plant/log/x", want: false},
		{name: "own-rule-first", id: Identity{Rules: []Rule{allow(ActionPublish, "plant/log/#")}, Groups: []string{"night"}}, topic: "plant/log/x", want: true},

		// A higher priority goes first, whatever its source.
		{name: "priority-inside-role", id: Identity{Roles: []string{"ops"}}, topic: "plant/safety/valve", want: false},
		{name: "global-deny-above-role", id: Identity{Roles: []string{"ops"}}, topic: "plant/secret/key", want: false},
		{name: "global-allow-above-all", id: Identity{Roles: []string{"ops"}}, topic: "plant/safety/drill", want: true},
		{name: "global-deny-above-own", id: Identity{Rules: []Rule{allow(ActionAll, "#")}}, topic: "plant/secret/key", want: false},

		// A negative priority goes after every rule of priority zero.
		{name: "negative-after-group-deny", id: Identity{Groups: []string{"night"}}, topic: "plant/night/x", want: false},

		// Subscriptions walk the same order.
		{name: "subscribe-meets-global-deny", id: Identity{Roles: []string{"ops"}}, filter: "plant/#", want: false},
		{name: "subscribe-misses-denies", id: Identity{Roles: []string{"ops"}}, filter: "plant/area/+", want: true},
		{name: "subscribe-priority-inside-role", id: Identity{Roles: []string{"ops"}}, filter: "plant/safety/+", want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := a.Policy(tc.id, "c")
			if tc.filter != "" {
				if got := p.CanSubscribe(tc.filter); got != tc.want {
					t.Errorf("CanSubscribe(%q) = %v, want %v", tc.filter, got, tc.want)
				}
				return
			}
			if got := p.CanPublish(tc.topic); got != tc.want {
				t.Errorf("CanPublish(%q) = %v, want %v", tc.topic, got, tc.want)
			}
		})
	}
}

func TestPolicy_MaxQoS(t *testing.T) {
	a, _ := newTestAuthorizer(t, AuthorizerConfig{}, []Role{
		{Name: "r", Rules: []Rule{
			withMaxQoS(allow(ActionPublish, "telemetry/#"), 1),
			withMaxQoS(deny(ActionPublish, "bulk/#"), 0),
			allow(ActionPublish, "bulk/#"),
			withMaxQoS(allow(ActionSubscribe, "sensors/#"), 1),
			withMaxQoS(allow(ActionAll, "chat/#"), 0),
			allow(ActionSubscribe, "chat/+/important"),
		}},
	}, nil)
	p := a.Policy(Identity{Roles: []string{"r"}}, "c")

	publish := []struct {
		topic string
		qos   byte
		want  bool
	}{
		{"telemetry/t", 0, true},
		{"telemetry/t", 1, true},
		{"telemetry/t", 2, false}, // above MaxQoS: the rule is skipped and the default denies
		{"bulk/x", 0, false},      // a deny with MaxQoS 0 matches QoS 0 only
		{"bulk/x", 1, true},
		{"bulk/x", 2, true},
		{"chat/room", 0, true},
		{"chat/room", 1, false},
		{"telemetry/t", 3, false}, // not a QoS
	}
	for _, tc := range publish {
		if got := p.CanPublishMsg(tc.topic, tc.qos, false); got != tc.want {
			t.Errorf("CanPublishMsg(%q, %d, false) = %v, want %v", tc.topic, tc.qos, got, tc.want)
		}
	}

	subscribe := []struct {
		filter string
		qos    byte
		want   bool
	}{
		{"sensors/+", 0, true},
		{"sensors/+", 1, true},
		{"sensors/+", 2, false},
		{"$share/g/sensors/+", 1, true},
		{"$share/g/sensors/+", 2, false},
		{"sensors/a", 1, true}, // a delivery at QoS 1
		{"chat/#", 0, true},
		{"chat/#", 1, false},
		{"chat/x/important", 2, true}, // the second rule has no limit
		{"sensors/+", 3, false},
	}
	for _, tc := range subscribe {
		if got := p.CanSubscribeQoS(tc.filter, tc.qos); got != tc.want {
			t.Errorf("CanSubscribeQoS(%q, %d) = %v, want %v", tc.filter, tc.qos, got, tc.want)
		}
	}

	open, _ := newTestAuthorizer(t, AuthorizerConfig{DefaultAllow: true}, nil, nil)
	if open.Policy(Identity{}, "c").CanPublishMsg("a", 3, false) || open.Policy(Identity{}, "c").CanSubscribeQoS("a", 3) {
		t.Error("QoS 3 allowed by DefaultAllow")
	}
}

func TestPolicy_Retain(t *testing.T) {
	a, _ := newTestAuthorizer(t, AuthorizerConfig{}, []Role{
		{Name: "r", Rules: []Rule{
			withRetain(allow(ActionPublish, "state/#"), true),
			withRetain(allow(ActionPublish, "events/#"), false),
			withRetain(deny(ActionPublish, "config/#"), true),
			allow(ActionPublish, "config/#"),
			withMaxQoS(withRetain(allow(ActionPublish, "status/#"), true), 1),
			allow(ActionSubscribe, "state/#"),
		}},
	}, nil)
	p := a.Policy(Identity{Roles: []string{"r"}}, "c")

	cases := []struct {
		topic  string
		qos    byte
		retain bool
		want   bool
	}{
		{"state/a", 0, true, true},
		{"state/a", 0, false, false},
		{"events/a", 1, false, true},
		{"events/a", 1, true, false},
		{"config/a", 0, true, false},
		{"config/a", 0, false, true},
		{"status/a", 1, true, true},
		{"status/a", 2, true, false},
		{"status/a", 1, false, false},
	}
	for _, tc := range cases {
		if got := p.CanPublishMsg(tc.topic, tc.qos, tc.retain); got != tc.want {
			t.Errorf("CanPublishMsg(%q, %d, %v) = %v, want %v", tc.topic, tc.qos, tc.retain, got, tc.want)
		}
	}
	if !p.CanSubscribeQoS("state/#", 2) {
		t.Error("a subscribe rule without Retain was affected by the publish rules' Retain")
	}
}

// TestPolicy_OldMethodsAreStrict runs every list of up to two rules drawn
// from a set with and without limits. CanPublish must allow a topic exactly
// when CanPublishMsg allows it at every QoS and retain flag, and
// CanSubscribe must do the same for CanSubscribeQoS. For rules without
// limits, every QoS and retain flag must get the same decision.
func TestPolicy_OldMethodsAreStrict(t *testing.T) {
	pool := []Rule{
		allow(ActionAll, "a/#"),
		deny(ActionAll, "a/x"),
		withMaxQoS(allow(ActionAll, "a/#"), 1),
		withMaxQoS(deny(ActionAll, "a/+"), 0),
		withRetain(allow(ActionPublish, "a/#"), true),
		withRetain(deny(ActionPublish, "a/x"), false),
		withPriority(withMaxQoS(allow(ActionSubscribe, "a/x"), 2), -1),
	}
	topics := []string{"a", "a/x", "a/y"}
	filters := []string{"a/#", "a/x", "a/+", "#"}
	for _, defaultAllow := range []bool{false, true} {
		for i := -1; i < len(pool); i++ {
			for j := -1; j < len(pool); j++ {
				var rules []Rule
				for _, k := range []int{i, j} {
					if k >= 0 {
						rules = append(rules, pool[k])
					}
				}
				name := fmt.Sprintf("default=%v/rules=%d,%d", defaultAllow, i, j)
				a, _ := newTestAuthorizer(t, AuthorizerConfig{DefaultAllow: defaultAllow}, []Role{{Name: "r", Rules: rules}}, nil)
				p := a.Policy(Identity{Roles: []string{"r"}}, "c")
				limited := i >= 2 || j >= 2
				checkStrictPublish(t, name, p, topics, limited)
				checkStrictSubscribe(t, name, p, filters, limited)
			}
		}
	}
}

func checkStrictPublish(t *testing.T, name string, p *Policy, topics []string, limited bool) {
	t.Helper()
	for _, topic := range topics {
		every, some := true, false
		for qos := range byte(3) {
			for _, retain := range []bool{false, true} {
				ok := p.CanPublishMsg(topic, qos, retain)
				every, some = every && ok, some || ok
			}
		}
		if got := p.CanPublish(topic); got != every {
			t.Errorf("%s: CanPublish(%q) = %v, every CanPublishMsg allows = %v", name, topic, got, every)
		}
		if !limited && every != some {
			t.Errorf("%s: rules without limits answer differently per QoS or retain for %q", name, topic)
		}
	}
}

func checkStrictSubscribe(t *testing.T, name string, p *Policy, filters []string, limited bool) {
	t.Helper()
	for _, filter := range filters {
		every, some := true, false
		for qos := range byte(3) {
			ok := p.CanSubscribeQoS(filter, qos)
			every, some = every && ok, some || ok
		}
		if got := p.CanSubscribe(filter); got != every {
			t.Errorf("%s: CanSubscribe(%q) = %v, every CanSubscribeQoS allows = %v", name, filter, got, every)
		}
		if !limited && every != some {
			t.Errorf("%s: rules without limits answer differently per QoS for %q", name, filter)
		}
	}
}

// TestPolicy_ACLMatrix checks a small deployment: devices, operators, an
// administrator, anonymous guests and a client whose identity is made of
// wildcards, each against topics and actions, with QoS and retain flags.
func TestPolicy_ACLMatrix(t *testing.T) {
	a, _ := newGlobalAuthorizer(t, AuthorizerConfig{},
		[]Role{
			{Name: "device", Rules: []Rule{
				withMaxQoS(allow(ActionPublish, "devices/%c/telemetry"), 1),
				withRetain(allow(ActionPublish, "devices/%c/state"), true),
				allow(ActionSubscribe, "devices/%c/cmd/#"),
			}},
			{Name: "operator", Rules: []Rule{
				allow(ActionSubscribe, "devices/+/telemetry"),
				withMaxQoS(allow(ActionPublish, "devices/+/cmd/#"), 1),
			}},
			{Name: "admin", Rules: []Rule{allow(ActionAll, "#"), allow(ActionSubscribe, "$SYS/#")}},
		},
		[]Group{{Name: "fleet", Roles: []string{"device"}}, {Name: "operators", Roles: []string{"operator"}}},
		[]GlobalRule{
			global(t, "all", withPriority(deny(ActionAll, "restricted/#"), 100)),
			global(t, "anonymous", withMaxQoS(allow(ActionSubscribe, "public/#"), 0)),
			global(t, "cert:*.fleet.io", allow(ActionPublish, "fleet/%u/hello")),
			global(t, "client:guest-*", allow(ActionPublish, "guests/%c/#")),
			global(t, "user:alice", allow(ActionPublish, "users/%u/#")),
			global(t, "all", allow(ActionSubscribe, "inbox/%u/#")),
			global(t, "role:operator", allow(ActionSubscribe, "$SYS/broker/clients/+")),
		},
	)

	type client struct {
		id       Identity
		clientID string
	}
	clients := map[string]client{
		"dev-1":   {Identity{Username: "dev-1.fleet.io", Groups: []string{"fleet"}, Method: MethodCertificate}, "dev-1"},
		"alice":   {Identity{Username: "alice", Groups: []string{"operators"}, Method: MethodPassword}, "alice-ui"},
		"root":    {Identity{Username: "root", Roles: []string{"admin"}, Method: MethodPassword}, "console"},
		"guest":   {Identity{Method: MethodAnonymous}, "guest-1"},
		"mallory": {Identity{Username: "+", Groups: []string{"fleet"}, Method: MethodPassword}, "#"},
	}

	const (
		pub     = "publish"
		sub     = "subscribe"
		deliver = "deliver"
	)
	cases := []struct {
		who, action, topic string
		qos                byte
		retain             bool
		want               bool
	}{
		{"dev-1", pub, "devices/dev-1/telemetry", 1, false, true},
		{"dev-1", pub, "devices/dev-1/telemetry", 2, false, false},
		{"dev-1", pub, "devices/dev-2/telemetry", 0, false, false},
		{"dev-1", pub, "devices/dev-1/state", 1, true, true},
		{"dev-1", pub, "devices/dev-1/state", 1, false, false},
		{"dev-1", sub, "devices/dev-1/cmd/#", 2, false, true},
		{"dev-1", sub, "devices/+/cmd/#", 0, false, false},
		{"dev-1", deliver, "devices/dev-1/cmd/reboot", 1, false, true},
		{"dev-1", pub, "fleet/dev-1.fleet.io/hello", 0, false, true},
		{"dev-1", sub, "inbox/dev-1.fleet.io/#", 1, false, true},
		{"dev-1", sub, "public/#", 0, false, false},
		{"dev-1", sub, "$SYS/#", 0, false, false},

		{"alice", sub, "devices/+/telemetry", 1, false, true},
		{"alice", sub, "devices/#", 0, false, false},
		{"alice", deliver, "devices/dev-1/telemetry", 2, false, true},
		{"alice", deliver, "devices/dev-1/state", 0, false, false},
		{"alice", pub, "devices/dev-1/cmd/reboot", 1, false, true},
		{"alice", pub, "devices/dev-1/cmd/reboot", 2, false, false},
		{"alice", pub, "users/alice/notes", 0, true, true},
		{"alice", pub, "users/bob/notes", 0, false, false},
		{"alice", sub, "$SYS/broker/clients/+", 0, false, true},
		{"alice", sub, "$SYS/#", 0, false, false},
		{"alice", pub, "fleet/alice/hello", 0, false, false},

		{"root", pub, "anything/at/all", 2, true, true},
		{"root", sub, "#", 2, false, false}, // meets the global deny on restricted/#
		{"root", sub, "data/#", 2, false, true},
		{"root", sub, "$SYS/#", 0, false, true},
		{"root", pub, "$SYS/broker/uptime", 0, false, false},
		{"root", pub, "restricted/x", 0, false, false},
		{"root", sub, "restricted/+", 0, false, false},

		{"guest", sub, "public/news", 0, false, true},
		{"guest", sub, "public/#", 1, false, false},
		{"guest", deliver, "public/news", 1, false, false},
		{"guest", pub, "guests/guest-1/hi", 0, false, true},
		{"guest", pub, "guests/guest-2/hi", 0, false, false},
		{"guest", sub, "inbox/+/#", 0, false, false},
		{"guest", pub, "public/news", 0, false, false},

		{"mallory", pub, "devices/dev-1/telemetry", 0, false, false},
		{"mallory", pub, "devices/#/telemetry", 0, false, false},
		{"mallory", sub, "devices/+/cmd/#", 0, false, false},
		{"mallory", sub, "devices/#", 0, false, false},
		{"mallory", sub, "inbox/+/#", 0, false, false},
		{"mallory", sub, "inbox/#", 0, false, false},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%s/%s/%s/qos%d/retain=%v", tc.who, tc.action, tc.topic, tc.qos, tc.retain)
		t.Run(name, func(t *testing.T) {
			c, ok := clients[tc.who]
			if !ok {
				t.Fatalf("no client %q", tc.who)
			}
			p := a.Policy(c.id, c.clientID)
			var got bool
			switch tc.action {
			case pub:
				got = p.CanPublishMsg(tc.topic, tc.qos, tc.retain)
			case sub, deliver:
				got = p.CanSubscribeQoS(tc.topic, tc.qos)
			}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkPolicy_GlobalRules measures checks that walk 100 role rules and
// the global rules that apply out of 100, half of which name other
// clients, with the match in the last global rule.
func BenchmarkPolicy_GlobalRules(b *testing.B) {
	roleRules := make([]Rule, 0, 100)
	for i := range 100 {
		roleRules = append(roleRules, allow(ActionAll, fmt.Sprintf("fleet/%d/%%c/#", i)))
	}
	globalRules := make([]GlobalRule, 0, 100)
	for i := range 99 {
		subject := "client:dev-*"
		if i%2 == 1 {
			subject = fmt.Sprintf("user:other-%d", i)
		}
		r := withMaxQoS(allow(ActionPublish, fmt.Sprintf("site/%d/%%u/+", i)), 1)
		globalRules = append(globalRules, global(b, subject, r))
	}
	globalRules = append(globalRules, global(b, "group:fleet", withMaxQoS(allow(ActionAll, "devices/%c/telemetry/+"), 1)))
	a, _ := newGlobalAuthorizer(b, AuthorizerConfig{}, []Role{{Name: "r", Rules: roleRules}}, nil, globalRules)
	id := Identity{Username: "u", Roles: []string{"r"}, Groups: []string{"fleet"}, Method: MethodPassword}
	p := a.Policy(id, "dev-42")

	b.Run("CanPublish", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if p.CanPublish("devices/dev-42/telemetry/temp") {
				b.Fatal("allowed above MaxQoS")
			}
		}
	})
	b.Run("CanPublishMsg", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !p.CanPublishMsg("devices/dev-42/telemetry/temp", 1, false) {
				b.Fatal("denied")
			}
		}
	})
	b.Run("CanSubscribeQoS", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !p.CanSubscribeQoS("devices/dev-42/telemetry/+", 1) {
				b.Fatal("denied")
			}
		}
	})
	b.Run("Policy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.Policy(id, "dev-42")
		}
	})
}
