package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// The forward outbox holds the QoS 1 and 2 messages this node has accepted
// for a peer and the peer has not yet acknowledged. Storage treats each
// entry as opaque bytes (an encoded clusterpb.ForwardMessage) keyed by the
// peer's site id and the message's forward sequence number. Beside it live
// two counters per peer site: the ceiling of the forward sequence numbers
// handed out toward it, and the high-water mark of those received from it.

// OutboxStats is the size of one peer's outbox, counted in memory from Open
// on, so that reading it costs no disk access.
type OutboxStats struct {
	Depth int64 // entries
	Bytes int64 // sum of the entries' value lengths as passed to PutOutbox
}

// outboxIndex counts the outbox entries of every site. Open fills it from
// disk, and commits and deletes keep it current.
type outboxIndex struct {
	mu    sync.Mutex
	sites map[string]OutboxStats // guarded by mu; no entry for an empty outbox

	// reserveMu serializes ReserveForwardSeq's read, add and write.
	reserveMu sync.Mutex
}

// outboxPut is one PutOutbox of a Batch, counted into the index once the
// batch commits.
type outboxPut struct {
	site  string
	bytes int64
}

func (x *outboxIndex) add(puts []outboxPut) {
	if len(puts) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sites == nil {
		x.sites = make(map[string]OutboxStats)
	}
	for _, p := range puts {
		st := x.sites[p.site]
		st.Depth++
		st.Bytes += p.bytes
		x.sites[p.site] = st
	}
}

func (x *outboxIndex) sub(site string, removed OutboxStats) {
	x.mu.Lock()
	defer x.mu.Unlock()
	st := x.sites[site]
	st.Depth -= removed.Depth
	st.Bytes -= removed.Bytes
	if st.Depth <= 0 {
		delete(x.sites, site)
		return
	}
	x.sites[site] = st
}

func (x *outboxIndex) get(site string) OutboxStats {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.sites[site]
}

func validSiteID(site string) bool {
	return site != "" && validClientID(site)
}

func checkSiteID(site string) error {
	if !validSiteID(site) {
		return fmt.Errorf("storage: site id %q is empty or contains U+0000", site)
	}
	return nil
}

func appendOutboxKey(dst []byte, site string, seq uint64) []byte {
	dst = appendClientPrefix(dst, kindOutbox, site)
	return binary.BigEndian.AppendUint64(dst, seq)
}

func appendForwardSeqKey(dst []byte, site string) []byte {
	dst = append(dst, kindForwardSeq)
	return append(dst, site...)
}

func appendHighWaterKey(dst []byte, site string) []byte {
	dst = append(dst, kindHighWater)
	return append(dst, site...)
}

// parseOutboxKey returns the site id and sequence number of an outbox key.
func parseOutboxKey(key []byte) (string, uint64, error) {
	site, rest, err := parseClientKey(key, kindOutbox)
	if err != nil {
		return "", 0, err
	}
	if len(rest) != 8 {
		return "", 0, corruptf("outbox key %x has a %d-byte sequence number, expected 8", key, len(rest))
	}
	return site, binary.BigEndian.Uint64(rest), nil
}

// outboxValue returns the caller's bytes of a stored outbox value.
func outboxValue(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != recordVersion {
		return nil, corruptf("outbox value does not start with record version %d", recordVersion)
	}
	return v[1:], nil
}

