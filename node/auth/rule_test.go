package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/starling-mqtt/starling/router"
)

func TestParseRule(t *testing.T) {
	valid := []string{
		"#", "+", "a/b", "a/+/c", "a/#", "devices/%c/#", "users/%u/%c", "x/dev-%c-suffix/y",
		"literal/100%%", "/", "a//b", "$SYS/#", "%c",
	}
	for _, topic := range valid {
		t.Run("valid:"+topic, func(t *testing.T) {
			if err := ParseRule(Rule{Action: ActionAll, Permission: Allow, Topic: topic}); err != nil {
				t.Errorf("ParseRule(%q): %v", topic, err)
			}
		})
	}

	invalid := map[string]Rule{
		"empty-topic":     {Action: ActionAll, Permission: Allow, Topic: ""},
		"hash-not-last":   {Action: ActionAll, Permission: Allow, Topic: "a/#/b"},
		"hash-in-level":   {Action: ActionAll, Permission: Allow, Topic: "a/b#"},
		"plus-in-level":   {Action: ActionAll, Permission: Allow, Topic: "a/b+/c"},
		"unknown-var":     {Action: ActionAll, Permission: Allow, Topic: "a/%x"},
		"trailing-pct":    {Action: ActionAll, Permission: Allow, Topic: "a/%"},
		"share-prefix":    {Action: ActionAll, Permission: Allow, Topic: "$share/g/a"},
		"nul":             {Action: ActionAll, Permission: Allow, Topic: "a\x00"},
		"bad-utf8":        {Action: ActionAll, Permission: Allow, Topic: "a\xff"},
		"bad-action":      {Action: "read", Permission: Allow, Topic: "a"},
		"bad-permission":  {Action: ActionAll, Permission: "maybe", Topic: "a"},
		"empty-action":    {Permission: Allow, Topic: "a"},
		"too-long":        {Action: ActionAll, Permission: Allow, Topic: strings.Repeat("a", maxPatternLen+1)},
		"var-beside-plus": {Action: ActionAll, Permission: Allow, Topic: "a/%c+"},
		"max-qos-3":       {Action: ActionAll, Permission: Allow, Topic: "a", MaxQoS: new(byte(3))},
		"retain-on-sub":   {Action: ActionSubscribe, Permission: Allow, Topic: "a", Retain: new(true)},
		"retain-on-all":   {Action: ActionAll, Permission: Deny, Topic: "a", Retain: new(false)},
	}
	for name, r := range invalid {
		t.Run("invalid:"+name, func(t *testing.T) {
			if err := ParseRule(r); !errors.Is(err, ErrInvalidRule) {
				t.Errorf("ParseRule(%+v) error = %v, want ErrInvalidRule", r, err)
			}
		})
	}
}

func TestParseRule_Limits(t *testing.T) {
	valid := map[string]Rule{
		"max-qos-0":         {Action: ActionAll, Permission: Allow, Topic: "a", MaxQoS: new(byte(0))},
		"max-qos-2":         {Action: ActionSubscribe, Permission: Deny, Topic: "a", MaxQoS: new(byte(2))},
		"retain-on-publish": {Action: ActionPublish, Permission: Allow, Topic: "a", Retain: new(true), MaxQoS: new(byte(1))},
		"negative-priority": {Action: ActionAll, Permission: Allow, Topic: "a", Priority: -7},
	}
	for name, r := range valid {
		t.Run(name, func(t *testing.T) {
			if err := ParseRule(r); err != nil {
				t.Errorf("ParseRule(%+v): %v", r, err)
			}
		})
	}
}

func TestCompiledRule_RequestMasks(t *testing.T) {
	cases := []struct {
		name                   string
		rule                   Rule
		wantPublish, wantSubsc uint8
	}{
		{"all", Rule{Action: ActionAll}, allPublishes, allSubscribes},
		{"publish", Rule{Action: ActionPublish}, allPublishes, 0},
		{"subscribe-qos-1", Rule{Action: ActionSubscribe, MaxQoS: new(byte(1))}, 0, subscribeBit(0) | subscribeBit(1)},
		{"retained-only", Rule{Action: ActionPublish, Retain: new(true)}, publishBit(0, true) | publishBit(1, true) | publishBit(2, true), 0},
		{"plain-qos-0", Rule{Action: ActionPublish, Retain: new(false), MaxQoS: new(byte(0))}, publishBit(0, false), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.rule.Permission, tc.rule.Topic = Allow, "a"
			c, err := compileRule(tc.rule)
			if err != nil {
				t.Fatal(err)
			}
			publish, subscribe := c.requestMasks()
			if publish != tc.wantPublish {
				t.Errorf("publish mask = %06b, want %06b", publish, tc.wantPublish)
			}
			if subscribe != tc.wantSubsc {
				t.Errorf("subscribe mask = %03b, want %03b", subscribe, tc.wantSubsc)
			}
		})
	}
	if publishBit(3, false) != 0 || subscribeBit(3) != 0 {
		t.Error("QoS 3 has a request bit")
	}
}

