package router

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidateTopicName(t *testing.T) {
	tests := []struct {
		name      string
		topic     string
		maxLen    int
		maxLevels int
		wantErr   error // nil for a valid topic
	}{
		{name: "simple", topic: "a/b/c"},
		{name: "single-slash", topic: "/"},
		{name: "leading-slash", topic: "/a"},
		{name: "trailing-slash", topic: "a/"},
		{name: "empty-levels", topic: "a//b"},
		{name: "space", topic: "a b/c"},
		{name: "dollar", topic: "$SYS/broker/uptime"},
		{name: "unicode", topic: "temp/°C/über"},
		{name: "empty", topic: "", wantErr: ErrInvalidTopic},                   // [MQTT-4.7.3-1]
		{name: "plus", topic: "a/+/c", wantErr: ErrInvalidTopic},               // [MQTT-4.7.0-1]
		{name: "hash", topic: "a/#", wantErr: ErrInvalidTopic},                 // [MQTT-4.7.0-1]
		{name: "plus-inside-level", topic: "a+b", wantErr: ErrInvalidTopic},    // [MQTT-4.7.0-1]
		{name: "null", topic: "a\x00b", wantErr: ErrInvalidTopic},              // [MQTT-4.7.3-2]
		{name: "bad-utf8", topic: "a/\xff", wantErr: ErrInvalidTopic},          // [MQTT-1.5.4-1]
		{name: "surrogate", topic: "a/\xed\xa0\x80", wantErr: ErrInvalidTopic}, // U+D800
		{name: "at-max-len", topic: "abcd", maxLen: 4},
		{name: "over-max-len", topic: "abcde", maxLen: 4, wantErr: ErrTopicTooLong},
		{name: "at-max-levels", topic: "a/b/c", maxLevels: 3},
		{name: "over-max-levels", topic: "a/b/c/d", maxLevels: 3, wantErr: ErrTooManyLevels},
		{name: "empty-levels-count", topic: "//", maxLevels: 2, wantErr: ErrTooManyLevels},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTopicName(tt.topic, tt.maxLen, tt.maxLevels)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ValidateTopicName(%q) = %v, want nil", tt.topic, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ValidateTopicName(%q) = %v, want %v", tt.topic, err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidTopic) {
				t.Errorf("ValidateTopicName(%q) = %v, does not match ErrInvalidTopic", tt.topic, err)
			}
		})
	}
}

