package raftstore

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The crash test re-executes this binary as the writer it kills.
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(dir)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// testConfig returns a Config for dir that logs nothing and syncs writes.
func testConfig(dir string) Config {
	return Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)}
}

// openStore opens cfg and closes the store when the test ends.
func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// reopen closes s and opens cfg again, closing the new store when the test
// ends.
func reopen(t testing.TB, s *Store, cfg Config) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close before reopen: %v", err)
	}
	return openStore(t, cfg)
}

// testLog returns a deterministic entry for index and term that sets every
// field of raft.Log.
func testLog(index, term uint64) *raft.Log {
	return &raft.Log{
		Index:      index,
		Term:       term,
		Type:       raft.LogType(index % 6),
		Data:       fmt.Appendf(nil, "data-%d-%d", index, term),
		Extensions: fmt.Appendf(nil, "ext-%d", term),
		AppendedAt: time.Unix(1_700_000_000+int64(index), int64(term)),
	}
}

// testLogs returns testLog for every index from lo to hi inclusive.
func testLogs(lo, hi, term uint64) []*raft.Log {
	logs := make([]*raft.Log, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		logs = append(logs, testLog(i, term))
	}
	return logs
}

// logsEqual reports whether a and b hold the same fields, comparing
// AppendedAt as an instant.
func logsEqual(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

// formatLog returns l in a form readable in a failure message.
func formatLog(l *raft.Log) string {
	return fmt.Sprintf("{Index:%d Term:%d Type:%v Data:%q Extensions:%q AppendedAt:%s}",
		l.Index, l.Term, l.Type, l.Data, l.Extensions, l.AppendedAt.UTC().Format(time.RFC3339Nano))
}
