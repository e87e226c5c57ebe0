package storage

import (
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"sync"
	"testing"
)

// diskRefCounts counts the references of every message from the queue and
// inflight entries on disk.
func diskRefCounts(t testing.TB, s *Store) map[uint64]int64 {
	t.Helper()
	counts := make(map[uint64]int64)
	for _, kind := range []byte{kindQueue, kindInflight} {
		lower, upper := kindBounds(kind)
		err := s.load(lower, upper, func(_, value []byte) error {
			var id uint64
			if kind == kindQueue {
				var e QueueEntry
				if err := decodeQueueEntry(value, &e); err != nil {
					return err
				}
				id = e.MessageID
			} else {
				var e InflightEntry
				if err := decodeInflightEntry(value, &e); err != nil {
					return err
				}
				id = e.MessageID
			}
			counts[id]++
			return nil
		})
		if err != nil {
			t.Fatalf("scan kind 0x%02x: %v", kind, err)
		}
	}
	return counts
}

// diskMessageIDs returns the ids of all message bodies on disk.
func diskMessageIDs(t testing.TB, s *Store) map[uint64]bool {
	t.Helper()
	ids := make(map[uint64]bool)
	lower, upper := kindBounds(kindMessage)
	err := s.load(lower, upper, func(key, _ []byte) error {
		id, err := parseMessageKey(key)
		ids[id] = true
		return err
	})
	if err != nil {
		t.Fatalf("scan messages: %v", err)
	}
	return ids
}

// checkRefsMatchDisk checks that the in-memory counts equal the references
// on disk and that exactly the referenced bodies exist.
func checkRefsMatchDisk(t testing.TB, s *Store) {
	t.Helper()
	disk := diskRefCounts(t, s)
	s.refs.mu.Lock()
	mem := maps.Clone(s.refs.counts)
	s.refs.mu.Unlock()
	if !maps.Equal(mem, disk) {
		t.Errorf("in-memory reference counts differ from disk:\nmemory %v\ndisk   %v", mem, disk)
	}
	bodies := diskMessageIDs(t, s)
	for id := range disk {
		if !bodies[id] {
			t.Errorf("message %d is referenced but has no body", id)
		}
	}
	for id := range bodies {
		if disk[id] == 0 {
			t.Errorf("message %d has a body but no reference", id)
		}
	}
}

func messageExists(t testing.TB, s *Store, id uint64) bool {
	t.Helper()
	_, err := s.Message(id)
	if errors.Is(err, ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatalf("Message(%d): %v", id, err)
	}
	return true
}

func TestRefs_BodyDeletedWithLastQueueReference(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	b.PutMessage(&Message{ID: 1, Topic: "t", Payload: []byte("x")})
	b.Enqueue("a", &QueueEntry{Seq: 10, MessageID: 1})
	b.Enqueue("b", &QueueEntry{Seq: 11, MessageID: 1})
	mustCommit(t, b)

	b = s.NewBatch()
	b.Dequeue("a", 10, 1)
	mustCommit(t, b)
	if !messageExists(t, s, 1) {
		t.Fatal("body deleted while b still references it")
	}

	b = s.NewBatch()
	b.Dequeue("b", 11, 1)
	mustCommit(t, b)
	if messageExists(t, s, 1) {
		t.Error("body kept after the last reference was dequeued")
	}
	checkRefsMatchDisk(t, s)
}

func TestRefs_DoubleDequeueReleasesOnce(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	b.PutMessage(&Message{ID: 1})
	b.Enqueue("a", &QueueEntry{Seq: 10, MessageID: 1})
	b.Enqueue("b", &QueueEntry{Seq: 11, MessageID: 1})
	mustCommit(t, b)

	for range 2 {
		b = s.NewBatch()
		b.Dequeue("a", 10, 1)
		mustCommit(t, b)
	}
	if !messageExists(t, s, 1) {
		t.Error("a repeated dequeue released b's reference")
	}
	checkRefsMatchDisk(t, s)
}

