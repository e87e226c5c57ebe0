package storage

import (
	"log/slog"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// A crash test re-executes this binary as the writer it kills.
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(dir)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// testConfig returns a Config for dir that logs nothing.
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

// mustCommit commits and closes b.
func mustCommit(t testing.TB, b *Batch) {
	t.Helper()
	defer b.Close()
	if err := b.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func loadSessions(t testing.TB, s *Store) []*Session {
	t.Helper()
	var out []*Session
	if err := s.Sessions(func(v *Session) error { out = append(out, v); return nil }); err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	return out
}

func loadSubscriptions(t testing.TB, s *Store) []*Subscription {
	t.Helper()
	var out []*Subscription
	if err := s.Subscriptions(func(v *Subscription) error { out = append(out, v); return nil }); err != nil {
		t.Fatalf("Subscriptions: %v", err)
	}
	return out
}

func loadQueue(t testing.TB, s *Store, clientID string) []*QueueEntry {
	t.Helper()
	var out []*QueueEntry
	if err := s.Queue(clientID, func(v *QueueEntry) error { out = append(out, v); return nil }); err != nil {
		t.Fatalf("Queue(%q): %v", clientID, err)
	}
	return out
}

func loadInflight(t testing.TB, s *Store, clientID string) []*InflightEntry {
	t.Helper()
	var out []*InflightEntry
	if err := s.Inflight(clientID, func(v *InflightEntry) error { out = append(out, v); return nil }); err != nil {
		t.Fatalf("Inflight(%q): %v", clientID, err)
	}
	return out
}

func loadInbound(t testing.TB, s *Store, clientID string) []uint16 {
	t.Helper()
	var out []uint16
	if err := s.InboundQoS2(clientID, func(v uint16) error { out = append(out, v); return nil }); err != nil {
		t.Fatalf("InboundQoS2(%q): %v", clientID, err)
	}
	return out
}

func loadRetained(t testing.TB, s *Store) []*Message {
	t.Helper()
	var out []*Message
	if err := s.Retained(func(v *Message) error { out = append(out, v); return nil }); err != nil {
		t.Fatalf("Retained: %v", err)
	}
	return out
}
