package auth

import "strings"

// The functions below compare a bound rule pattern with a topic name or a
// client's topic filter level by level. The pattern is already split into
// levels with its variables substituted, so a character that came from an
// identity can never be read as a separator or a wildcard. Only the
// client's own filter is split here, and its '+' and '#' are real
// wildcards.
//
// Like MatchFilter in package router, a level that starts with a wildcard
// never matches a topic level 0 that starts with '$' [MQTT-4.7.2-1], and
// "a/#" also matches "a".

// matchTopic reports whether the pattern matches the topic name.
func matchTopic(pattern []boundLevel, topic string) bool {
	if topic != "" && topic[0] == '$' && len(pattern) > 0 && pattern[0].kind != levelLiteral {
		return false
	}
	ti := 0
	for i := 0; ; i++ {
		topicDone := ti > len(topic)
		if i == len(pattern) {
			return topicDone
		}
		pl := pattern[i]
		if pl.kind == levelHash {
			return true
		}
		if topicDone {
			return false
		}
		tl, next := nextLevel(topic, ti)
		if pl.kind == levelLiteral && pl.text != tl {
			return false
		}
		ti = next
	}
}

// coversFilter reports whether every topic the filter matches is matched by
// the pattern. The filter must be valid and must not carry a share prefix.
func coversFilter(pattern []boundLevel, filter string) bool {
	fi := 0
	for i := 0; ; i++ {
		filterDone := fi > len(filter)
		if i == len(pattern) {
			return filterDone
		}
		pl := pattern[i]
		if pl.kind == levelHash {
			// "#" at level 0 does not match "$" topics, which a filter
			// with a literal "$..." first level matches.
			if i == 0 {
				first, _ := nextLevel(filter, 0)
				return !isDollarLiteral(first)
			}
			return true
		}
		if filterDone {
			// The filter matched a topic with i levels, and this pattern
			// needs more, unless its rest is "#", handled above.
			return false
		}
		fl, next := nextLevel(filter, fi)
		switch {
		case fl == "#":
			// The filter matches every topic below this level and, as its
			// parent, the topic that ends before it. Besides a pattern "#"
			// here (returned above), only "+/#" at level 0 matches all of
			// those, because every topic has a level 0 and "+" also skips
			// "$" topics.
			return i == 0 && len(pattern) == 2 && pl.kind == levelPlus && pattern[1].kind == levelHash
		case fl == "+":
			if pl.kind != levelPlus {
				return false
			}
		case pl.kind == levelPlus:
			if i == 0 && isDollarLiteral(fl) {
				return false
			}
		case pl.text != fl:
			return false
		}
		fi = next
	}
}

// intersectsFilter reports whether some topic is matched by both the
// pattern and the filter. The filter must be valid and must not carry a
// share prefix.
func intersectsFilter(pattern []boundLevel, filter string) bool {
	fi := 0
	for i := 0; ; i++ {
		filterDone := fi > len(filter)
		patternDone := i == len(pattern)
		switch {
		case patternDone && filterDone:
			return true
		case patternDone:
			// Both match a topic of i levels only if the filter's rest is
			// "#", which also matches its parent.
			return filter[fi:] == "#"
		case filterDone:
			return pattern[i].kind == levelHash
		}

		pl := pattern[i]
		fl, next := nextLevel(filter, fi)
		patternWild := pl.kind != levelLiteral
		filterWild := fl == "+" || fl == "#"
		if i == 0 {
			// A wildcard at level 0 matches no "$" topic, so it meets a
			// literal "$..." level nowhere.
			if patternWild && !filterWild && isDollarLiteral(fl) {
				return false
			}
			if filterWild && !patternWild && isDollarLiteral(pl.text) {
				return false
			}
		}
		if pl.kind == levelHash || fl == "#" {
			return true
		}
		if !patternWild && !filterWild && pl.text != fl {
			return false
		}
		fi = next
	}
}

func isDollarLiteral(level string) bool {
	return strings.HasPrefix(level, "$")
}

// nextLevel returns the level of s that starts at byte offset start and the
// offset of the level after it, which is len(s)+1 after the last level.
func nextLevel(s string, start int) (level string, next int) {
	end := strings.IndexByte(s[start:], '/')
	if end < 0 {
		return s[start:], len(s) + 1
	}
	return s[start : start+end], start + end + 1
}
