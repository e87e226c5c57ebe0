package storage

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// errStopScan ends a scan early without an error.
var errStopScan = errors.New("storage: stop scan")

// scan calls fn for each key in [lower, upper) in key order. A nil bound is
// open. The key and value passed to fn are valid only during the call. The
// caller must have entered s.gate, or own s exclusively as Open does.
func (s *Store) scan(lower, upper []byte, fn func(key, value []byte) error) error {
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return markPebble(err)
	}
	for valid := iter.First(); valid; valid = iter.Next() {
		v, err := iter.ValueAndErr()
		if err == nil {
			err = fn(iter.Key(), v)
		}
		if err != nil {
			_ = iter.Close()
			if errors.Is(err, errStopScan) {
				return nil
			}
			return markPebble(err)
		}
	}
	return markPebble(iter.Close())
}

// load runs a read-only scan as one gated operation.
func (s *Store) load(lower, upper []byte, fn func(key, value []byte) error) error {
	if !s.gate.enter() {
		return ErrClosed
	}
	defer s.gate.exit()
	return s.scan(lower, upper, fn)
}

// The load methods below are meant for start-up. Each calls fn once per
// record in key order with a record that fn may keep, and stops at the first
// error from fn or from decoding, which it returns. fn may call other Store
// methods except Close.

// Sessions calls fn for every session, ordered by client id.
func (s *Store) Sessions(fn func(*Session) error) error {
	lower, upper := kindBounds(kindSession)
	return s.load(lower, upper, func(key, value []byte) error {
		sess := new(Session)
		if err := decodeSession(value, sess); err != nil {
			return fmt.Errorf("storage: load session %q: %w", key[1:], err)
		}
		return fn(sess)
	})
}

// Subscriptions calls fn for every subscription of every client, ordered by
// client id and then by filter.
func (s *Store) Subscriptions(fn func(*Subscription) error) error {
	lower, upper := kindBounds(kindSubscription)
	return s.load(lower, upper, func(key, value []byte) error {
		clientID, filter, err := parseClientKey(key, kindSubscription)
		if err != nil {
			return fmt.Errorf("storage: load subscription: %w", err)
		}
		sub := &Subscription{ClientID: clientID, Filter: string(filter)}
		if err := decodeSubscription(value, sub); err != nil {
			return fmt.Errorf("storage: load subscription %q of %q: %w", filter, clientID, err)
		}
		return fn(sub)
	})
}

// Queue calls fn for every queue entry of clientID in Seq order.
func (s *Store) Queue(clientID string, fn func(*QueueEntry) error) error {
	lower := appendClientPrefix(nil, kindQueue, clientID)
	upper := appendClientPrefixEnd(nil, kindQueue, clientID)
	return s.load(lower, upper, func(key, value []byte) error {
		_, seq, err := parseQueueKey(key)
		if err != nil {
			return fmt.Errorf("storage: load queue of %q: %w", clientID, err)
		}
		e := &QueueEntry{Seq: seq}
		if err := decodeQueueEntry(value, e); err != nil {
			return fmt.Errorf("storage: load queue entry %d of %q: %w", seq, clientID, err)
		}
		return fn(e)
	})
}

// Inflight calls fn for every inflight entry of clientID in Seq order. The
// entries are keyed by packet id, so Inflight reads them all before the
// first call to fn. A client has at most 65535 of them.
func (s *Store) Inflight(clientID string, fn func(*InflightEntry) error) error {
	var entries []*InflightEntry
	lower := appendClientPrefix(nil, kindInflight, clientID)
	upper := appendClientPrefixEnd(nil, kindInflight, clientID)
	err := s.load(lower, upper, func(key, value []byte) error {
		_, packetID, err := parsePacketIDKey(key, kindInflight)
		if err != nil {
			return fmt.Errorf("storage: load inflight of %q: %w", clientID, err)
		}
		e := &InflightEntry{PacketID: packetID}
		if err := decodeInflightEntry(value, e); err != nil {
			return fmt.Errorf("storage: load inflight packet %d of %q: %w", packetID, clientID, err)
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return err
	}

	slices.SortFunc(entries, func(a, b *InflightEntry) int {
		if a.Seq != b.Seq {
			return cmp.Compare(a.Seq, b.Seq)
		}
		return cmp.Compare(a.PacketID, b.PacketID)
	})
	for _, e := range entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// InboundQoS2 calls fn for every QoS 2 packet id received from clientID and
// not yet released, in packet id order.
func (s *Store) InboundQoS2(clientID string, fn func(packetID uint16) error) error {
	lower := appendClientPrefix(nil, kindInbound, clientID)
	upper := appendClientPrefixEnd(nil, kindInbound, clientID)
	return s.load(lower, upper, func(key, value []byte) error {
		_, packetID, err := parsePacketIDKey(key, kindInbound)
		if err == nil {
			err = decodeInbound(value)
		}
		if err != nil {
			return fmt.Errorf("storage: load inbound QoS 2 of %q: %w", clientID, err)
		}
		return fn(packetID)
	})
}

// Message returns the message body with id, or an error wrapping ErrNotFound.
func (s *Store) Message(id uint64) (*Message, error) {
	if !s.gate.enter() {
		return nil, ErrClosed
	}
	defer s.gate.exit()

	v, closer, err := s.db.Get(appendMessageKey(nil, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("storage: message %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get message %d: %w", id, markPebble(err))
	}
	defer closer.Close()

	m := new(Message)
	if err := decodeMessage(v, m); err != nil {
		return nil, fmt.Errorf("storage: decode message %d: %w", id, err)
	}
	return m, nil
}

// Retained calls fn for every retained message, ordered by topic. It skips
// the tombstones of RetainedRecords and drops the clocks.
func (s *Store) Retained(fn func(*Message) error) error {
	lower, upper := kindBounds(kindRetained)
	return s.load(lower, upper, func(key, value []byte) error {
		r := new(RetainedRecord)
		if err := decodeRetainedRecord(value, r); err != nil {
			return fmt.Errorf("storage: load retained message %q: %w", key[1:], err)
		}
		if r.Tombstone {
			return nil
		}
		return fn(&r.Message)
	})
}