func TestRefs_MoveQueueToInflightKeepsBody(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	b.PutMessage(&Message{ID: 1})
	b.Enqueue("a", &QueueEntry{Seq: 10, MessageID: 1, QoS: 2})
	mustCommit(t, b)

	b = s.NewBatch()
	b.Dequeue("a", 10, 1)
	b.PutInflight("a", &InflightEntry{PacketID: 7, Seq: 10, MessageID: 1, QoS: 2})
	mustCommit(t, b)
	if !messageExists(t, s, 1) {
		t.Fatal("body deleted by a dequeue and inflight put in one batch")
	}

	b = s.NewBatch()
	b.PutInflight("a", &InflightEntry{PacketID: 7, Seq: 10, MessageID: 1, QoS: 2, Released: true})
	mustCommit(t, b)
	checkRefsMatchDisk(t, s)

	b = s.NewBatch()
	b.DeleteInflight("a", 7, 1)
	mustCommit(t, b)
	if messageExists(t, s, 1) {
		t.Error("body kept after its only inflight entry was deleted; the released re-put must not add a reference")
	}
	checkRefsMatchDisk(t, s)
}

func TestRefs_InflightRePutWithOtherMessage(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	b.PutMessage(&Message{ID: 1})
	b.PutMessage(&Message{ID: 2})
	b.PutInflight("a", &InflightEntry{PacketID: 1, MessageID: 1, QoS: 1})
	b.PutInflight("b", &InflightEntry{PacketID: 1, MessageID: 2, QoS: 1})
	mustCommit(t, b)

	b = s.NewBatch()
	b.PutInflight("a", &InflightEntry{PacketID: 1, MessageID: 2, QoS: 1})
	mustCommit(t, b)
	if messageExists(t, s, 1) {
		t.Error("message 1 kept after its only entry was replaced")
	}
	if !messageExists(t, s, 2) {
		t.Error("message 2 lost")
	}
	checkRefsMatchDisk(t, s)
}

func TestRefs_UnreferencedPutDeletedAtCommit(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	b.PutMessage(&Message{ID: 5})
	mustCommit(t, b)
	if messageExists(t, s, 5) {
		t.Error("a body put without a reference was kept")
	}
}

func TestRefs_DeleteSession(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	for id := uint64(1); id <= 3; id++ {
		b.PutMessage(&Message{ID: id})
	}
	b.PutSession(&Session{ClientID: "a"})
	b.Enqueue("a", &QueueEntry{Seq: 10, MessageID: 1})
	b.Enqueue("a", &QueueEntry{Seq: 11, MessageID: 2})
	b.PutInflight("a", &InflightEntry{PacketID: 1, MessageID: 3, QoS: 1})
	b.Enqueue("b", &QueueEntry{Seq: 12, MessageID: 2})
	mustCommit(t, b)

	b = s.NewBatch()
	b.DeleteSession("a")
	mustCommit(t, b)

	if messageExists(t, s, 1) || messageExists(t, s, 3) {
		t.Error("bodies referenced only by the deleted session were kept")
	}
	if !messageExists(t, s, 2) {
		t.Error("body still queued for b was deleted")
	}
	checkRefsMatchDisk(t, s)
}

func TestRefs_DeleteSessionOrderInBatch(t *testing.T) {
	t.Run("enqueue-then-delete", func(t *testing.T) {
		s := openStore(t, testConfig(t.TempDir()))
		b := s.NewBatch()
		b.PutMessage(&Message{ID: 1})
		b.Enqueue("a", &QueueEntry{Seq: 10, MessageID: 1})
		b.DeleteSession("a")
		mustCommit(t, b)
		if got := loadQueue(t, s, "a"); len(got) != 0 {
			t.Errorf("queue = %d entries, want 0", len(got))
		}
		if messageExists(t, s, 1) {
			t.Error("body kept although its entry was deleted in the same batch")
		}
		checkRefsMatchDisk(t, s)
	})
	t.Run("delete-then-enqueue", func(t *testing.T) {
		s := openStore(t, testConfig(t.TempDir()))
		b := s.NewBatch()
		b.PutMessage(&Message{ID: 1})
		b.Enqueue("a", &QueueEntry{Seq: 10, MessageID: 1})
		mustCommit(t, b)

		b = s.NewBatch()
		b.DeleteSession("a")
		b.PutMessage(&Message{ID: 2})
		b.Enqueue("a", &QueueEntry{Seq: 11, MessageID: 2})
		mustCommit(t, b)
		got := loadQueue(t, s, "a")
		if len(got) != 1 || got[0].Seq != 11 {
			t.Errorf("queue = %+v, want only seq 11", got)
		}
		if messageExists(t, s, 1) {
			t.Error("body of the deleted entry kept")
		}
		if !messageExists(t, s, 2) {
			t.Error("body enqueued after DeleteSession deleted")
		}
		checkRefsMatchDisk(t, s)
	})
}

