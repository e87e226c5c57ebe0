package fsm

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// The snapshot format, version 1:
//
//	"SFSM"                        magic
//	uvarint n, n bytes            SnapshotHeader
//	record_count times:
//	  uvarint n, n bytes          SnapshotRecord
//
// Records come in a fixed order, each group sorted: nodes by name, routes by
// site id, filter and share group, staged sets by site id, auth records by
// kind and name. So two FSMs with the same state write the same bytes.
const (
	snapshotMagic         = "SFSM"
	SnapshotFormatVersion = 1

	// maxRecordSize bounds one length prefix, so that a corrupt prefix
	// cannot make Restore allocate gigabytes. The largest record is a
	// staged set, which holds a node's whole replacement route set.
	// NOTE: a staged set of more than roughly 500,000 filters (an estimate
	// at about 100 bytes per route) exceeds the limit and fails Persist.
	maxRecordSize = 64 << 20
)

// snapshot is a point-in-time copy of the state for Persist. Route sets
// are shared with the FSM, which copies a set before it changes one (see
// routeSet.gen), so taking a snapshot costs a copy of the maps of sites,
// nodes and auth records but not of the routes.
type snapshot struct {
	header clusterpb.SnapshotHeader
	nodes  []Node
	routes map[string]*routeSet
	staged map[string]*stagedSet
	auth   [authKindCount]map[string][]byte
}

var _ raft.FSMSnapshot = (*snapshot)(nil)

// Snapshot captures the state for raft. Raft calls it from the FSM
// goroutine, never during Apply; Persist may then run during later applies.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &f.mu.st
	s := &snapshot{
		header: clusterpb.SnapshotHeader{
			FormatVersion:   SnapshotFormatVersion,
			ClusterVersion:  st.clusterVersion,
			AppliedIndex:    st.applied,
			MembershipEpoch: st.epoch,
		},
		nodes:  sortedNodes(st.nodes),
		routes: maps.Clone(st.routes),
		staged: make(map[string]*stagedSet, len(st.staged)),
	}
	for site, sg := range st.staged {
		s.staged[site] = sg.clone()
	}
	for k := range st.auth {
		s.auth[k] = maps.Clone(st.auth[k])
	}
	f.mu.gen++
	return s, nil
}

// Persist writes the snapshot to sink and closes it, or cancels it on error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist fsm snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close fsm snapshot: %w", err)
	}
	return nil
}

// Release does nothing: the snapshot holds only memory.
func (s *snapshot) Release() {}

func (s *snapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	e := encoder{w: bw, opts: proto.MarshalOptions{Deterministic: true}}
	recs := s.records()
	s.header.RecordCount = uint64(len(recs))

	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return err
	}
	if err := e.message(&s.header); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	for i, r := range recs {
		if err := e.message(r); err != nil {
			return fmt.Errorf("record %d: %w", i+1, err)
		}
	}
	return bw.Flush()
}

// records lists the snapshot's records in the format's order.
func (s *snapshot) records() []*clusterpb.SnapshotRecord {
	var out []*clusterpb.SnapshotRecord
	for _, n := range s.nodes {
		out = append(out, &clusterpb.SnapshotRecord{Record: &clusterpb.SnapshotRecord_Node{Node: n.proto()}})
	}
	for _, site := range slices.Sorted(maps.Keys(s.routes)) {
		for _, r := range sortedRouteRecords(site, s.routes[site].routes) {
			out = append(out, &clusterpb.SnapshotRecord{Record: &clusterpb.SnapshotRecord_Route{Route: r}})
		}
	}
	for _, site := range slices.Sorted(maps.Keys(s.staged)) {
		sg := s.staged[site]
		out = append(out, &clusterpb.SnapshotRecord{Record: &clusterpb.SnapshotRecord_Staged{Staged: &clusterpb.StagedRoutes{
			SiteId: site, Incarnation: sg.incarnation, Routes: sortedRouteRecords(site, sg.routes),
		}}})
	}
	for k := range s.auth {
		for _, a := range sortedAuth(AuthKind(k), s.auth[k], false) {
			out = append(out, &clusterpb.SnapshotRecord{Record: &clusterpb.SnapshotRecord_Auth{Auth: &clusterpb.AuthRecord{
				Kind: clusterpb.AuthKind(a.Kind), Name: a.Name, Data: a.Data,
			}}})
		}
	}
	return out
}

func sortedRouteRecords(site string, routes map[routeKey]bool) []*clusterpb.RouteRecord {
	out := make([]*clusterpb.RouteRecord, 0, len(routes))
	for k, durable := range routes {
		out = append(out, &clusterpb.RouteRecord{SiteId: site, Filter: k.filter, ShareGroup: k.shareGroup, Durable: durable})
	}
	slices.SortFunc(out, func(x, y *clusterpb.RouteRecord) int {
		if c := cmp.Compare(x.Filter, y.Filter); c != 0 {
			return c
		}
		return cmp.Compare(x.ShareGroup, y.ShareGroup)
	})
	return out
}

// encoder writes length-prefixed messages.
type encoder struct {
	w    *bufio.Writer
	opts proto.MarshalOptions
	buf  []byte
}

func (e *encoder) message(m proto.Message) error {
	var err error
	e.buf, err = e.opts.MarshalAppend(e.buf[:0], m)
	if err != nil {
		return err
	}
	if len(e.buf) > maxRecordSize {
		return fmt.Errorf("message of %d bytes exceeds the limit of %d", len(e.buf), maxRecordSize)
	}
	var prefix [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(prefix[:], uint64(len(e.buf)))
	if _, err := e.w.Write(prefix[:n]); err != nil {
		return err
	}
	_, err = e.w.Write(e.buf)
	return err
}