// loadOutboxIndex counts every outbox entry on disk. Open calls it before
// any write can run.
func (s *Store) loadOutboxIndex() error {
	lower, upper := kindBounds(kindOutbox)
	sites := make(map[string]OutboxStats)
	err := s.scan(lower, upper, func(key, value []byte) error {
		site, _, err := parseOutboxKey(key)
		if err != nil {
			return err
		}
		st := sites[site]
		st.Depth++
		st.Bytes += int64(len(value) - 1)
		sites[site] = st
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: count outbox entries: %w", err)
	}
	s.outbox.sites = sites
	return nil
}

// PutOutbox writes value, an encoded clusterpb.ForwardMessage, as entry seq
// of the outbox toward the peer with site id site. Each (site, seq) must be
// put once: putting it again replaces the value on disk but counts it twice
// in OutboxStats. The entry is counted when the batch commits.
func (b *Batch) PutOutbox(site string, seq uint64, value []byte) {
	if !validSiteID(site) {
		b.invalid("site id %q is empty or contains U+0000", site)
		return
	}
	b.key = appendOutboxKey(b.key[:0], site, seq)
	b.val = append(b.val[:0], recordVersion)
	b.val = append(b.val, value...)
	b.set(b.key, b.val)
	b.outboxPuts = append(b.outboxPuts, outboxPut{site: site, bytes: int64(len(value))})
}

// PutForwardHighWater records seq as the highest forward sequence number
// received from the peer with site id site and delivered. The receiver of a
// Forward stream puts it in the batch that delivers the messages, so that a
// resend after a crash is recognised as a duplicate.
func (b *Batch) PutForwardHighWater(site string, seq uint64) {
	if !validSiteID(site) {
		b.invalid("site id %q is empty or contains U+0000", site)
		return
	}
	b.key = appendHighWaterKey(b.key[:0], site)
	b.val = appendUvarintValue(b.val[:0], seq)
	b.set(b.key, b.val)
}

// ForwardHighWater returns the high-water mark last committed with
// PutForwardHighWater for site, or 0 when there is none.
func (s *Store) ForwardHighWater(site string) (uint64, error) {
	if err := checkSiteID(site); err != nil {
		return 0, err
	}
	return s.getUvarint(appendHighWaterKey(nil, site), "forward high-water")
}

// getUvarint reads a uvarint meta value, or 0 when key does not exist.
func (s *Store) getUvarint(key []byte, record string) (uint64, error) {
	if !s.gate.enter() {
		return 0, ErrClosed
	}
	defer s.gate.exit()

	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("storage: read %s %x: %w", record, key, markPebble(err))
	}
	defer closer.Close()
	n, err := decodeUvarintValue(v, record)
	if err != nil {
		return 0, fmt.Errorf("storage: read %s %x: %w", record, key, err)
	}
	return n, nil
}

// ReserveForwardSeq raises the stored ceiling of the forward sequence
// numbers toward site by block, with a synced write, and returns the new
// ceiling. The caller may then hand out the numbers from ceiling-block up
// to ceiling-1. Because the ceiling only grows and the next call starts
// where the last one ended, no number is handed out twice, even across a
// crash. The first reservation of a site starts at 0.
//
// Calls for one Store are serialized. Each blocks on one fsync.
func (s *Store) ReserveForwardSeq(site string, block uint64) (uint64, error) {
	if err := checkSiteID(site); err != nil {
		return 0, err
	}
	if block == 0 {
		return 0, errors.New("storage: forward sequence block is 0, expected at least 1")
	}
	s.outbox.reserveMu.Lock()
	defer s.outbox.reserveMu.Unlock()

	key := appendForwardSeqKey(nil, site)
	current, err := s.getUvarint(key, "forward sequence ceiling")
	if err != nil {
		return 0, err
	}
	if current > math.MaxUint64-block {
		return 0, fmt.Errorf("storage: forward sequence ceiling %d of site %q cannot grow by %d", current, site, block)
	}
	ceiling := current + block

	if !s.gate.enter() {
		return 0, ErrClosed
	}
	defer s.gate.exit()
	if err := s.failure(); err != nil {
		return 0, err
	}
	if err := s.db.Set(key, appendUvarintValue(nil, ceiling), pebble.Sync); err != nil {
		s.setFailed(fmt.Errorf("reserve forward sequence numbers below %d for site %q: %w", ceiling, site, err))
		return 0, fmt.Errorf("storage: reserve forward sequence numbers for site %q: %w", site, markPebble(err))
	}
	return ceiling, nil
}