func TestRefs_SurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(testConfig(dir))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b := s.NewBatch()
	b.PutMessage(&Message{ID: 1})
	b.Enqueue("a", &QueueEntry{Seq: 10, MessageID: 1})
	b.PutInflight("b", &InflightEntry{PacketID: 3, MessageID: 1, QoS: 1})
	mustCommit(t, b)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openStore(t, testConfig(dir))
	checkRefsMatchDisk(t, s)
	b = s.NewBatch()
	b.Dequeue("a", 10, 1)
	mustCommit(t, b)
	if !messageExists(t, s, 1) {
		t.Fatal("body deleted after reopen while b's inflight entry references it")
	}
	b = s.NewBatch()
	b.PutInflight("b", &InflightEntry{PacketID: 3, MessageID: 1, QoS: 1, Released: true})
	b.DeleteInflight("b", 3, 1)
	mustCommit(t, b)
	if messageExists(t, s, 1) {
		t.Error("body kept after the last reference went")
	}
	checkRefsMatchDisk(t, s)
}

func TestRefs_OpenDeletesOrphans(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(testConfig(dir))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b := s.NewBatch()
	b.PutMessage(&Message{ID: 1})
	b.Enqueue("a", &QueueEntry{Seq: 10, MessageID: 1})
	mustCommit(t, b)
	// Write a body behind the Batch API, as a bug or another tool might.
	if err := s.db.Set(appendMessageKey(nil, 2), appendMessage(nil, &Message{ID: 2}), nil); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openStore(t, testConfig(dir))
	if messageExists(t, s, 2) {
		t.Error("orphan body 2 kept by Open")
	}
	if !messageExists(t, s, 1) {
		t.Error("referenced body 1 deleted by Open")
	}
	checkRefsMatchDisk(t, s)
}

// TestRefs_ConcurrentDequeues has many clients release references to the
// same messages at once, each with synced commits, and checks that every
// body goes exactly when its last reference goes.
func TestRefs_ConcurrentDequeues(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	const clients, messages = 8, 50

	b := s.NewBatch()
	for m := range messages {
		id := uint64(m + 1)
		b.PutMessage(&Message{ID: id, Payload: []byte{byte(m)}})
		for c := range clients {
			b.Enqueue(fmt.Sprintf("c%d", c), &QueueEntry{Seq: uint64(1000 + m), MessageID: id})
		}
	}
	mustCommit(t, b)

	// The first half of the clients dequeue everything concurrently, some
	// by moving entries to inflight and back out again.
	var wg sync.WaitGroup
	run := func(c int) {
		defer wg.Done()
		client := fmt.Sprintf("c%d", c)
		rng := rand.New(rand.NewSource(int64(c)))
		for _, m := range rng.Perm(messages) {
			id, seq := uint64(m+1), uint64(1000+m)
			b := s.NewBatch()
			b.Dequeue(client, seq, id)
			if m%3 == 0 {
				b.PutInflight(client, &InflightEntry{PacketID: uint16(m + 1), Seq: seq, MessageID: id, QoS: 1})
			}
			if err := b.Commit(); err != nil {
				t.Errorf("Commit: %v", err)
			}
			b.Close()
			if m%3 == 0 {
				b := s.NewBatch()
				b.DeleteInflight(client, uint16(m+1), id)
				if err := b.Commit(); err != nil {
					t.Errorf("Commit: %v", err)
				}
				b.Close()
			}
		}
	}
	for c := range clients / 2 {
		wg.Add(1)
		go run(c)
	}
	wg.Wait()
	for m := range messages {
		if !messageExists(t, s, uint64(m+1)) {
			t.Fatalf("message %d deleted while half the clients still queue it", m+1)
		}
	}
	checkRefsMatchDisk(t, s)

	// The rest finish, one of them by deleting its whole session.
	for c := clients / 2; c < clients-1; c++ {
		wg.Add(1)
		go run(c)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		b := s.NewBatch()
		b.DeleteSession(fmt.Sprintf("c%d", clients-1))
		if err := b.Commit(); err != nil {
			t.Errorf("Commit: %v", err)
		}
		b.Close()
	}()
	wg.Wait()
	for m := range messages {
		if messageExists(t, s, uint64(m+1)) {
			t.Errorf("message %d kept after every reference went", m+1)
		}
	}
	checkRefsMatchDisk(t, s)
	if n := len(s.refs.clients); n != 0 {
		t.Errorf("index still holds %d clients without entries", n)
	}
}

