package raftstore

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// crashChildEnv names the store directory of a re-executed test binary that
// appends to the log until its parent kills it.
const crashChildEnv = "STARLING_RAFTSTORE_CRASH_CHILD_DIR"

// crashTermEnv gives the term of the entries the child writes, one per
// round, so that the parent can tell the rounds' entries apart.
const crashTermEnv = "STARLING_RAFTSTORE_CRASH_TERM"

const (
	crashMaxBatches  = 100_000
	crashMaxDuration = 30 * time.Second
	crashCompactLen  = 40  // entries removed from the head per compaction
	crashKeepLen     = 100 // entries kept before a compaction starts
)

// runCrashChild is the body of the killed process. It appends batches of
// 1 to 16 entries after the stored log and, every 20 batches, deletes the
// oldest crashCompactLen entries as raft's compaction does. It prints one
// line to stdout around each write, each line in one write(2) so that the
// parent reads it even if the child dies right after:
//
//	begin LO HI   StoreLogs of LO..HI starts
//	ack LO HI     StoreLogs of LO..HI returned: the entries are durable
//	del-begin LO HI
//	del LO HI     DeleteRange(LO, HI) returned
//
// It stops after crashMaxBatches or crashMaxDuration if the parent never
// kills it.
func runCrashChild(dir string) {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", args...)
		os.Exit(2)
	}
	term, err := strconv.ParseUint(os.Getenv(crashTermEnv), 10, 64)
	if err != nil {
		fail("parse %s: %v", crashTermEnv, err)
	}
	s, err := Open(testConfig(dir))
	if err != nil {
		fail("open: %v", err)
	}
	last, _ := s.LastIndex()
	deadline := time.Now().Add(crashMaxDuration)

	for b := 0; b < crashMaxBatches && time.Now().Before(deadline); b++ {
		lo, hi := last+1, last+1+uint64(b%16)
		fmt.Fprintf(os.Stdout, "begin %d %d\n", lo, hi)
		if err := s.StoreLogs(testLogs(lo, hi, term)); err != nil {
			fail("store logs %d..%d: %v", lo, hi, err)
		}
		fmt.Fprintf(os.Stdout, "ack %d %d\n", lo, hi)
		last = hi

		first, _ := s.FirstIndex()
		if b%20 == 19 && last-first > crashKeepLen {
			end := first + crashCompactLen - 1
			fmt.Fprintf(os.Stdout, "del-begin %d %d\n", first, end)
			if err := s.DeleteRange(first, end); err != nil {
				fail("delete range %d..%d: %v", first, end, err)
			}
			fmt.Fprintf(os.Stdout, "del %d %d\n", first, end)
		}
	}
	_ = s.Close()
}

// crashModel is the expected store content that the parent builds from the
// child's lines: entries that must be present, indexes that must be
// missing, and the one write that was in progress when the child died.
type crashModel struct {
	present map[uint64]uint64 // index to term, acknowledged by StoreLogs
	deleted map[uint64]bool   // removed by an acknowledged DeleteRange
	maxAck  uint64            // highest acknowledged index

	// pendingStore and pendingDelete are a write that began but was not
	// acknowledged. Either all of it reached the disk or none of it did.
	pendingStore, pendingDelete *[2]uint64
	acks                        int
}

func newCrashModel() *crashModel {
	return &crashModel{present: map[uint64]uint64{}, deleted: map[uint64]bool{}}
}

// add applies one line of the child written at term.
func (m *crashModel) add(t *testing.T, line string, term uint64) {
	t.Helper()
	var op string
	var lo, hi uint64
	if _, err := fmt.Sscanf(line, "%s %d %d", &op, &lo, &hi); err != nil {
		t.Fatalf("parse child line %q: %v", line, err)
	}
	switch op {
	case "begin":
		m.pendingStore = &[2]uint64{lo, hi}
	case "ack":
		m.pendingStore = nil
		for i := lo; i <= hi; i++ {
			m.present[i] = term
			delete(m.deleted, i)
		}
		m.maxAck = max(m.maxAck, hi)
		m.acks++
	case "del-begin":
		m.pendingDelete = &[2]uint64{lo, hi}
	case "del":
		m.pendingDelete = nil
		for i := lo; i <= hi; i++ {
			delete(m.present, i)
			m.deleted[i] = true
		}
	default:
		t.Fatalf("unknown child line %q", line)
	}
}

