package storage

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Security records (users, groups, roles) are small values that the auth
// layer encodes; storage only keys them by a one-byte namespace and a name.
// Their writes are rare (an operator's command), so they are always synced.

// Record namespaces of security data. The values are part of the on-disk
// layout.
const (
	RecordUser  byte = 'u'
	RecordGroup byte = 'g'
	RecordRole  byte = 'r'
	RecordMeta  byte = 'm' // counters of the auth layer, such as the user version
)

func appendRecordKey(dst []byte, ns byte, name string) []byte {
	dst = append(dst, kindAuthRecord, ns)
	return append(dst, name...)
}

// PutRecord writes value under (ns, name), replacing any value there.
func (b *Batch) PutRecord(ns byte, name string, value []byte) {
	b.key = appendRecordKey(b.key[:0], ns, name)
	b.set(b.key, value)
}

// DeleteRecord deletes the value under (ns, name), if any.
func (b *Batch) DeleteRecord(ns byte, name string) {
	b.key = appendRecordKey(b.key[:0], ns, name)
	b.delete(b.key)
}

// Record returns the value under (ns, name), or ErrNotFound.
func (s *Store) Record(ns byte, name string) ([]byte, error) {
	if !s.gate.enter() {
		return nil, ErrClosed
	}
	defer s.gate.exit()
	key := appendRecordKey(nil, ns, name)
	v, closer, err := s.db.Get(key)
	if err == pebble.ErrNotFound {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: read record %q: %w", name, err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// Records calls fn for every record of namespace ns, in name order.
func (s *Store) Records(ns byte, fn func(name string, value []byte) error) error {
	lower := []byte{kindAuthRecord, ns}
	upper := []byte{kindAuthRecord, ns + 1}
	return s.load(lower, upper, func(key, value []byte) error {
		return fn(string(key[2:]), bytes.Clone(value))
	})
}
