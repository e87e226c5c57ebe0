package auth

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Action is the kind of packet an ACL rule applies to.
type Action string

// Actions of a rule.
const (
	ActionPublish   Action = "publish"   // PUBLISH and the will message
	ActionSubscribe Action = "subscribe" // SUBSCRIBE
	ActionAll       Action = "all"       // both
)

// Permission is the decision of a rule that matches.
type Permission string

// Permissions of a rule.
const (
	Allow Permission = "allow"
	Deny  Permission = "deny"
)

// Rule is one ACL rule. Rules are checked by Priority, higher first, then in
// order, and the first one that matches decides (see Policy for the exact
// order and for the meaning with subscriptions).
//
// Topic is a topic filter pattern of levels separated by '/'. A level is "+"
// (any one level), "#" (any number of levels, including none, and only
// last), or literal text. Literal text may contain the variables %c (the
// client id) and %u (the user name), and "%%" is a literal '%'. Like a topic filter, a
// pattern that starts with a wildcard does not match topics that start with
// '$' [MQTT-4.7.2-1], so "$SYS/#" must be granted by its own rule.
//
// A substituted identity is always literal text within its level: a client
// id "+" or "#" matches only a level spelled "+" or "#", never acts as a
// wildcard. An identity that cannot fill one level, because it is empty or
// contains '/', makes an allow rule that uses it match nothing, and makes a
// deny rule that uses it act as if that level were "+". Either way the
// client gets less, never more.
//
// MaxQoS and Retain narrow the requests a rule matches. A request outside
// them skips the rule, which then neither allows nor denies it. The JSON
// encoding leaves out MaxQoS, Retain and Priority when unset, so a rule
// without them encodes as it did before they existed.
type Rule struct {
	Action     Action
	Permission Permission
	Topic      string

	// MaxQoS, when set to 0, 1 or 2, makes the rule match only publishes,
	// subscriptions and deliveries at this QoS or below. Nil matches every
	// QoS. To cap a client at QoS 1, allow with MaxQoS 1. A QoS 2 request
	// then skips the rule and falls to later rules or the default deny.
	MaxQoS *byte `json:",omitempty"`

	// Retain, when set, makes a publish rule match only retained publishes
	// (true) or only publishes without the retain flag (false). Nil matches
	// both. Only a rule with Action publish may set it, because a
	// subscription carries no retain flag to compare.
	Retain *bool `json:",omitempty"`

	// Priority orders rules. A higher priority is checked first, and rules
	// of equal priority keep the order that Authorizer.Policy lists, so
	// with every priority at the default, zero, that order alone applies.
	Priority int `json:",omitempty"`
}

// cloneRules returns a deep copy of rules, with new MaxQoS and Retain
// pointers, so a caller that changes a copy does not change the original.
func cloneRules(rules []Rule) []Rule {
	if rules == nil {
		return nil
	}
	out := make([]Rule, len(rules))
	for i, r := range rules {
		out[i] = cloneRule(r)
	}
	return out
}

// cloneRule returns a copy of r with its own MaxQoS and Retain values.
func cloneRule(r Rule) Rule {
	if r.MaxQoS != nil {
		r.MaxQoS = new(*r.MaxQoS)
	}
	if r.Retain != nil {
		r.Retain = new(*r.Retain)
	}
	return r
}

// maxPatternLen bounds a rule's topic pattern, the same bound the MQTT wire
// format puts on a topic filter.
const maxPatternLen = 65535

// levelKind is the way a pattern level matches.
type levelKind uint8

const (
	levelLiteral levelKind = iota
	levelPlus
	levelHash
)

// variable is a substitution in a pattern level.
type variable uint8

const (
	varNone variable = iota
	varClientID
	varUsername
)

// segment is a piece of a literal pattern level: text, or a variable.
type segment struct {
	text     string
	variable variable
}

// patternLevel is one level of a parsed pattern. Only literal levels have
// segments; a literal level without variables has exactly one text segment.
type patternLevel struct {
	kind     levelKind
	segments []segment
}

// retainFilter is the retain flag a publish must carry to match a rule.
type retainFilter uint8

const (
	retainAny retainFilter = iota
	retainOnly
	retainNever
)

// matches reports whether a publish with the retain flag retain passes f.
func (f retainFilter) matches(retain bool) bool {
	switch f {
	case retainOnly:
		return retain
	case retainNever:
		return !retain
	}
	return true
}