func TestParseLevelSegments(t *testing.T) {
	cases := map[string][]segment{
		"plain":   {{text: "plain"}},
		"%c":      {{variable: varClientID}},
		"dev-%c":  {{text: "dev-"}, {variable: varClientID}},
		"%u-%c":   {{variable: varUsername}, {text: "-"}, {variable: varClientID}},
		"100%%":   {{text: "100%"}},
		"%%c":     {{text: "%c"}},
		"a%cb%ub": {{text: "a"}, {variable: varClientID}, {text: "b"}, {variable: varUsername}, {text: "b"}},
	}
	for level, want := range cases {
		t.Run(level, func(t *testing.T) {
			got, err := parseLevelSegments(level)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("segments %+v, want %+v", got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("segment %d = %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}
}

// bindPattern parses a pattern and binds it, for match tests.
func bindPattern(t testing.TB, pattern, clientID, username string, allow bool) *boundRule {
	t.Helper()
	perm := Deny
	if allow {
		perm = Allow
	}
	c, err := compileRule(Rule{Action: ActionAll, Permission: perm, Topic: pattern})
	if err != nil {
		t.Fatalf("compile %q: %v", pattern, err)
	}
	return c.bind(clientID, username)
}

func TestMatchTopic_AgreesWithRouter(t *testing.T) {
	patterns := []string{"#", "+", "a", "a/b", "a/+", "a/#", "+/b", "+/+", "/", "/+", "a//b", "$SYS/#", "$SYS/+", "+/#"}
	topics := []string{"a", "a/b", "a/c", "a/b/c", "b", "/", "/a", "a/", "a//b", "$SYS", "$SYS/x", "$SYS/x/y", "x/b"}
	for _, p := range patterns {
		r := bindPattern(t, p, "c", "u", true)
		for _, topic := range topics {
			if got, want := matchTopic(r.levels, topic), router.MatchFilter(p, topic); got != want {
				t.Errorf("matchTopic(%q, %q) = %v, router.MatchFilter says %v", p, topic, got, want)
			}
		}
	}
}

func TestCoversAndIntersects(t *testing.T) {
	cases := []struct {
		pattern, filter    string
		covers, intersects bool
	}{
		{"#", "#", true, true},
		{"#", "a/+/c", true, true},
		{"#", "$SYS/x", false, false},
		{"+/#", "$SYS/#", false, false},
		{"$SYS/#", "#", false, false},
		{"$SYS/#", "+/x", false, false},
		{"$SYS/#", "$SYS/+", true, true},
		{"a/#", "a", true, true},
		{"a/#", "a/#", true, true},
		{"a/#", "#", false, true},
		{"a/+", "a/#", false, true},
		{"a/+", "a/+", true, true},
		{"a/+", "a/b", true, true},
		{"a/+", "a", false, false},
		{"a/+", "a/b/c", false, false},
		{"a/b", "a/+", false, true},
		{"a/b", "a/b", true, true},
		{"a/b", "a/c", false, false},
		{"a/b", "a/#", false, true},
		{"a/b/c", "a/#", false, true},
		{"+", "+", true, true},
		{"+", "a", true, true},
		{"+", "$x", false, false},
		{"+", "#", false, true},
		{"+/+", "a", false, false},
		{"a", "a/#", false, true},
		{"a", "+/#", false, true},
		{"x/y", "+/#", false, true},
	}
	for _, tc := range cases {
		r := bindPattern(t, tc.pattern, "c", "u", true)
		if got := coversFilter(r.levels, tc.filter); got != tc.covers {
			t.Errorf("coversFilter(%q, %q) = %v, want %v", tc.pattern, tc.filter, got, tc.covers)
		}
		if got := intersectsFilter(r.levels, tc.filter); got != tc.intersects {
			t.Errorf("intersectsFilter(%q, %q) = %v, want %v", tc.pattern, tc.filter, got, tc.intersects)
		}
	}
}

// FuzzParseRule checks that parsing never panics and that a pattern with no
// variables matches exactly as router.MatchFilter does, and that covers and
// intersects are consistent with matching on the topic given.
func FuzzParseRule(f *testing.F) {
	f.Add("devices/%c/#", "devices/x/y", "devices/+/y", "x")
	f.Add("a/+", "a/b", "a/#", "c")
	f.Add("#", "$SYS/x", "#", "+")
	f.Add("%u/%c", "u/c", "u/+", "site/a")
	f.Add("x/%%/y", "x/%/y", "x/+/y", "#")
	f.Fuzz(func(t *testing.T, pattern, topic, filter, identity string) {
		c, err := compileRule(Rule{Action: ActionAll, Permission: Allow, Topic: pattern})
		if err != nil {
			if !errors.Is(err, ErrInvalidRule) {
				t.Fatalf("error %v does not wrap ErrInvalidRule", err)
			}
			return
		}
		r := c.bind(identity, identity)
		if r == nil {
			return
		}
		if router.ValidateTopicName(topic, 0, 0) != nil || router.ValidateFilter(filter, 0, 0) != nil {
			return
		}
		if _, _, shared := router.ParseShared(filter); shared {
			return
		}
		if !c.hasVariables && !strings.Contains(pattern, "%") {
			if got, want := matchTopic(r.levels, topic), router.MatchFilter(pattern, topic); got != want {
				t.Fatalf("matchTopic(%q, %q) = %v, router.MatchFilter says %v", pattern, topic, got, want)
			}
		}
		inFilter := router.MatchFilter(filter, topic)
		inPattern := matchTopic(r.levels, topic)
		if inFilter && !inPattern && coversFilter(r.levels, filter) {
			t.Fatalf("coversFilter(%q, %q) but topic %q is in the filter only", pattern, filter, topic)
		}
		if inFilter && inPattern && !intersectsFilter(r.levels, filter) {
			t.Fatalf("intersectsFilter(%q, %q) is false but both match %q", pattern, filter, topic)
		}
	})
}

// TestCoversAndIntersects_Exhaustive compares coversFilter and
// intersectsFilter with brute force over every topic of up to 4 levels
// drawn from {a, b, $s, ""}, for every valid pattern and filter of up to 3
// levels drawn from {a, $s, +, #}. Level "b" appears in no pattern, so it
// stands for every other name.
func TestCoversAndIntersects_Exhaustive(t *testing.T) {
	expressions := combine([]string{"a", "$s", "+", "#"}, 3)
	var topics []string
	for _, topic := range combine([]string{"a", "b", "$s", ""}, 4) {
		if router.ValidateTopicName(topic, 0, 0) == nil {
			topics = append(topics, topic)
		}
	}
	for _, pattern := range expressions {
		if router.ValidateFilter(pattern, 0, 0) != nil {
			continue
		}
		r := bindPattern(t, pattern, "c", "u", true)
		for _, filter := range expressions {
			if router.ValidateFilter(filter, 0, 0) != nil {
				continue
			}
			wantCovers, wantIntersects := true, false
			for _, topic := range topics {
				inFilter, inPattern := router.MatchFilter(filter, topic), router.MatchFilter(pattern, topic)
				if inFilter && !inPattern {
					wantCovers = false
				}
				if inFilter && inPattern {
					wantIntersects = true
				}
			}
			if got := coversFilter(r.levels, filter); got != wantCovers {
				t.Errorf("coversFilter(%q, %q) = %v, want %v", pattern, filter, got, wantCovers)
			}
			if got := intersectsFilter(r.levels, filter); got != wantIntersects {
				t.Errorf("intersectsFilter(%q, %q) = %v, want %v", pattern, filter, got, wantIntersects)
			}
		}
	}
}

// combine returns every '/'-joined sequence of 1 to maxLevels levels.
func combine(levels []string, maxLevels int) []string {
	var out []string
	prev := []string{""}
	for n := 1; n <= maxLevels; n++ {
		var next []string
		for _, p := range prev {
			for _, l := range levels {
				s := l
				if n > 1 {
					s = p + "/" + l
				}
				next = append(next, s)
			}
		}
		out = append(out, next...)
		prev = next
	}
	return out
}
