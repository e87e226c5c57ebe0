package raftstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// benchLog returns an entry of about the size of a small route batch.
func benchLog(index uint64) *raft.Log {
	return &raft.Log{
		Index:      index,
		Term:       3,
		Type:       raft.LogCommand,
		Data:       make([]byte, 256),
		AppendedAt: time.Unix(1_700_000_000, 0),
	}
}

func BenchmarkStoreLogs(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, n := range []int{1, 16, 256} {
			name := fmt.Sprintf("sync=%v/entries=%d", sync, n)
			b.Run(name, func(b *testing.B) {
				cfg := testConfig(b.TempDir())
				cfg.NoSync = !sync
				s := openStore(b, cfg)
				logs := make([]*raft.Log, n)
				for i := range logs {
					logs[i] = benchLog(uint64(i + 1))
				}
				b.ReportAllocs()
				b.ResetTimer()
				next := uint64(1)
				for b.Loop() {
					for i, l := range logs {
						l.Index = next + uint64(i)
					}
					if err := s.StoreLogs(logs); err != nil {
						b.Fatalf("StoreLogs: %v", err)
					}
					next += uint64(n)
				}
				b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

func BenchmarkGetLog(b *testing.B) {
	const stored = 10_000
	cfg := testConfig(b.TempDir())
	cfg.NoSync = true
	s := openStore(b, cfg)
	logs := make([]*raft.Log, 0, 1000)
	for i := uint64(1); i <= stored; i++ {
		logs = append(logs, benchLog(i))
		if len(logs) == cap(logs) {
			if err := s.StoreLogs(logs); err != nil {
				b.Fatalf("StoreLogs: %v", err)
			}
			logs = logs[:0]
		}
	}
	var l raft.Log
	b.ReportAllocs()
	b.ResetTimer()
	i := uint64(0)
	for b.Loop() {
		if err := s.GetLog(1+i%stored, &l); err != nil {
			b.Fatalf("GetLog: %v", err)
		}
		i += 7919 // a prime step, so reads do not follow the write order
	}
}

func BenchmarkLastIndex(b *testing.B) {
	s := openStore(b, testConfig(b.TempDir()))
	if err := s.StoreLogs(testLogs(1, 10, 1)); err != nil {
		b.Fatalf("StoreLogs: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.LastIndex(); err != nil {
			b.Fatalf("LastIndex: %v", err)
		}
	}
}

func BenchmarkSetUint64(b *testing.B) {
	s := openStore(b, testConfig(b.TempDir()))
	b.ReportAllocs()
	v := uint64(0)
	for b.Loop() {
		v++
		if err := s.SetUint64([]byte("CurrentTerm"), v); err != nil {
			b.Fatalf("SetUint64: %v", err)
		}
	}
}

func BenchmarkGetUint64(b *testing.B) {
	s := openStore(b, testConfig(b.TempDir()))
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		b.Fatalf("SetUint64: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetUint64([]byte("CurrentTerm")); err != nil {
			b.Fatalf("GetUint64: %v", err)
		}
	}
}

func BenchmarkCodec(b *testing.B) {
	l := benchLog(123_456)
	l.Extensions = []byte("ext")
	buf := appendLog(nil, l)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			buf = appendLog(buf[:0], l)
		}
	})
	b.Run("decode", func(b *testing.B) {
		var out raft.Log
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			if err := decodeLog(buf, &out); err != nil {
				b.Fatalf("decodeLog: %v", err)
			}
		}
	})
}