// ScanOutbox calls fn for up to limit entries of the outbox toward site
// with a sequence number above afterSeq, in sequence order. A limit of 0
// or less means no limit. The value passed to fn is valid only during the
// call. ScanOutbox stops at the first error from fn and returns it
// unchanged, so a caller can end the scan early with a sentinel error.
func (s *Store) ScanOutbox(site string, afterSeq uint64, limit int, fn func(seq uint64, value []byte) error) error {
	if err := checkSiteID(site); err != nil {
		return err
	}
	if afterSeq == math.MaxUint64 {
		return nil
	}
	lower := appendOutboxKey(nil, site, afterSeq+1)
	upper := appendClientPrefixEnd(nil, kindOutbox, site)

	n := 0
	var fnErr error
	err := s.load(lower, upper, func(key, value []byte) error {
		_, seq, err := parseOutboxKey(key)
		if err != nil {
			return fmt.Errorf("storage: scan outbox of site %q: %w", site, err)
		}
		v, err := outboxValue(value)
		if err != nil {
			return fmt.Errorf("storage: scan outbox entry %d of site %q: %w", seq, site, err)
		}
		if err := fn(seq, v); err != nil {
			fnErr = err
			return errStopScan
		}
		n++
		if limit > 0 && n >= limit {
			return errStopScan
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// DeleteOutboxThrough deletes every entry of the outbox toward site with a
// sequence number up to and including seq. It does not wait for an fsync:
// if the delete is lost in a crash, the entries are sent again and the
// receiver drops them as duplicates. It reads the range first to keep
// OutboxStats exact and writes nothing when the range is empty.
//
// NOTE: an entry committed inside the range after the read and before the
// delete would be deleted without being subtracted from OutboxStats. The
// forwarder deletes only acknowledged sequence numbers, whose entries were
// committed before they were sent.
func (s *Store) DeleteOutboxThrough(site string, seq uint64) error {
	if err := checkSiteID(site); err != nil {
		return err
	}
	lower := appendClientPrefix(nil, kindOutbox, site)
	var upper []byte
	if seq == math.MaxUint64 {
		upper = appendClientPrefixEnd(nil, kindOutbox, site)
	} else {
		upper = appendOutboxKey(nil, site, seq+1)
	}
	_, err := s.deleteOutboxRange(site, lower, upper)
	return err
}

// DropOutbox deletes the whole outbox toward site, for a peer that was
// reaped, and returns what it contained. It keeps the sequence ceiling of
// site, so that numbers handed out toward that site id are never reused,
// even if the peer comes back with its disk after all.
func (s *Store) DropOutbox(site string) (OutboxStats, error) {
	if err := checkSiteID(site); err != nil {
		return OutboxStats{}, err
	}
	lower := appendClientPrefix(nil, kindOutbox, site)
	upper := appendClientPrefixEnd(nil, kindOutbox, site)
	return s.deleteOutboxRange(site, lower, upper)
}

// deleteOutboxRange deletes the outbox keys in [lower, upper) of site and
// subtracts them from the index.
func (s *Store) deleteOutboxRange(site string, lower, upper []byte) (OutboxStats, error) {
	var removed OutboxStats
	err := s.load(lower, upper, func(_, value []byte) error {
		removed.Depth++
		removed.Bytes += int64(len(value) - 1)
		return nil
	})
	if err != nil {
		return OutboxStats{}, fmt.Errorf("storage: read outbox of site %q before delete: %w", site, err)
	}
	if removed.Depth == 0 {
		return removed, nil
	}

	b := s.NewBatch()
	defer b.Close()
	b.deleteRange(lower, upper)
	if err := b.CommitNoSync(); err != nil {
		return OutboxStats{}, fmt.Errorf("storage: delete outbox entries of site %q: %w", site, err)
	}
	s.outbox.sub(site, removed)
	return removed, nil
}

// OutboxStats returns the size of the outbox toward site. It reads only
// memory.
func (s *Store) OutboxStats(site string) OutboxStats {
	return s.outbox.get(site)
}

// OutboxSites returns the site ids whose outbox is not empty, sorted. It
// reads only memory, and returns ErrClosed after Close.
func (s *Store) OutboxSites() ([]string, error) {
	if !s.gate.enter() {
		return nil, ErrClosed
	}
	defer s.gate.exit()

	s.outbox.mu.Lock()
	sites := make([]string, 0, len(s.outbox.sites))
	for site := range s.outbox.sites {
		sites = append(sites, site)
	}
	s.outbox.mu.Unlock()
	slices.Sort(sites)
	return sites, nil
}
