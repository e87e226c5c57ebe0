package storage

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// benchPayload is a typical small MQTT payload.
var benchPayload = make([]byte, 256)

// benchCommit commits batches of one message body plus one queue entry,
// then dequeues the entry again in the next batch, so the store stays small
// and both reference paths run. One op is one Commit.
func benchCommit(b *testing.B, cfg Config, parallel bool) {
	s := openStore(b, cfg)
	var clients atomic.Int64
	commitOne := func(clientID string, prev *[2]uint64) {
		id, seq := s.NextID(), s.NextID()
		batch := s.NewBatch()
		batch.PutMessage(&Message{ID: id, Topic: "bench/topic", Payload: benchPayload, QoS: 1})
		batch.Enqueue(clientID, &QueueEntry{Seq: seq, MessageID: id, QoS: 1})
		if prev[0] != 0 {
			batch.Dequeue(clientID, prev[0], prev[1])
		}
		if err := batch.Commit(); err != nil {
			b.Fatalf("Commit: %v", err)
		}
		batch.Close()
		*prev = [2]uint64{seq, id}
	}

	b.ReportAllocs()
	b.ResetTimer()
	fsyncsBefore := walFsyncs(b, s)
	start := time.Now()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			clientID := fmt.Sprintf("c%d", clients.Add(1))
			var prev [2]uint64
			for pb.Next() {
				commitOne(clientID, &prev)
			}
		})
	} else {
		var prev [2]uint64
		for range b.N {
			commitOne("c0", &prev)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
	if fsyncs := walFsyncs(b, s) - fsyncsBefore; fsyncs > 0 {
		b.ReportMetric(float64(b.N)/float64(fsyncs), "commits/fsync")
	}
}

// walFsyncs returns how many WAL fsyncs Pebble has timed so far.
func walFsyncs(b *testing.B, s *Store) uint64 {
	var m dto.Metric
	if err := s.db.Metrics().LogWriter.FsyncLatency.Write(&m); err != nil {
		b.Fatalf("read fsync histogram: %v", err)
	}
	return m.GetHistogram().GetSampleCount()
}

func BenchmarkCommit_Sync(b *testing.B) {
	benchCommit(b, testConfig(b.TempDir()), false)
}

// BenchmarkCommit_SyncParallel commits from 4, 16 and 64 goroutines. Its
// commits/fsync metric shows how many commits share one fsync.
func BenchmarkCommit_SyncParallel(b *testing.B) {
	for _, goroutines := range []int{4, 16, 64} {
		b.Run(fmt.Sprintf("goroutines-%d", goroutines), func(b *testing.B) {
			// RunParallel starts parallelism*GOMAXPROCS goroutines.
			b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
			benchCommit(b, testConfig(b.TempDir()), true)
		})
	}
}

func BenchmarkCommit_Relaxed(b *testing.B) {
	cfg := testConfig(b.TempDir())
	cfg.Durability = DurabilityRelaxed
	benchCommit(b, cfg, false)
}

func BenchmarkCommit_RelaxedParallel(b *testing.B) {
	cfg := testConfig(b.TempDir())
	cfg.Durability = DurabilityRelaxed
	b.SetParallelism(8)
	benchCommit(b, cfg, true)
}

func BenchmarkNextID(b *testing.B) {
	s := openStore(b, testConfig(b.TempDir()))
	b.ReportAllocs()
	for range b.N {
		s.NextID()
	}
}

func BenchmarkCodec_Message(b *testing.B) {
	m := &Message{ID: 1 << 40, Topic: "sensors/building-1/floor-3/temperature", Payload: benchPayload, QoS: 1,
		Properties: []byte{0x01, 0x01}, PublisherID: "publisher-client-1"}
	buf := appendMessage(nil, m)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		dst := make([]byte, 0, len(buf))
		for range b.N {
			dst = appendMessage(dst[:0], m)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		var out Message
		for range b.N {
			if err := decodeMessage(buf, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCodec_QueueEntry(b *testing.B) {
	e := &QueueEntry{Seq: 1 << 40, MessageID: 1 << 40, QoS: 1, SubIDs: []uint32{12}}
	buf := appendQueueEntry(nil, e)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		dst := make([]byte, 0, 64)
		for range b.N {
			dst = appendQueueEntry(dst[:0], e)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		var out QueueEntry
		for range b.N {
			if err := decodeQueueEntry(buf, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCodec_InflightEntry(b *testing.B) {
	e := &InflightEntry{PacketID: 9, Seq: 1 << 40, MessageID: 1 << 40, QoS: 2, Released: true}
	buf := appendInflightEntry(nil, e)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		dst := make([]byte, 0, 64)
		for range b.N {
			dst = appendInflightEntry(dst[:0], e)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		var out InflightEntry
		for range b.N {
			if err := decodeInflightEntry(buf, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCodec_Session(b *testing.B) {
	sess := &Session{ClientID: "client-0001", ProtocolVersion: 5, ExpiryInterval: 3600, NextPacketID: 77, Will: make([]byte, 64)}
	buf := appendSession(nil, sess)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		dst := make([]byte, 0, 128)
		for range b.N {
			dst = appendSession(dst[:0], sess)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		var out Session
		for range b.N {
			if err := decodeSession(buf, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDelivery_InflightThenRelease runs the storage side of one QoS 1
// message to a connected persistent subscriber: the publisher's batch writes
// the body and the inflight entry, and the PUBACK's batch deletes the entry,
// which also deletes the body. Both commit without a sync, so that the
// figures show the store's own work. One op is one message.
func BenchmarkDelivery_InflightThenRelease(b *testing.B) {
	cfg := testConfig(b.TempDir())
	cfg.Durability = DurabilityRelaxed
	s := openStore(b, cfg)
	const clientID = "bench-subscriber"
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id, seq := s.NextID(), s.NextID()
		pid := uint16(i%65535) + 1
		publish := s.NewBatch()
		publish.PutMessage(&Message{ID: id, Topic: "bench/topic", Payload: benchPayload[:64], QoS: 1})
		publish.PutInflight(clientID, &InflightEntry{PacketID: pid, Seq: seq, MessageID: id, QoS: 1})
		if err := publish.CommitNoSync(); err != nil {
			b.Fatalf("commit publish: %v", err)
		}
		publish.Close()

		release := s.NewBatch()
		release.DeleteInflight(clientID, pid, id)
		if err := release.CommitNoSync(); err != nil {
			b.Fatalf("commit release: %v", err)
		}
		release.Close()
	}
}
