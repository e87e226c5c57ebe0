package storage

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// crashChildEnv names the directory a re-executed test binary writes to
// before its parent kills it.
const crashChildEnv = "STARLING_STORAGE_CRASH_CHILD_DIR"

// crashChildRoundEnv distinguishes the client ids of successive children
// writing to the same directory.
const crashChildRoundEnv = "STARLING_STORAGE_CRASH_CHILD_ROUND"

const (
	crashWriters       = 4
	crashMaxIterations = 20000
	crashMaxDuration   = 60 * time.Second
)

// crashPayload is the deterministic payload of message id.
func crashPayload(id uint64) []byte {
	return []byte(fmt.Sprintf("payload-%d", id))
}

// runCrashChild is the body of the killed process. Each of crashWriters
// goroutines owns one client. It enqueues a new message per iteration and
// dequeues the previous one every other iteration, and after each Commit
// returns it prints one line to stdout:
//
//	enq CLIENT SEQ ID   queue entry SEQ referencing body ID was committed
//	deq CLIENT SEQ ID   that entry and its body were deleted
//
// Before committing a dequeue it prints "deq-begin CLIENT SEQ ID", because
// a dequeue whose commit was cut short by the kill may or may not be on
// disk. Each line is one write to a pipe, so lines never interleave. The
// loops stop after crashMaxIterations or crashMaxDuration if the parent
// never kills the child.
func runCrashChild(dir string) {
	round := os.Getenv(crashChildRoundEnv)
	s, err := Open(testConfig(dir))
	if err != nil {
		fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
		os.Exit(2)
	}
	deadline := time.Now().Add(crashMaxDuration)
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			crashWriter(s, fmt.Sprintf("r%s-w%d", round, w), deadline)
		}()
	}
	wg.Wait()
	_ = s.Close()
}

func crashWriter(s *Store, clientID string, deadline time.Time) {
	var prevSeq, prevID uint64
	for i := 0; i < crashMaxIterations && time.Now().Before(deadline); i++ {
		id, seq := s.NextID(), s.NextID()
		b := s.NewBatch()
		b.PutMessage(&Message{ID: id, Topic: "crash/" + clientID, Payload: crashPayload(id), QoS: 1})
		b.Enqueue(clientID, &QueueEntry{Seq: seq, MessageID: id, QoS: 1})
		if err := b.Commit(); err != nil {
			fmt.Fprintf(os.Stderr, "crash child: enqueue: %v\n", err)
			os.Exit(2)
		}
		b.Close()
		fmt.Fprintf(os.Stdout, "enq %s %d %d\n", clientID, seq, id)

		if i%2 == 1 {
			fmt.Fprintf(os.Stdout, "deq-begin %s %d %d\n", clientID, prevSeq, prevID)
			b := s.NewBatch()
			b.Dequeue(clientID, prevSeq, prevID)
			if err := b.Commit(); err != nil {
				fmt.Fprintf(os.Stderr, "crash child: dequeue: %v\n", err)
				os.Exit(2)
			}
			b.Close()
			fmt.Fprintf(os.Stdout, "deq %s %d %d\n", clientID, prevSeq, prevID)
		}
		prevSeq, prevID = seq, id
	}
}

// crashEntry identifies one queue entry written by the crash child.
type crashEntry struct {
	client string
	seq    uint64
	id     uint64
}

// crashLog is what the parent read from the child's stdout.
type crashLog struct {
	enqueued  map[crashEntry]bool // acknowledged enqueues
	dequeued  map[crashEntry]bool // acknowledged dequeues
	uncertain map[crashEntry]bool // dequeues begun but not acknowledged
	maxID     uint64
}

// runCrashRound starts the child on dir, kills it with SIGKILL after it
// acknowledged killAfter commits (or after a timeout), and returns what it
// acknowledged.
func runCrashRound(t *testing.T, dir string, round, killAfter int) crashLog {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("%s=%d", crashChildRoundEnv, round))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}

	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	log := crashLog{
		enqueued:  make(map[crashEntry]bool),
		dequeued:  make(map[crashEntry]bool),
		uncertain: make(map[crashEntry]bool),
	}
	acks := 0
	killed := false
	timeout := time.After(30 * time.Second)
	for line := range lines {
		acks += log.add(t, line)
		if !killed && acks >= killAfter {
			killed = true
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("kill child: %v", err)
			}
		}
		select {
		case <-timeout:
			if !killed {
				killed = true
				t.Logf("child acknowledged only %d commits in 30s; killing it", acks)
				_ = cmd.Process.Kill()
			}
		default:
		}
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != -1 {
		t.Fatalf("child did not die from the kill: %v; stderr:\n%s", err, stderr.String())
	}
	if acks < killAfter {
		t.Fatalf("child acknowledged %d commits before dying, want at least %d; stderr:\n%s", acks, killAfter, stderr.String())
	}
	return log
}

