package router

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// sharePrefix starts the topic filter of a shared subscription
// [MQTT-4.8.2-1]. MQTT 3.1.1 has no shared subscriptions, so for a 3.1.1
// client the node decides whether the prefix is special.
const sharePrefix = "$share/"

// ValidateTopicName returns nil if topic may be used as the topic name of a
// PUBLISH, or an error matching ErrInvalidTopic otherwise.
//
// maxLen is the maximum length in bytes and maxLevels the maximum number of
// levels (the number of '/' plus one). Zero means no limit. The wire format
// already caps both names and filters at 65535 bytes [MQTT-4.7.3-3], so the
// codec, not this function, enforces that bound.
func ValidateTopicName(topic string, maxLen, maxLevels int) error {
	// All topic names must be at least one character long [MQTT-4.7.3-1].
	if topic == "" {
		return invalidTopic(topic, "empty")
	}
	if maxLen > 0 && len(topic) > maxLen {
		return &validationError{
			kind:   ErrInvalidTopic,
			limit:  ErrTopicTooLong,
			value:  topic,
			reason: fmt.Sprintf("%d bytes exceeds the maximum of %d", len(topic), maxLen),
		}
	}

	levels := 1
	for i := 0; i < len(topic); i++ {
		switch topic[i] {
		case '/':
			levels++
		case '+', '#':
			// [MQTT-4.7.0-1] (MQTT 3.1.1: [MQTT-4.7.1-1])
			return invalidTopic(topic, fmt.Sprintf("contains the wildcard %q", topic[i]))
		case 0:
			// [MQTT-4.7.3-2]
			return invalidTopic(topic, "contains the null character U+0000")
		}
	}
	if !utf8.ValidString(topic) {
		// Go's decoder also rejects the surrogates U+D800 to U+DFFF [MQTT-1.5.4-1].
		return invalidTopic(topic, "not well-formed UTF-8")
	}
	if maxLevels > 0 && levels > maxLevels {
		return &validationError{
			kind:   ErrInvalidTopic,
			limit:  ErrTooManyLevels,
			value:  topic,
			reason: fmt.Sprintf("%d levels exceeds the maximum of %d", levels, maxLevels),
		}
	}
	return nil
}

// ValidateFilter returns nil if filter may be subscribed to, or an error
// matching ErrInvalidFilter otherwise. It accepts the shared form
// "$share/{ShareName}/{filter}" as well as plain filters.
//
// maxLen is the maximum length in bytes of the whole filter as sent,
// including any "$share/{ShareName}/" prefix. maxLevels is the maximum number
// of levels of the filter that is matched, so the prefix does not count. Zero
// means no limit.
func ValidateFilter(filter string, maxLen, maxLevels int) error {
	// [MQTT-4.7.3-1]
	if filter == "" {
		return invalidFilter(filter, "empty")
	}
	if maxLen > 0 && len(filter) > maxLen {
		return &validationError{
			kind:   ErrInvalidFilter,
			limit:  ErrTopicTooLong,
			value:  filter,
			reason: fmt.Sprintf("%d bytes exceeds the maximum of %d", len(filter), maxLen),
		}
	}
	if strings.IndexByte(filter, 0) >= 0 {
		// [MQTT-4.7.3-2]
		return invalidFilter(filter, "contains the null character U+0000")
	}
	if !utf8.ValidString(filter) {
		// [MQTT-1.5.4-1]
		return invalidFilter(filter, "not well-formed UTF-8")
	}

	body := filter
	if strings.HasPrefix(filter, sharePrefix) {
		var err error
		if body, err = validateShared(filter); err != nil {
			return err
		}
	}

	levels, reason := checkFilterLevels(body)
	if reason != "" {
		return invalidFilter(filter, reason)
	}
	if maxLevels > 0 && levels > maxLevels {
		return &validationError{
			kind:   ErrInvalidFilter,
			limit:  ErrTooManyLevels,
			value:  filter,
			reason: fmt.Sprintf("%d levels exceeds the maximum of %d", levels, maxLevels),
		}
	}
	return nil
}

