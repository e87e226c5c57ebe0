package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// Restore replaces the whole state with the snapshot read from rc, and
// closes rc. On error the state is left as it was. Raft calls it from the
// FSM goroutine, never during Apply; readers see the old state until the
// new one is complete.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(bufio.NewReaderSize(rc, 64<<10))
	if err != nil {
		return fmt.Errorf("restore fsm snapshot: %w", err)
	}

	f.mu.Lock()
	f.mu.st = st
	// The restored route sets are new maps, so no snapshot shares them, but
	// raising gen keeps the rule simple: everything below gen may be shared.
	f.mu.gen++
	for _, rs := range st.routes {
		rs.gen = f.mu.gen
	}
	close(f.mu.appliedCh)
	f.mu.appliedCh = make(chan struct{})
	f.mu.Unlock()

	f.subs.notify(ChangeAll)
	return nil
}

func readSnapshot(r *bufio.Reader) (state, error) {
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		return state{}, fmt.Errorf("%w: read magic: %w", ErrCorruptSnapshot, err)
	}
	if string(magic) != snapshotMagic {
		return state{}, fmt.Errorf("%w: magic %q, expected %q", ErrCorruptSnapshot, magic, snapshotMagic)
	}

	var h clusterpb.SnapshotHeader
	if err := readMessage(r, &h); err != nil {
		return state{}, fmt.Errorf("header: %w", err)
	}
	if h.FormatVersion != SnapshotFormatVersion {
		return state{}, fmt.Errorf("%w: version %d, this build reads %d", ErrUnsupportedSnapshot, h.FormatVersion, SnapshotFormatVersion)
	}
	if h.ClusterVersion > MaxClusterVersion {
		return state{}, fmt.Errorf("%w: cluster version %d, this build supports up to %d", ErrUnsupportedSnapshot, h.ClusterVersion, MaxClusterVersion)
	}

	st := newState()
	st.clusterVersion, st.applied, st.epoch = h.ClusterVersion, h.AppliedIndex, h.MembershipEpoch
	for i := uint64(0); i < h.RecordCount; i++ {
		var rec clusterpb.SnapshotRecord
		if err := readMessage(r, &rec); err != nil {
			return state{}, fmt.Errorf("record %d of %d: %w", i+1, h.RecordCount, err)
		}
		if err := st.addRecord(&rec); err != nil {
			return state{}, fmt.Errorf("%w: record %d: %w", ErrCorruptSnapshot, i+1, err)
		}
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		return state{}, fmt.Errorf("%w: data after the last of %d records", ErrCorruptSnapshot, h.RecordCount)
	}
	if err := st.checkSites(); err != nil {
		return state{}, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	return st, nil
}

func readMessage(r *bufio.Reader, m proto.Message) error {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return fmt.Errorf("%w: read length: %w", ErrCorruptSnapshot, err)
	}
	if n > maxRecordSize {
		return fmt.Errorf("%w: length %d exceeds the limit of %d", ErrCorruptSnapshot, n, maxRecordSize)
	}
	// Grow the buffer as data arrives rather than trusting n up front.
	buf, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return fmt.Errorf("%w: read %d bytes: %w", ErrCorruptSnapshot, n, err)
	}
	if uint64(len(buf)) != n {
		return fmt.Errorf("%w: truncated: %d of %d bytes", ErrCorruptSnapshot, len(buf), n)
	}
	if err := proto.Unmarshal(buf, m); err != nil {
		return fmt.Errorf("%w: decode: %w", ErrCorruptSnapshot, err)
	}
	return nil
}

// addRecord adds one snapshot record to a state being restored, checking
// what Apply guarantees: valid fields and no duplicate key.
func (st *state) addRecord(rec *clusterpb.SnapshotRecord) error {
	switch r := rec.Record.(type) {
	case *clusterpb.SnapshotRecord_Node:
		return st.addNode(nodeFromProto(r.Node))
	case *clusterpb.SnapshotRecord_Route:
		return st.addRoute(r.Route)
	case *clusterpb.SnapshotRecord_Staged:
		return st.addStaged(r.Staged)
	case *clusterpb.SnapshotRecord_Auth:
		return st.addAuth(r.Auth)
	}
	return errors.New("empty or unknown record")
}