func TestValidateFilter(t *testing.T) {
	tests := []struct {
		name      string
		filter    string
		maxLen    int
		maxLevels int
		wantErr   error // nil for a valid filter
	}{
		{name: "exact", filter: "a/b/c"},
		{name: "hash-alone", filter: "#"},
		{name: "plus-alone", filter: "+"},
		{name: "hash-last", filter: "a/b/#"},
		{name: "plus-levels", filter: "+/+/+"},
		{name: "plus-then-hash", filter: "+/#"},
		{name: "single-slash", filter: "/"},
		{name: "leading-empty-hash", filter: "/#"},
		{name: "empty-levels", filter: "a//+"},
		{name: "dollar", filter: "$SYS/#"},
		{name: "share-word-alone", filter: "$share"},
		{name: "shared", filter: "$share/g/a/+/#"},
		{name: "shared-hash", filter: "$share/g/#"},
		{name: "shared-slash", filter: "$share/g//"},
		{name: "shared-dollar", filter: "$share/g/$SYS/#"},
		{name: "empty", filter: "", wantErr: ErrInvalidFilter},                    // [MQTT-4.7.3-1]
		{name: "null", filter: "a/\x00", wantErr: ErrInvalidFilter},               // [MQTT-4.7.3-2]
		{name: "bad-utf8", filter: "\xc3", wantErr: ErrInvalidFilter},             // [MQTT-1.5.4-1]
		{name: "hash-not-last", filter: "a/#/b", wantErr: ErrInvalidFilter},       // [MQTT-4.7.1-1]
		{name: "hash-in-level", filter: "a/b#", wantErr: ErrInvalidFilter},        // [MQTT-4.7.1-1]
		{name: "hash-prefix", filter: "#a", wantErr: ErrInvalidFilter},            // [MQTT-4.7.1-1]
		{name: "double-hash", filter: "##", wantErr: ErrInvalidFilter},            // [MQTT-4.7.1-1]
		{name: "plus-in-level", filter: "a/b+", wantErr: ErrInvalidFilter},        // [MQTT-4.7.1-2]
		{name: "plus-prefix", filter: "+a/b", wantErr: ErrInvalidFilter},          // [MQTT-4.7.1-2]
		{name: "plus-hash", filter: "+#", wantErr: ErrInvalidFilter},              // [MQTT-4.7.1-2]
		{name: "shared-no-group", filter: "$share//a", wantErr: ErrInvalidFilter}, // [MQTT-4.8.2-1]
		{name: "shared-prefix-only", filter: "$share/", wantErr: ErrInvalidFilter},
		{name: "shared-no-filter", filter: "$share/g", wantErr: ErrInvalidFilter},        // [MQTT-4.8.2-2]
		{name: "shared-empty-filter", filter: "$share/g/", wantErr: ErrInvalidFilter},    // [MQTT-4.8.2-2]
		{name: "shared-plus-group", filter: "$share/g+/a", wantErr: ErrInvalidFilter},    // [MQTT-4.8.2-2]
		{name: "shared-hash-group", filter: "$share/#/a", wantErr: ErrInvalidFilter},     // [MQTT-4.8.2-2]
		{name: "shared-bad-filter", filter: "$share/g/a/#/b", wantErr: ErrInvalidFilter}, // [MQTT-4.7.1-1]
		{name: "at-max-len", filter: "a/+", maxLen: 3},
		{name: "over-max-len", filter: "a/+/", maxLen: 3, wantErr: ErrTopicTooLong},
		{name: "shared-len-counts-prefix", filter: "$share/g/a", maxLen: 9, wantErr: ErrTopicTooLong},
		{name: "at-max-levels", filter: "a/+/#", maxLevels: 3},
		{name: "over-max-levels", filter: "a/+/b/#", maxLevels: 3, wantErr: ErrTooManyLevels},
		{name: "shared-levels-skip-prefix", filter: "$share/g/a/b", maxLevels: 2},
		{name: "shared-over-max-levels", filter: "$share/g/a/b/c", maxLevels: 2, wantErr: ErrTooManyLevels},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateFilter(tt.filter, tt.maxLen, tt.maxLevels)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ValidateFilter(%q) = %v, want nil", tt.filter, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ValidateFilter(%q) = %v, want %v", tt.filter, err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidFilter) {
				t.Errorf("ValidateFilter(%q) = %v, does not match ErrInvalidFilter", tt.filter, err)
			}
		})
	}
}

func TestValidationError_Message(t *testing.T) {
	err := ValidateFilter("a/#/b", 0, 0)
	want := `router: invalid topic filter "a/#/b": '#' must be the whole last level`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}

	long := strings.Repeat("x", 1000)
	err = ValidateTopicName(long, 100, 0)
	if err == nil {
		t.Fatal("ValidateTopicName accepted a topic over the limit")
	}
	if n := len(err.Error()); n > 200 {
		t.Errorf("error message is %d bytes, want the topic truncated: %s", n, err)
	}
	if !strings.Contains(err.Error(), "1000 bytes exceeds the maximum of 100") {
		t.Errorf("error = %v, want the length and the limit", err)
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		name       string
		filter     string
		wantGroup  string
		wantFilter string
		wantShared bool
	}{
		{"shared", "$share/g/a/b", "g", "a/b", true},
		{"shared-hash", "$share/group1/#", "group1", "#", true},
		{"shared-leading-slash", "$share/g//a", "g", "/a", true},
		{"plain", "a/b", "", "a/b", false},
		{"share-word-alone", "$share", "", "$share", false},
		{"other-dollar", "$SYS/#", "", "$SYS/#", false},
		{"case-sensitive", "$SHARE/g/a", "", "$SHARE/g/a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			group, filter, shared := ParseShared(tt.filter)
			if group != tt.wantGroup || filter != tt.wantFilter || shared != tt.wantShared {
				t.Errorf("ParseShared(%q) = %q, %q, %v, want %q, %q, %v",
					tt.filter, group, filter, shared, tt.wantGroup, tt.wantFilter, tt.wantShared)
			}
		})
	}
}