// TestRefs_RePutRacesLastDequeue re-puts the same body in every batch while
// a consumer dequeues each entry as soon as it is committed, so counts often
// reach zero while a re-put is committing. Before each dequeue the consumer
// checks that the body of its still-queued entry exists.
//
// NOTE: on two cores this test did not fail when the Pebble apply was moved
// out of refs.mu, because the window is narrow. A pass does not prove the
// ordering that applyWithRefs argues for.
func TestRefs_RePutRacesLastDequeue(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	const id, rounds = 1, 300
	committed := make(chan uint64, rounds)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(committed)
		for seq := uint64(1); seq <= rounds; seq++ {
			b := s.NewBatch()
			b.PutMessage(&Message{ID: id, Payload: []byte("same")})
			b.Enqueue("p", &QueueEntry{Seq: seq, MessageID: id})
			err := b.Commit()
			b.Close()
			if err != nil {
				t.Errorf("Commit: %v", err)
				return
			}
			committed <- seq
		}
	}()
	go func() {
		defer wg.Done()
		for seq := range committed {
			if seq == rounds {
				return
			}
			if _, err := s.Message(id); err != nil {
				t.Errorf("body missing while entry %d is queued: %v", seq, err)
			}
			b := s.NewBatch()
			b.Dequeue("p", seq, id)
			if err := b.Commit(); err != nil {
				t.Errorf("Commit: %v", err)
			}
			b.Close()
		}
	}()
	wg.Wait()

	if !messageExists(t, s, id) {
		t.Error("body missing while the last entry is queued")
	}
	checkRefsMatchDisk(t, s)
}

func TestRefs_SpareOnlySmallEmptiedClients(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	fill := func(clientID string, n int) {
		t.Helper()
		b := s.NewBatch()
		defer b.Close()
		for i := range n {
			id := s.NextID()
			b.PutMessage(&Message{ID: id, Topic: "t", QoS: 1})
			b.PutInflight(clientID, &InflightEntry{PacketID: uint16(i + 1), MessageID: id, QoS: 1})
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	empty := func(clientID string, n int) {
		t.Helper()
		b := s.NewBatch()
		defer b.Close()
		for i := range n {
			b.DeleteInflight(clientID, uint16(i+1), 0)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	spare := func() int {
		s.refs.mu.Lock()
		defer s.refs.mu.Unlock()
		return len(s.refs.spare)
	}

	fill("small", 3)
	empty("small", 3)
	if got := spare(); got != 1 {
		t.Fatalf("%d spare clients after emptying a small one, expected 1", got)
	}
	fill("reuser", 1)
	if got := spare(); got != 0 {
		t.Fatalf("%d spare clients after a new client took the spare one, expected 0", got)
	}
	empty("reuser", 1)

	// The large client takes the spare one, grows its maps past
	// maxSparePeakItems and is dropped when emptied.
	fill("large", maxSparePeakItems+1)
	empty("large", maxSparePeakItems+1)
	if got := spare(); got != 0 {
		t.Errorf("%d spare clients after emptying a large one, expected 0", got)
	}
	if ids := diskMessageIDs(t, s); len(ids) != 0 {
		t.Errorf("%d message bodies left, expected 0", len(ids))
	}
	checkRefsMatchDisk(t, s)
}