// add parses one line of the child and returns 1 for an acknowledged commit.
func (l *crashLog) add(t *testing.T, line string) int {
	t.Helper()
	var op string
	var e crashEntry
	if _, err := fmt.Sscanf(line, "%s %s %d %d", &op, &e.client, &e.seq, &e.id); err != nil {
		t.Fatalf("parse child line %q: %v", line, err)
	}
	l.maxID = max(l.maxID, e.seq, e.id)
	switch op {
	case "enq":
		l.enqueued[e] = true
		return 1
	case "deq-begin":
		l.uncertain[e] = true
		return 0
	case "deq":
		delete(l.uncertain, e)
		l.dequeued[e] = true
		return 1
	default:
		t.Fatalf("unknown child line %q", line)
		return 0
	}
}

// checkCrashLog verifies that every acknowledged commit of l is in s.
func checkCrashLog(t *testing.T, s *Store, l crashLog) {
	t.Helper()
	present := make(map[crashEntry]bool)
	for e := range l.enqueued {
		if _, ok := present[crashEntry{client: e.client}]; ok {
			continue
		}
		present[crashEntry{client: e.client}] = true
		for _, q := range loadQueue(t, s, e.client) {
			present[crashEntry{client: e.client, seq: q.Seq, id: q.MessageID}] = true
		}
	}

	checked := 0
	for e := range l.enqueued {
		if l.uncertain[e] {
			continue
		}
		_, err := s.Message(e.id)
		if l.dequeued[e] {
			if present[e] {
				t.Errorf("acknowledged dequeue of %+v is not on disk: entry still queued", e)
			}
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("body of dequeued %+v: error = %v, want ErrNotFound", e, err)
			}
			checked++
			continue
		}
		if !present[e] {
			t.Errorf("acknowledged enqueue of %+v is missing", e)
		}
		m, err := s.Message(e.id)
		if err != nil {
			t.Errorf("body of acknowledged %+v: %v", e, err)
		} else if string(m.Payload) != string(crashPayload(e.id)) {
			t.Errorf("body of %+v has payload %q, want %q", e, m.Payload, crashPayload(e.id))
		}
		checked++
	}
	t.Logf("checked %d acknowledged entries, %d dequeues in flight at the kill", checked, len(l.uncertain))

	if id := s.NextID(); id <= l.maxID {
		t.Errorf("NextID after crash = %d, want above every id handed out before (%d)", id, l.maxID)
	}
}

// TestCrash_SIGKILLKeepsAcknowledgedCommits kills a writer process in the
// middle of synced commits and checks that every commit it acknowledged is
// on disk and that ids are not reused. SIGKILL keeps data the kernel
// already holds, so this test covers the process side (nothing acknowledged
// is still in a user-space buffer); TestCrash_MemFS* cover lost page cache.
func TestCrash_SIGKILLKeepsAcknowledgedCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	var maxID uint64
	for round := range 3 {
		killAfter := 50 + rng.Intn(300)
		l := runCrashRound(t, dir, round, killAfter)
		s := openStore(t, testConfig(dir))
		if id := s.NextID(); id <= maxID {
			t.Errorf("round %d: NextID = %d, not above %d from earlier rounds", round, id, maxID)
		}
		checkCrashLog(t, s, l)
		checkRefsMatchDisk(t, s)
		maxID = max(maxID, l.maxID)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

// crashableConfig returns a config on a fresh in-memory file system whose
// CrashClone keeps only synced data.
func crashableConfig() (Config, *vfs.MemFS) {
	fs := vfs.NewCrashableMem()
	cfg := testConfig("/db")
	cfg.fs = fs
	return cfg, fs
}

// reopenClone opens the store on a crash clone of fs.
func reopenClone(t *testing.T, fs *vfs.MemFS, cc vfs.CrashCloneCfg) *Store {
	t.Helper()
	cfg := testConfig("/db")
	cfg.fs = fs.CrashClone(cc)
	return openStore(t, cfg)
}

func TestCrash_MemFSSyncKeepsAcknowledged(t *testing.T) {
	cfg, fs := crashableConfig()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}

	// Writers keep committing while the crash image is taken, so the image
	// cuts through commits that were not acknowledged yet.
	var (
		mu    sync.Mutex
		acked []crashEntry
		maxID uint64
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := fmt.Sprintf("w%d", w)
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, seq := s.NextID(), s.NextID()
				b := s.NewBatch()
				b.PutMessage(&Message{ID: id, Payload: crashPayload(id)})
				b.Enqueue(client, &QueueEntry{Seq: seq, MessageID: id})
				err := b.Commit()
				b.Close()
				if err != nil {
					t.Errorf("Commit: %v", err)
					return
				}
				mu.Lock()
				acked = append(acked, crashEntry{client: client, seq: seq, id: id})
				maxID = max(maxID, id, seq)
				mu.Unlock()
			}
		}()
	}

	waitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 200
	})
	mu.Lock()
	snapshot := append([]crashEntry(nil), acked...)
	snapshotMaxID := maxID
	mu.Unlock()
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	close(stop)
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	cfg.fs = crashed
	s2 := openStore(t, cfg)
	for _, e := range snapshot {
		m, err := s2.Message(e.id)
		if err != nil {
			t.Errorf("acknowledged message %d of %s lost after crash: %v", e.id, e.client, err)
			continue
		}
		if string(m.Payload) != string(crashPayload(e.id)) {
			t.Errorf("message %d payload = %q", e.id, m.Payload)
		}
	}
	if id := s2.NextID(); id <= snapshotMaxID {
		t.Errorf("NextID after crash = %d, want above %d", id, snapshotMaxID)
	}
	checkRefsMatchDisk(t, s2)
}

