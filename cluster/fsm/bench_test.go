package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// BenchmarkFSM_ApplyBatch applies one route batch of 1,000 adds, the
// largest a route syncer proposes, then one that removes them again.
func BenchmarkFSM_ApplyBatch(b *testing.B) {
	lf := newFeeder(b)
	lf.mustApply(StatusApplied, typeNode, nodeRec("n1", "s1", 1, joined))
	addOps, removeOps := make([]*clusterpb.RouteOp, 1000), make([]*clusterpb.RouteOp, 1000)
	for i := range addOps {
		filter := fmt.Sprintf("devices/%d/+/state", i)
		addOps[i], removeOps[i] = add(filter, "", i%2 == 0), remove(filter, "")
	}
	addData, err := EncodeCommand(typeRoutes, batch("s1", 1, addOps...))
	if err != nil {
		b.Fatal(err)
	}
	removeData, err := EncodeCommand(typeRoutes, batch("s1", 1, removeOps...))
	if err != nil {
		b.Fatal(err)
	}

	index := lf.index
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		index++
		data := addData
		if i%2 == 1 {
			data = removeData
		}
		lf.f.ApplyBatch([]*raft.Log{{Index: index, Type: raft.LogCommand, Data: data}})
	}
}

// BenchmarkFSM_RoutesFor reads the 1,000 routes of one site among 10.
func BenchmarkFSM_RoutesFor(b *testing.B) {
	lf := newFeeder(b)
	for s := range 10 {
		site := fmt.Sprintf("s%d", s)
		lf.mustApply(StatusApplied, typeNode, nodeRec(fmt.Sprintf("n%d", s), site, 1, joined))
		ops := make([]*clusterpb.RouteOp, 1000)
		for i := range ops {
			ops[i] = add(fmt.Sprintf("devices/%d/+/state", i), "", false)
		}
		lf.mustApply(StatusApplied, typeRoutes, batch(site, 1, ops...))
	}

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if got := lf.f.RoutesFor("s3"); len(got) != 1000 {
			b.Fatalf("RoutesFor returned %d routes, expected 1000", len(got))
		}
	}
}
