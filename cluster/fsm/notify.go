package fsm

import (
	"context"
	"sync"
)

// Change is a set of parts of the state, as flags.
type Change uint8

// The parts of the state that a subscriber can watch.
const (
	ChangeRoutes Change = 1 << iota
	ChangeNodes
	ChangeEpoch
	ChangeClusterVersion
	ChangeAuth

	// ChangeAll is every part. Restore reports it.
	ChangeAll = ChangeRoutes | ChangeNodes | ChangeEpoch | ChangeClusterVersion | ChangeAuth
)

// subscribers holds the channels of Subscribe.
type subscribers struct {
	mu   sync.Mutex
	next uint64
	subs map[uint64]subscriber
}

type subscriber struct {
	mask Change
	ch   chan struct{}
}

// Subscribe returns a channel that receives a value after any apply or
// restore that changed a part of the state in mask, and a function that
// ends the subscription. The channel holds at most one value, and the FSM
// never blocks on it, so many changes read late come as one: the receiver
// reads the current state after each value, for example to rebuild the
// router's view of remote routes. The channel is never closed. Safe for
// concurrent use.
func (f *FSM) Subscribe(mask Change) (<-chan struct{}, func()) {
	s := &f.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs == nil {
		s.subs = map[uint64]subscriber{}
	}
	id := s.next
	s.next++
	ch := make(chan struct{}, 1)
	s.subs[id] = subscriber{mask: mask, ch: ch}
	cancel := func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
	return ch, cancel
}

func (s *subscribers) notify(c Change) {
	if c == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		if sub.mask&c == 0 {
			continue
		}
		select {
		case sub.ch <- struct{}{}:
		default:
		}
	}
}

// WaitApplied blocks until the FSM has applied the log entry at index, or
// ctx ends. A node serves a peer's wait-until-applied call with it, so
// that a route is in force on every reachable node before the SUBACK that
// needs it.
//
// NOTE: raft does not pass no-op and barrier entries to the FSM, so index
// must be the index of a command or configuration entry (the index of an
// ApplyFuture is one); for any other index the wait lasts until the next
// command is applied.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.mu.RLock()
		applied, ch := f.mu.st.applied, f.mu.appliedCh
		f.mu.RUnlock()
		if applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