func TestCrash_MemFSRelaxedLosesOnlyUnsynced(t *testing.T) {
	t.Run("unsynced-window-lost", func(t *testing.T) {
		cfg, fs := crashableConfig()
		cfg.Durability = DurabilityRelaxed
		cfg.SyncInterval = time.Hour
		s := openStore(t, cfg)
		writeSessions(t, s, "lost", 10)
		if got := len(loadSessions(t, s)); got != 10 {
			t.Fatalf("sessions before crash = %d, want 10", got)
		}
		s2 := reopenClone(t, fs, vfs.CrashCloneCfg{})
		if got := len(loadSessions(t, s2)); got != 0 {
			t.Errorf("sessions after crash = %d, want 0: relaxed commits inside the sync window should be lost", got)
		}
	})
	t.Run("synced-by-interval-kept", func(t *testing.T) {
		cfg, fs := crashableConfig()
		cfg.Durability = DurabilityRelaxed
		cfg.SyncInterval = 5 * time.Millisecond
		s := openStore(t, cfg)
		writeSessions(t, s, "kept", 10)
		waitFor(t, 5*time.Second, func() bool { return !s.dirty.Load() })
		// dirty is cleared before the fsync starts, so wait one more interval
		// and a margin for the fsync itself.
		time.Sleep(4 * cfg.SyncInterval)
		s2 := reopenClone(t, fs, vfs.CrashCloneCfg{})
		if got := len(loadSessions(t, s2)); got != 10 {
			t.Errorf("sessions after crash = %d, want 10 synced by the background goroutine", got)
		}
	})
	t.Run("commit-no-sync-then-sync", func(t *testing.T) {
		cfg, fs := crashableConfig()
		cfg.SyncInterval = time.Hour
		s := openStore(t, cfg)
		b := s.NewBatch()
		b.PutSession(&Session{ClientID: "nosync"})
		if err := b.CommitNoSync(); err != nil {
			t.Fatalf("CommitNoSync: %v", err)
		}
		b.Close()
		writeSessions(t, s, "sync", 1)
		s2 := reopenClone(t, fs, vfs.CrashCloneCfg{})
		if got := len(loadSessions(t, s2)); got != 2 {
			t.Errorf("sessions after crash = %d, want 2: a synced commit makes earlier unsynced ones durable", got)
		}
	})
}

// TestCrash_MemFSBatchAtomicity crashes with a random part of the unsynced
// data on disk and checks that each batch is either complete or absent.
func TestCrash_MemFSBatchAtomicity(t *testing.T) {
	for seed := range int64(5) {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			cfg, fs := crashableConfig()
			cfg.Durability = DurabilityRelaxed
			cfg.SyncInterval = time.Hour
			s := openStore(t, cfg)
			const batches, clients = 200, 3
			for i := range batches {
				b := s.NewBatch()
				id := uint64(1000 + i)
				b.PutMessage(&Message{ID: id, Payload: make([]byte, 300)})
				for c := range clients {
					b.Enqueue(fmt.Sprintf("c%d", c), &QueueEntry{Seq: id, MessageID: id})
				}
				b.PutSession(&Session{ClientID: fmt.Sprintf("s%04d", i)})
				mustCommit(t, b)
			}

			s2 := reopenClone(t, fs, vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: randv2.New(randv2.NewPCG(uint64(seed), 0))})
			sessions := make(map[string]bool)
			for _, sess := range loadSessions(t, s2) {
				sessions[sess.ClientID] = true
			}
			queued := make(map[string]map[uint64]bool)
			for c := range clients {
				client := fmt.Sprintf("c%d", c)
				queued[client] = make(map[uint64]bool)
				for _, e := range loadQueue(t, s2, client) {
					queued[client][e.Seq] = true
				}
			}
			survived := 0
			for i := range batches {
				id := uint64(1000 + i)
				_, err := s2.Message(id)
				parts := []bool{err == nil, sessions[fmt.Sprintf("s%04d", i)]}
				for c := range clients {
					parts = append(parts, queued[fmt.Sprintf("c%d", c)][id])
				}
				for _, p := range parts[1:] {
					if p != parts[0] {
						t.Fatalf("batch %d is partly on disk: %v", i, parts)
					}
				}
				if parts[0] {
					survived++
				}
			}
			t.Logf("%d of %d unsynced batches survived", survived, batches)
			checkRefsMatchDisk(t, s2)
		})
	}
}

func writeSessions(t *testing.T, s *Store, prefix string, n int) {
	t.Helper()
	for i := range n {
		b := s.NewBatch()
		b.PutSession(&Session{ClientID: fmt.Sprintf("%s-%d", prefix, i)})
		mustCommit(t, b)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(time.Millisecond)
	}
}