// matchCases are the filter and topic pairs shared by the MatchFilter, Trie
// and Tree table tests.
var matchCases = []struct {
	name   string
	filter string
	topic  string
	want   bool
}{
	{"exact", "a/b/c", "a/b/c", true},
	{"exact-differs", "a/b/c", "a/b/d", false},
	{"exact-shorter-topic", "a/b/c", "a/b", false},
	{"exact-longer-topic", "a/b", "a/b/c", false},
	{"case-sensitive", "a/B", "a/b", false},
	{"plus-at-root", "+", "a", true},
	{"plus-at-root-two-levels", "+", "a/b", false},
	{"plus-middle", "a/+/c", "a/b/c", true},
	{"plus-middle-too-deep", "a/+/c", "a/b/x/c", false},
	{"plus-last", "a/+", "a/b", true},
	{"plus-does-not-match-parent", "a/+", "a", false},
	{"plus-matches-empty-last", "a/+", "a/", true},
	{"plus-matches-empty-middle", "a/+/b", "a//b", true},
	{"plus-matches-empty-topic-level", "+", "", true},
	{"plus-plus-leading-slash", "+/+", "/x", true},
	{"plus-plus-single-slash", "+/+", "/", true},
	{"plus-single-slash", "+", "/", false},
	{"leading-slash-literal", "/x", "/x", true},
	{"leading-slash-differs", "/x", "x", false},
	{"trailing-slash-differs", "a", "a/", false},
	{"empty-level-literal", "a//b", "a//b", true},
	{"slash-filter", "/", "/", true},
	{"hash-matches-all", "#", "a/b/c", true},
	{"hash-matches-one-level", "#", "a", true},
	{"hash-matches-slash", "#", "/", true},
	{"hash-matches-leading-slash", "#", "/x", true},
	{"hash-matches-parent", "a/#", "a", true}, // sport/tennis/player1/# matches sport/tennis/player1
	{"hash-matches-child", "a/#", "a/b", true},
	{"hash-matches-deep", "a/#", "a/b/c/d", true},
	{"hash-matches-empty-child", "a/#", "a/", true},
	{"hash-other-branch", "a/#", "b/a", false},
	{"hash-prefix-not-level", "a/#", "ab", false},
	{"plus-hash", "+/#", "a", true},
	{"plus-hash-deep", "+/#", "a/b/c", true},
	{"plus-plus-hash-parent", "a/+/#", "a/b", true},
	{"plus-plus-hash-too-short", "a/+/#", "a", false},
	{"leading-empty-hash", "/#", "/a", true},
	{"leading-empty-hash-no-slash", "/#", "a", false},
	{"hash-not-dollar", "#", "$SYS/x", false},               // [MQTT-4.7.2-1]
	{"hash-not-dollar-alone", "#", "$", false},              // [MQTT-4.7.2-1]
	{"plus-not-dollar", "+/monitor", "$SYS/monitor", false}, // [MQTT-4.7.2-1]
	{"plus-hash-not-dollar", "+/#", "$SYS/x", false},        // [MQTT-4.7.2-1]
	{"dollar-sys-hash", "$SYS/#", "$SYS/x", true},
	{"dollar-sys-hash-parent", "$SYS/#", "$SYS", true},
	{"dollar-sys-plus", "$SYS/+/uptime", "$SYS/broker/uptime", true},
	{"dollar-later-level", "a/+", "a/$x", true},
	{"dollar-later-level-hash", "a/#", "a/$x/y", true},
	{"dollar-middle-of-level", "+", "a$", true},
	{"share-prefix-literal", "$share/g/a", "a", false},
	{"invalid-hash-not-last", "a/#/b", "a/x/b", false},
	{"invalid-hash-not-last-parent", "a/#/b", "a", false},
	{"invalid-plus-in-level", "a+", "ab", false},
	{"invalid-plus-in-level-literal", "a+", "a+", true},
}

