// Package raftstore stores the log and the stable state of the cluster's
// hashicorp/raft group (v1.7.2) in a Pebble database of its own, apart from
// the broker's data. A Store implements raft.LogStore and raft.StableStore.
//
// # What it owns
//
// The key layout and value encoding of raft log entries and stable keys,
// durability of raft's writes, the in-memory cache of the first and last log
// index, and the layout version check at Open.
//
// # What it does not own
//
// Snapshots (raft's SnapshotStore), the state machine, the transport and
// the decision of when to compact the log, which raft makes. It gives no
// meaning to entry data or extensions.
//
// # Key layout (layout version 1)
//
// Every key starts with a one-byte kind. Integers in keys are big-endian so
// that log keys sort by index.
//
//	0x01 "raftstore-layout"   uvarint layout version
//	0x10 index:8              raft.Log, encoded by appendLog in codec.go
//	0x20 key                  stable store value as given to Set, or 8 big-endian bytes from SetUint64
//
// A log value starts with a version byte, currently 1, and holds every field
// of raft.Log, the index included so that a value under the wrong key is
// detected. Decoders reject unknown versions, unknown flag bits, lengths
// past the end and trailing bytes with an error marked ErrCorrupt. Open
// rejects a database whose layout version is newer than this build's, and
// a database that holds keys but no layout version, which is most likely
// the broker store opened by mistake.
//
// # Durability
//
// Unless Config.NoSync is set, StoreLog, StoreLogs, DeleteRange, Set and
// SetUint64 return only after Pebble has fsynced its write-ahead log. Raft
// relies on this: once StoreLogs returns it acknowledges AppendEntries to
// the leader, which may then count the entries as committed, and it records
// its term and vote through the stable store before it responds to a vote
// request. StoreLogs writes all its entries in one batch, so after a crash
// either all of them are present or none is. With NoSync, recent writes
// can be lost even when only the process crashes, so it is for tests only.
//
// # Not-found semantics
//
// GetLog returns raft.ErrLogNotFound itself for a missing index, because
// raft's replication compares with == to fall back to sending a snapshot.
// Get and GetUint64 return ErrKeyNotFound, whose text is exactly
// "not found", for a missing key, because raft v1.7.2 recognises a missing
// term or vote by comparing err.Error() with that text. Neither error is
// ever wrapped.
//
// # Concurrency and lock order
//
// All methods are safe for concurrent use. Log writes (StoreLogs,
// DeleteRange) are serialized by writeMu, which is held across the fsync
// and the update of the cached bounds. Every method holds mu for reading
// during its Pebble call, and Close holds it for writing. The lock order is
// writeMu, then mu. FirstIndex and LastIndex read atomics and do not touch
// the disk. StoreLogs widens the cached bounds after its commit and
// DeleteRange narrows them before its commit, so neither returns an index
// whose entry is already deleted.
//
// # Limitations
//
// The store does not implement raft.MonotonicLogStore: it accepts gaps, so
// raft keeps compacting after a snapshot restore rather than deleting the
// whole log. Writers share no group commit, which costs nothing with raft's
// single appending goroutine. If the commit of a DeleteRange fails, the
// cached bounds are read from disk again. AppendedAt
// comes back without its monotonic clock reading and in the local time
// zone.
package raftstore
