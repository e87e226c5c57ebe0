package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// Store implements raft.StableStore, where raft keeps its current term and
// its last vote.
var _ raft.StableStore = (*Store)(nil)

// Set stores val under key, durably unless Config.NoSync is set. Raft
// persists its term and vote here before it responds to a vote request, so a
// lost write could let the node vote twice in one term.
func (s *Store) Set(key, val []byte) error {
	if err := s.put(stableKey(key), val); err != nil {
		return fmt.Errorf("raftstore: set %q: %w", key, err)
	}
	return nil
}

// Get returns a copy of the value stored under key. An empty stored value
// returns an empty, non-nil slice. A key that was never set returns nil and
// ErrKeyNotFound, unwrapped, whose text raft compares with "not found".
func (s *Store) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.withDB(func(db *pebble.DB) error {
		val, closer, err := db.Get(stableKey(key))
		if errors.Is(err, pebble.ErrNotFound) {
			return ErrKeyNotFound
		}
		if err != nil {
			return fmt.Errorf("raftstore: get %q: %w", key, markPebble(err))
		}
		out = append(make([]byte, 0, len(val)), val...)
		return closer.Close()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetUint64 stores val under key as 8 big-endian bytes. Set and SetUint64
// share one key space, as in raft-boltdb, so Get of a key written by
// SetUint64 returns those 8 bytes.
func (s *Store) SetUint64(key []byte, val uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], val)
	if err := s.put(stableKey(key), buf[:]); err != nil {
		return fmt.Errorf("raftstore: set uint64 %q: %w", key, err)
	}
	return nil
}

// GetUint64 returns the value that SetUint64 stored under key. A key that
// was never set returns 0 and ErrKeyNotFound, unwrapped, which raft treats
// as "no term or vote yet". A value that is not 8 bytes long returns an
// error marked ErrCorrupt.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	val, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("raftstore: get uint64 %q: %w", key, corruptf("value %x is %d bytes, want 8", val, len(val)))
	}
	return binary.BigEndian.Uint64(val), nil
}

// put writes one key with the store's write options. It does not take
// writeMu, which only orders log writes with the cached bounds.
func (s *Store) put(key, val []byte) error {
	return s.withDB(func(db *pebble.DB) error {
		return markPebble(db.Set(key, val, s.writeOpts))
	})
}