func TestMatchFilter(t *testing.T) {
	for _, tt := range matchCases {
		t.Run(tt.name, func(t *testing.T) {
			if got := MatchFilter(tt.filter, tt.topic); got != tt.want {
				t.Errorf("MatchFilter(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
			}
		})
	}
}

// splitMatch is a second matcher written from the spec with strings.Split,
// as an oracle for MatchFilter. It follows the same rules for invalid filters.
func splitMatch(filter, topic string) bool {
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, level := range fl {
		if level == "#" {
			return i == len(fl)-1
		}
		if i >= len(tl) {
			return false
		}
		if level != "+" && level != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

// splitValidFilter is a second filter validator written from the spec with
// strings.Split, as an oracle for ValidateFilter without limits.
func splitValidFilter(filter string) bool {
	if filter == "" || strings.ContainsRune(filter, 0) || !utf8.ValidString(filter) {
		return false
	}
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		group, f, found := strings.Cut(rest, "/")
		if group == "" || strings.ContainsAny(group, "+#") || !found || f == "" {
			return false
		}
		filter = f
	}
	levels := strings.Split(filter, "/")
	for i, level := range levels {
		if strings.Contains(level, "#") && (level != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(level, "+") && level != "+" {
			return false
		}
	}
	return true
}

func FuzzValidateFilter(f *testing.F) {
	for _, s := range []string{"a/b", "#", "+/+", "a/#/b", "$share/g/a/#", "$share//a", "$share/g", "/", "a\x00", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		err := ValidateFilter(filter, 0, 0)
		if want := splitValidFilter(filter); (err == nil) != want {
			t.Fatalf("ValidateFilter(%q) = %v, oracle valid = %v", filter, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalidFilter) {
			t.Fatalf("ValidateFilter(%q) = %v, does not match ErrInvalidFilter", filter, err)
		}

		// A valid topic name is also a valid filter, unless its "$share/"
		// prefix makes it an invalid shared filter.
		if ValidateTopicName(filter, 0, 0) == nil && err != nil && !strings.HasPrefix(filter, sharePrefix) {
			t.Fatalf("topic name %q is not a valid filter: %v", filter, err)
		}
		if err != nil {
			return
		}

		group, body, shared := ParseShared(filter)
		if shared != strings.HasPrefix(filter, sharePrefix) {
			t.Fatalf("ParseShared(%q) shared = %v", filter, shared)
		}
		if shared && sharePrefix+group+"/"+body != filter {
			t.Fatalf("ParseShared(%q) = %q, %q, which does not rebuild the filter", filter, group, body)
		}
		if !shared && (group != "" || body != filter) {
			t.Fatalf("ParseShared(%q) = %q, %q for a plain filter", filter, group, body)
		}
	})
}

// FuzzMatchFilter checks that MatchFilter, Trie.Match, Tree.Match and the
// split oracle agree on any filter and topic, valid or not.
func FuzzMatchFilter(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.filter, c.topic)
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		want := MatchFilter(filter, topic)
		if got := splitMatch(filter, topic); got != want {
			t.Fatalf("MatchFilter(%q, %q) = %v, oracle = %v", filter, topic, want, got)
		}

		var trie Trie
		trie.Add(Entry{ClientID: "c", Filter: filter})
		if got := len(trie.Match(topic, nil)) == 1; got != want {
			t.Fatalf("Trie.Match(%q) with filter %q = %v, MatchFilter = %v", topic, filter, got, want)
		}
		if !trie.Remove("c", "", filter) || trie.Len() != 0 || !trie.mu.root.isEmpty() {
			t.Fatalf("Trie.Remove(%q) left the trie non-empty", filter)
		}

		var tree Tree[int]
		tree.Set(topic, 1)
		got := false
		tree.Match(filter, func(string, int) bool { got = true; return true })
		if got != want {
			t.Fatalf("Tree.Match(%q) with topic %q = %v, MatchFilter = %v", filter, topic, got, want)
		}
		if !tree.Delete(topic) || tree.Len() != 0 || tree.mu.root.children != nil {
			t.Fatalf("Tree.Delete(%q) left the tree non-empty", topic)
		}
	})
}

func BenchmarkMatchFilter(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		MatchFilter("sensors/+/floor3/+/temperature/#", "sensors/building7/floor3/room12/temperature/celsius")
	}
}