// runCrashRound starts a child on dir that writes at term, kills it with
// SIGKILL once it acknowledged killAfter batches, and applies its lines to m.
func runCrashRound(t *testing.T, dir string, term uint64, killAfter int, m *crashModel) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("%s=%d", crashTermEnv, term))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}

	startAcks := m.acks
	killed := false
	timer := time.AfterFunc(crashMaxDuration, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		m.add(t, sc.Text(), term)
		if !killed && m.acks-startAcks >= killAfter {
			killed = true
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("kill child: %v", err)
			}
		}
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != -1 {
		t.Fatalf("child did not die from the kill: %v; stderr:\n%s", err, stderr.String())
	}
	if got := m.acks - startAcks; got < killAfter {
		t.Fatalf("child acknowledged %d batches before it died, want at least %d; stderr:\n%s", got, killAfter, stderr.String())
	}
}

// verify opens dir and checks it against m. It then settles the write that
// was in progress, which the round of term began, into m from what it
// finds, so that m is exact for the next round.
func (m *crashModel) verify(t *testing.T, dir string, term uint64) {
	t.Helper()
	s := openStore(t, testConfig(dir))
	get := func(i uint64) (raft.Log, bool) {
		var l raft.Log
		err := s.GetLog(i, &l)
		if err == raft.ErrLogNotFound {
			return l, false
		}
		if err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		return l, true
	}

	inPending := func(r *[2]uint64, i uint64) bool { return r != nil && i >= r[0] && i <= r[1] }
	for i, term := range m.present {
		if inPending(m.pendingDelete, i) {
			continue
		}
		l, ok := get(i)
		if !ok {
			t.Errorf("acknowledged entry %d is missing", i)
			continue
		}
		if want := testLog(i, term); !logsEqual(&l, want) {
			t.Errorf("entry %d = %s, want %s", i, formatLog(&l), formatLog(want))
		}
	}
	for i := range m.deleted {
		if _, ok := get(i); ok {
			t.Errorf("entry %d is present after an acknowledged DeleteRange", i)
		}
	}

	last, _ := s.LastIndex()
	if last < m.maxAck {
		t.Errorf("LastIndex = %d, want at least the last acknowledged %d", last, m.maxAck)
	}
	m.settle(t, get, term)
	first, _ := s.FirstIndex()
	if _, ok := get(first); !ok {
		t.Errorf("FirstIndex = %d, but that entry is missing", first)
	}
	if _, ok := get(first - 1); ok && first > 1 {
		t.Errorf("entry %d below FirstIndex %d is present", first-1, first)
	}
	if _, ok := get(last + 1); ok {
		t.Errorf("entry %d above LastIndex %d is present", last+1, last)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// settle checks that the pending write reached the disk whole or not at
// all, and records the outcome in m.
func (m *crashModel) settle(t *testing.T, get func(uint64) (raft.Log, bool), pendingTerm uint64) {
	t.Helper()
	if r := m.pendingStore; r != nil {
		_, stored := get(r[0])
		for i := r[0]; i <= r[1]; i++ {
			if _, ok := get(i); ok != stored {
				t.Errorf("pending batch %d..%d is partly stored: entry %d present=%v, entry %d present=%v", r[0], r[1], r[0], stored, i, ok)
			}
			if stored {
				m.present[i] = pendingTerm
				m.maxAck = max(m.maxAck, i)
			}
		}
		m.pendingStore = nil
	}
	if r := m.pendingDelete; r != nil {
		_, survived := get(r[0])
		for i := r[0]; i <= r[1]; i++ {
			if _, ok := get(i); ok != survived {
				t.Errorf("pending DeleteRange %d..%d is partly applied: entry %d present=%v, entry %d present=%v", r[0], r[1], r[0], survived, i, ok)
			}
			if !survived {
				delete(m.present, i)
				m.deleted[i] = true
			}
		}
		m.pendingDelete = nil
	}
}

// TestStore_CrashKeepsAcknowledgedLogs kills a writer process with SIGKILL
// in mid-stream, twice, and checks after each kill that every entry whose
// StoreLogs returned is on disk, so an acknowledgement means durable.
func TestStore_CrashKeepsAcknowledgedLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	m := newCrashModel()
	rounds := []struct {
		term      uint64
		killAfter int
	}{
		{term: 1, killAfter: 150},
		{term: 2, killAfter: 90},
	}
	for _, r := range rounds {
		runCrashRound(t, dir, r.term, r.killAfter, m)
		t.Logf("round %d: %d batches acknowledged, last index %d, store in progress %v, delete in progress %v",
			r.term, m.acks, m.maxAck, m.pendingStore, m.pendingDelete)
		m.verify(t, dir, r.term)
		if t.Failed() {
			return
		}
	}
	if len(m.deleted) == 0 {
		t.Errorf("no DeleteRange was acknowledged; the test did not cover compaction")
	}
}