// compiledRule is a Rule with its pattern parsed.
type compiledRule struct {
	publish, subscribe bool
	allow              bool
	levels             []patternLevel
	hasVariables       bool
	usesClientID       bool // the pattern contains %c
	matchAll           bool // matches every topic and filter, "$" ones included; only for denyEverything
	maxQoS             byte // highestQoS when the rule sets no MaxQoS
	retain             retainFilter
	priority           int

	// shared is the bound form of a rule without variables, which every
	// connection can share instead of holding its own copy.
	shared *boundRule
}

// ParseRule checks a rule and returns an error wrapping ErrInvalidRule that
// names what is wrong.
func ParseRule(r Rule) error {
	_, err := compileRule(r)
	return err
}

// compileRule checks and parses a rule.
func compileRule(r Rule) (*compiledRule, error) {
	c := &compiledRule{maxQoS: highestQoS, priority: r.Priority}

	switch r.Action {
	case ActionPublish:
		c.publish = true
	case ActionSubscribe:
		c.subscribe = true
	case ActionAll:
		c.publish, c.subscribe = true, true
	default:
		return nil, fmt.Errorf("%w: action %q is not publish, subscribe or all", ErrInvalidRule, r.Action)
	}

	switch r.Permission {
	case Allow:
		c.allow = true
	case Deny:
	default:
		return nil, fmt.Errorf("%w: permission %q is not allow or deny", ErrInvalidRule, r.Permission)
	}

	if r.MaxQoS != nil {
		if *r.MaxQoS > highestQoS {
			return nil, fmt.Errorf("%w: max QoS %d is not 0, 1 or 2", ErrInvalidRule, *r.MaxQoS)
		}
		c.maxQoS = *r.MaxQoS
	}

	if r.Retain != nil {
		if r.Action != ActionPublish {
			return nil, fmt.Errorf("%w: retain is set on a rule with action %q, but only publish rules may set it", ErrInvalidRule, r.Action)
		}
		c.retain = retainNever
		if *r.Retain {
			c.retain = retainOnly
		}
	}

	levels, err := parsePattern(r.Topic)
	if err != nil {
		return nil, err
	}
	c.levels = levels
	for _, l := range levels {
		for _, s := range l.segments {
			c.hasVariables = c.hasVariables || s.variable != varNone
			c.usesClientID = c.usesClientID || s.variable == varClientID
		}
	}
	if !c.hasVariables {
		c.shared = c.bind("", "")
	}
	return c, nil
}

// parsePattern parses a rule's topic pattern into levels.
func parsePattern(pattern string) ([]patternLevel, error) {
	switch {
	case pattern == "":
		return nil, fmt.Errorf("%w: empty topic pattern", ErrInvalidRule)
	case len(pattern) > maxPatternLen:
		return nil, fmt.Errorf("%w: topic pattern of %d bytes exceeds %d", ErrInvalidRule, len(pattern), maxPatternLen)
	case !utf8.ValidString(pattern) || strings.IndexByte(pattern, 0) >= 0:
		return nil, fmt.Errorf("%w: topic pattern is not UTF-8 without NUL", ErrInvalidRule)
	case strings.HasPrefix(pattern, "$share/"):
		// Subscriptions are authorized by their topic filter, after the
		// share prefix, so a rule on the prefix would never match.
		return nil, fmt.Errorf("%w: topic pattern %q starts with $share/; write the topic filter without it", ErrInvalidRule, quoteShort(pattern))
	}

	texts := strings.Split(pattern, "/")
	levels := make([]patternLevel, 0, len(texts))
	for i, text := range texts {
		switch {
		case text == "#":
			if i != len(texts)-1 {
				return nil, fmt.Errorf("%w: '#' must be the last level of %q", ErrInvalidRule, quoteShort(pattern))
			}
			levels = append(levels, patternLevel{kind: levelHash})
			continue
		case text == "+":
			levels = append(levels, patternLevel{kind: levelPlus})
			continue
		case strings.ContainsAny(text, "+#"):
			return nil, fmt.Errorf("%w: a wildcard must be a whole level in %q", ErrInvalidRule, quoteShort(pattern))
		}
		segments, err := parseLevelSegments(text)
		if err != nil {
			return nil, fmt.Errorf("%w in %q", err, quoteShort(pattern))
		}
		levels = append(levels, patternLevel{kind: levelLiteral, segments: segments})
	}
	return levels, nil
}

