package raftstore

import (
	"encoding/binary"
	"math"
)

// Every key starts with a one-byte kind so that each kind occupies its own
// contiguous key range. doc.go lists the whole layout.
const (
	kindMeta   byte = 0x01
	kindLog    byte = 0x10
	kindStable byte = 0x20
)

// layoutVersion is the key layout and value encoding that this build
// writes. Open rejects a directory whose stored version is higher.
const layoutVersion = 1

// logKeyLen is the length of a log key: the kind byte and a big-endian
// uint64 index, so that keys sort by index.
const logKeyLen = 1 + 8

var (
	// layoutKey holds the uvarint layout version. Its name differs from the
	// broker store's layout key, so that Open recognises a directory that
	// belongs to the broker store instead of to a raft store.
	layoutKey = append([]byte{kindMeta}, "raftstore-layout"...)

	// logLowerBound and logUpperBound delimit every log key.
	logLowerBound = []byte{kindLog}
	logUpperBound = []byte{kindLog + 1}
)

// appendLogKey appends the key of the log entry at index to dst.
func appendLogKey(dst []byte, index uint64) []byte {
	dst = append(dst, kindLog)
	return binary.BigEndian.AppendUint64(dst, index)
}

// logKey returns the key of the log entry at index.
func logKey(index uint64) []byte {
	return appendLogKey(make([]byte, 0, logKeyLen), index)
}

// logKeyAfter returns the exclusive upper bound for a range ending at
// index: the key of index+1, or logUpperBound when index is the largest
// uint64.
func logKeyAfter(index uint64) []byte {
	if index == math.MaxUint64 {
		return logUpperBound
	}
	return logKey(index + 1)
}

// parseLogKey returns the index of a log key.
func parseLogKey(key []byte) (uint64, error) {
	if len(key) != logKeyLen || key[0] != kindLog {
		return 0, corruptf("log key %x: want kind 0x%02x and %d bytes", key, kindLog, logKeyLen)
	}
	return binary.BigEndian.Uint64(key[1:]), nil
}

// stableKey returns the Pebble key of the stable store key k.
func stableKey(k []byte) []byte {
	key := make([]byte, 0, 1+len(k))
	key = append(key, kindStable)
	return append(key, k...)
}