func (st *state) addNode(n Node) error {
	if err := n.validate(); err != nil {
		return err
	}
	if _, dup := st.nodes[n.Name]; dup {
		return fmt.Errorf("duplicate node %q", n.Name)
	}
	if owner, dup := st.sites[n.SiteID]; dup {
		return fmt.Errorf("site id %q of node %q also belongs to node %q", n.SiteID, n.Name, owner)
	}
	st.nodes[n.Name] = n
	st.sites[n.SiteID] = n.Name
	return nil
}

func (st *state) addRoute(r *clusterpb.RouteRecord) error {
	k, err := routeKeyOf(r, r.SiteId)
	if err != nil {
		return err
	}
	rs := st.routes[r.SiteId]
	if rs == nil {
		rs = &routeSet{routes: map[routeKey]bool{}}
		st.routes[r.SiteId] = rs
	}
	if _, dup := rs.routes[k]; dup {
		return fmt.Errorf("duplicate route %q (share group %q) of site id %q", k.filter, k.shareGroup, r.SiteId)
	}
	rs.routes[k] = r.Durable
	return nil
}

func (st *state) addStaged(s *clusterpb.StagedRoutes) error {
	if s.SiteId == "" {
		return errors.New("staged routes: missing site id")
	}
	if _, dup := st.staged[s.SiteId]; dup {
		return fmt.Errorf("duplicate staged routes of site id %q", s.SiteId)
	}
	sg := &stagedSet{incarnation: s.Incarnation, routes: make(map[routeKey]bool, len(s.Routes))}
	for _, r := range s.Routes {
		k, err := routeKeyOf(r, s.SiteId)
		if err != nil {
			return fmt.Errorf("staged routes: %w", err)
		}
		if _, dup := sg.routes[k]; dup {
			return fmt.Errorf("duplicate staged route %q (share group %q) of site id %q", k.filter, k.shareGroup, s.SiteId)
		}
		sg.routes[k] = r.Durable
	}
	st.staged[s.SiteId] = sg
	return nil
}

func routeKeyOf(r *clusterpb.RouteRecord, siteID string) (routeKey, error) {
	if r.SiteId == "" || r.SiteId != siteID {
		return routeKey{}, fmt.Errorf("route %q: site id %q, expected %q", r.Filter, r.SiteId, siteID)
	}
	if r.Filter == "" {
		return routeKey{}, fmt.Errorf("route of site id %q: missing filter", siteID)
	}
	return routeKey{filter: r.Filter, shareGroup: r.ShareGroup}, nil
}

func (st *state) addAuth(r *clusterpb.AuthRecord) error {
	kind := AuthKind(r.Kind)
	if !kind.valid() {
		return fmt.Errorf("auth record %q: invalid kind %d", r.Name, r.Kind)
	}
	if (kind == AuthRules) != (r.Name == RulesName) {
		return fmt.Errorf("%s record: invalid name %q", kind, r.Name)
	}
	if _, dup := st.auth[kind][r.Name]; dup {
		return fmt.Errorf("duplicate %s record %q", kind, r.Name)
	}
	st.auth[kind][r.Name] = r.Data
	return nil
}

// checkSites checks that every route and staged set belongs to a node
// record, as Apply guarantees by purging the routes of a retired site id.
func (st *state) checkSites() error {
	for site := range st.routes {
		if _, ok := st.sites[site]; !ok {
			return fmt.Errorf("routes of site id %q, which no node record contains", site)
		}
	}
	for site := range st.staged {
		if _, ok := st.sites[site]; !ok {
			return fmt.Errorf("staged routes of site id %q, which no node record contains", site)
		}
	}
	return nil
}
