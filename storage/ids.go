package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// idBlock is how many ids one synced write reserves. A restart skips the
// unused rest of the block, so ids have gaps.
const idBlock = 1 << 16

// idAllocator hands out ids from blocks whose upper bound is persisted
// before any id of the block is returned, so no id repeats after a crash.
type idAllocator struct {
	last  atomic.Uint64 // last id taken by NextID, handed out or not
	limit atomic.Uint64 // ids below limit are covered by a persisted reservation
	mu    sync.Mutex    // serializes reservations
}

// loadIDLimit starts the allocator above every id the store may have handed
// out before.
func (s *Store) loadIDLimit() error {
	v, closer, err := s.db.Get(idLimitKey)
	if errors.Is(err, pebble.ErrNotFound) {
		// Ids start at 1, so 0 never names a record.
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: read id limit: %w", markPebble(err))
	}
	limit, err := decodeUvarintValue(v, "id limit")
	_ = closer.Close()
	if err != nil {
		return fmt.Errorf("storage: read id limit: %w", err)
	}
	if limit == 0 {
		return fmt.Errorf("storage: read id limit: %w", corruptf("id limit is 0"))
	}
	s.ids.last.Store(limit - 1)
	s.ids.limit.Store(limit)
	return nil
}

// NextID returns a new id, greater than every id returned before by this
// store, including before a restart or crash. Ids start at 1. The common
// case is one atomic add. Once every idBlock ids, one caller blocks on a
// synced write that reserves the next block, and callers that arrive
// meanwhile wait for it.
//
// NextID returns 0 when that write fails or the store is closed. The store
// is then failed, so a record naming id 0 cannot be committed.
func (s *Store) NextID() uint64 {
	id := s.ids.last.Add(1)
	if id < s.ids.limit.Load() {
		return id
	}
	return s.reserveIDs(id)
}

// reserveIDs persists a limit above id and returns id.
func (s *Store) reserveIDs(id uint64) uint64 {
	s.ids.mu.Lock()
	defer s.ids.mu.Unlock()
	if id < s.ids.limit.Load() {
		return id
	}
	if !s.gate.enter() {
		return 0
	}
	defer s.gate.exit()
	if s.failure() != nil {
		return 0
	}

	limit := id + idBlock
	var v [1 + binary.MaxVarintLen64]byte
	if err := s.db.Set(idLimitKey, appendUvarintValue(v[:0], limit), pebble.Sync); err != nil {
		s.setFailed(fmt.Errorf("reserve ids below %d: %w", limit, err))
		return 0
	}
	s.ids.limit.Store(limit)
	return id
}