// validateShared checks the "$share/{ShareName}/" part of a shared filter and
// returns the topic filter that follows it.
func validateShared(filter string) (string, error) {
	rest := filter[len(sharePrefix):]
	slash := strings.IndexByte(rest, '/')
	group := rest
	if slash >= 0 {
		group = rest[:slash]
	}

	// [MQTT-4.8.2-1]
	if group == "" {
		return "", invalidFilter(filter, "empty share name")
	}
	// A ShareName must not contain '/', '+' or '#' [MQTT-4.8.2-2]. The '/'
	// cannot occur because the first '/' ends the name.
	if strings.ContainsAny(group, "+#") {
		return "", invalidFilter(filter, "share name contains a wildcard")
	}
	// The ShareName must be followed by '/' and a topic filter [MQTT-4.8.2-2].
	if slash < 0 || slash == len(rest)-1 {
		return "", invalidFilter(filter, "no topic filter after the share name")
	}
	return rest[slash+1:], nil
}

// checkFilterLevels returns the number of levels of a non-empty filter
// without the share prefix, or a reason why a wildcard is misplaced.
func checkFilterLevels(filter string) (levels int, reason string) {
	for start := 0; start <= len(filter); {
		level, next := nextLevel(filter, start)
		levels++

		if strings.IndexByte(level, '#') >= 0 {
			// '#' must be alone in its level and be the last level
			// [MQTT-4.7.1-1] (MQTT 3.1.1: [MQTT-4.7.1-2]).
			if level != "#" || next <= len(filter) {
				return levels, "'#' must be the whole last level"
			}
		}
		if strings.IndexByte(level, '+') >= 0 && level != "+" {
			// [MQTT-4.7.1-2] (MQTT 3.1.1: [MQTT-4.7.1-3])
			return levels, "'+' must be a whole level"
		}
		start = next
	}
	return levels, ""
}

// ParseShared splits a shared subscription filter "$share/{group}/{filter}"
// into its share group and topic filter. For any other filter it returns "",
// filter and false. It expects a filter that passed ValidateFilter. For a
// "$share/" filter without a second '/', it also reports false.
func ParseShared(filter string) (group, topicFilter string, shared bool) {
	if !strings.HasPrefix(filter, sharePrefix) {
		return "", filter, false
	}
	rest := filter[len(sharePrefix):]
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return "", filter, false
	}
	return rest[:slash], rest[slash+1:], true
}

// MatchFilter reports whether the topic filter matches the topic name. The
// filter must not carry a "$share/{group}/" prefix (strip it with
// ParseShared). Levels compare byte by byte, with no Unicode normalization
// [MQTT-4.7.3-4], and empty levels are levels like any other, so "+/+"
// matches "/x" and "a/+" matches "a/".
//
// A filter that fails ValidateFilter still gets a defined result, and
// Trie.Match and Tree.Match return the same one. A '#' level that is not the
// last level matches nothing, and a level like "a+" compares literally.
func MatchFilter(filter, topic string) bool {
	// A filter starting with a wildcard does not match a topic name starting
	// with '$' [MQTT-4.7.2-1], so "#" does not match "$SYS/uptime".
	if topic != "" && topic[0] == '$' {
		if first, _ := nextLevel(filter, 0); first == "+" || first == "#" {
			return false
		}
	}

	fi, ti := 0, 0
	for {
		fl, fnext := nextLevel(filter, fi)
		if fl == "#" {
			// '#' matches all remaining levels, but only as the last level.
			return fnext > len(filter)
		}
		tl, tnext := nextLevel(topic, ti)
		if fl != "+" && fl != tl {
			return false
		}
		fi, ti = fnext, tnext

		filterDone, topicDone := fi > len(filter), ti > len(topic)
		switch {
		case filterDone && topicDone:
			return true
		case filterDone:
			return false
		case topicDone:
			// '#' also matches the parent level, so "a/#" matches "a".
			return filter[fi:] == "#"
		}
	}
}

// nextLevel returns the level of s that starts at byte offset start, and the
// offset of the level after it. That offset is len(s)+1 once s has no more
// levels, so an empty last level ("a/") is still visited. The caller must
// pass start <= len(s).
func nextLevel(s string, start int) (level string, next int) {
	end := strings.IndexByte(s[start:], '/')
	if end < 0 {
		return s[start:], len(s) + 1
	}
	return s[start : start+end], start + end + 1
}