// parseLevelSegments splits a literal level into text and %c/%u segments.
func parseLevelSegments(level string) ([]segment, error) {
	if !strings.Contains(level, "%") {
		return []segment{{text: level}}, nil
	}
	var (
		segments []segment
		text     strings.Builder
	)
	for i := 0; i < len(level); i++ {
		if level[i] != '%' {
			text.WriteByte(level[i])
			continue
		}
		if i+1 == len(level) {
			return nil, fmt.Errorf("%w: '%%' at the end of a level; write %%%% for a literal '%%'", ErrInvalidRule)
		}
		i++
		var v variable
		switch level[i] {
		case '%':
			text.WriteByte('%')
			continue
		case 'c':
			v = varClientID
		case 'u':
			v = varUsername
		default:
			return nil, fmt.Errorf("%w: unknown variable %%%c; use %%c, %%u or %%%%", ErrInvalidRule, level[i])
		}
		if text.Len() > 0 {
			segments = append(segments, segment{text: text.String()})
			text.Reset()
		}
		segments = append(segments, segment{variable: v})
	}
	if text.Len() > 0 || len(segments) == 0 {
		segments = append(segments, segment{text: text.String()})
	}
	return segments, nil
}

// quoteShort cuts s for an error message.
func quoteShort(s string) string {
	const maxQuoted = 64
	if len(s) <= maxQuoted {
		return s
	}
	return s[:maxQuoted] + "..."
}

// boundLevel is a pattern level with its variables substituted. For a
// literal level, text is compared byte for byte with the topic level, so a
// '+' or '#' that came from an identity is an ordinary character.
type boundLevel struct {
	kind levelKind
	text string
}

// boundRule is a rule with variables substituted for one connection.
//
// The masks list the requests the rule applies to, one bit per request
// kind (see publishBit and subscribeBit), so a check compares the request
// with the action, MaxQoS and Retain of a rule in one AND.
type boundRule struct {
	publishMask   uint8
	subscribeMask uint8
	allow         bool
	matchAll      bool
	priority      int
	levels        []boundLevel
}

// Request bits. A publish is one of six kinds, QoS 0 to 2 each with the
// retain flag clear or set, and a subscription or delivery one of three.
const (
	allPublishes  uint8 = 1<<6 - 1
	allSubscribes uint8 = 1<<3 - 1
	highestQoS    byte  = 2
)

// publishBit returns the request bit of a publish, or 0, which no rule
// matches, for a QoS above 2.
func publishBit(qos byte, retain bool) uint8 {
	if qos > highestQoS {
		return 0
	}
	bit := uint8(1) << (qos * 2)
	if retain {
		bit <<= 1
	}
	return bit
}

// subscribeBit returns the request bit of a subscription or delivery, or 0
// for a QoS above 2.
func subscribeBit(qos byte) uint8 {
	if qos > highestQoS {
		return 0
	}
	return uint8(1) << qos
}

// requestMasks returns the publish and subscribe requests c applies to.
func (c *compiledRule) requestMasks() (publish, subscribe uint8) {
	for qos := byte(0); qos <= c.maxQoS; qos++ {
		if c.publish {
			for _, retain := range []bool{false, true} {
				if c.retain.matches(retain) {
					publish |= publishBit(qos, retain)
				}
			}
		}
		if c.subscribe {
			subscribe |= subscribeBit(qos)
		}
	}
	return publish, subscribe
}

// bind substitutes clientID and username into c. If an identity the rule
// uses cannot fill a level, an allow rule matches nothing, so bind returns
// nil. A deny rule gets "+" at that level instead.
func (c *compiledRule) bind(clientID, username string) *boundRule {
	if c.shared != nil {
		return c.shared
	}
	b := &boundRule{allow: c.allow, matchAll: c.matchAll, priority: c.priority, levels: make([]boundLevel, len(c.levels))}
	b.publishMask, b.subscribeMask = c.requestMasks()
	for i, l := range c.levels {
		if l.kind != levelLiteral {
			b.levels[i] = boundLevel{kind: l.kind}
			continue
		}
		text, ok := substitute(l.segments, clientID, username)
		switch {
		case ok:
			b.levels[i] = boundLevel{kind: levelLiteral, text: text}
		case c.allow:
			return nil
		default:
			b.levels[i] = boundLevel{kind: levelPlus}
		}
	}
	return b
}

// substitute builds the text of a literal level. It reports false if a
// variable's value is empty or contains '/', which cannot be one level.
func substitute(segments []segment, clientID, username string) (string, bool) {
	if len(segments) == 1 && segments[0].variable == varNone {
		return segments[0].text, true
	}
	var b strings.Builder
	for _, s := range segments {
		value := s.text
		switch s.variable {
		case varClientID:
			value = clientID
		case varUsername:
			value = username
		}
		if s.variable != varNone && (value == "" || strings.IndexByte(value, '/') >= 0) {
			return "", false
		}
		b.WriteString(value)
	}
	return b.String(), true
}
