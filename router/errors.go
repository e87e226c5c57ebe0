package router

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by ValidateTopicName and ValidateFilter. Every
// validation error matches ErrInvalidTopic or ErrInvalidFilter with
// errors.Is, and a length or level limit error also matches ErrTopicTooLong
// or ErrTooManyLevels, so the node can pick a reason code from either.
var (
	// ErrInvalidTopic marks a topic name that a PUBLISH must not carry.
	ErrInvalidTopic = errors.New("router: invalid topic name")

	// ErrInvalidFilter marks a topic filter that a SUBSCRIBE or UNSUBSCRIBE
	// must not carry.
	ErrInvalidFilter = errors.New("router: invalid topic filter")

	// ErrTopicTooLong marks a topic name or filter longer than the configured
	// maximum length in bytes.
	ErrTopicTooLong = errors.New("router: topic too long")

	// ErrTooManyLevels marks a topic name or filter with more levels than the
	// configured maximum.
	ErrTooManyLevels = errors.New("router: too many topic levels")
)

// maxQuoted is the number of bytes of an offending topic that an error
// message quotes. Topics can be 65535 bytes long, which is too much for a log
// line.
const maxQuoted = 64

// validationError is the concrete type behind every validation error. It
// unwraps to its kind (ErrInvalidTopic or ErrInvalidFilter) and, for a limit
// violation, to ErrTopicTooLong or ErrTooManyLevels as well.
type validationError struct {
	kind   error  // ErrInvalidTopic or ErrInvalidFilter
	limit  error  // ErrTopicTooLong, ErrTooManyLevels or nil
	value  string // the rejected topic name or filter
	reason string // what is wrong with value, in plain words
}

func (e *validationError) Error() string {
	quoted := e.value
	if len(quoted) > maxQuoted {
		quoted = quoted[:maxQuoted] + "..."
	}
	return fmt.Sprintf("%s %q: %s", e.kind.Error(), quoted, e.reason)
}

func (e *validationError) Unwrap() []error {
	if e.limit == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.limit}
}

func invalidTopic(topic, reason string) error {
	return &validationError{kind: ErrInvalidTopic, value: topic, reason: reason}
}

func invalidFilter(filter, reason string) error {
	return &validationError{kind: ErrInvalidFilter, value: filter, reason: reason}
}
