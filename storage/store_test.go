package storage

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string // expected in the error; "" = valid
	}{
		{"default", DefaultConfig("/d"), ""},
		{"zero-with-dir", Config{Dir: "/d"}, ""},
		{"relaxed", Config{Dir: "/d", Durability: DurabilityRelaxed, SyncInterval: time.Second}, ""},
		{"missing-dir", Config{}, "Config.Dir"},
		{"unknown-durability", Config{Dir: "/d", Durability: 7}, "Config.Durability"},
		{"negative-sync-interval", Config{Dir: "/d", SyncInterval: -1}, "Config.SyncInterval"},
		{"negative-max-disk", Config{Dir: "/d", MaxDiskBytes: -1}, "Config.MaxDiskBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.field)
			}
		})
	}
}

func TestOpen_InvalidConfig(t *testing.T) {
	if _, err := Open(Config{}); err == nil || !strings.Contains(err.Error(), "Config.Dir") {
		t.Errorf("Open(Config{}) = %v, want an error naming Config.Dir", err)
	}
}

func TestOpen_CreatesNestedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s := openStore(t, testConfig(dir))
	writeSessions(t, s, "x", 1)
}

func TestOpen_RejectsNewerLayout(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(testConfig(dir))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.db.Set(layoutKey, appendUvarintValue(nil, layoutVersion+1), pebble.Sync); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	_, err = Open(testConfig(dir))
	if err == nil {
		t.Fatal("Open of a newer layout succeeded")
	}
	if !strings.Contains(err.Error(), "layout version 2") {
		t.Errorf("Open error %q does not name layout version 2", err)
	}
	if !strings.Contains(err.Error(), "newer build") {
		t.Errorf("Open error %q does not say to run a newer build", err)
	}
}

func TestOpen_RejectsForeignData(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatalf("pebble.Open: %v", err)
	}
	if err := db.Set([]byte("foreign"), []byte("x"), pebble.Sync); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	_, err = Open(testConfig(dir))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
}

func TestOpen_CorruptQueueEntry(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(testConfig(dir))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.db.Set(appendQueueKey(nil, "a", 1), []byte{1, 0xff}, pebble.Sync); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	_, err = Open(testConfig(dir))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("Open = %v, want ErrCorrupt naming client \"a\"", err)
	}
}

func TestStore_CorruptSessionOnLoad(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	if err := s.db.Set(appendSessionKey(nil, "bad"), []byte{1}, nil); err != nil {
		t.Fatalf("Set: %v", err)
	}
	err := s.Sessions(func(*Session) error { return nil })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("Sessions = %v, want ErrCorrupt naming \"bad\"", err)
	}
}

func TestStore_CloseIdempotent(t *testing.T) {
	s, err := Open(testConfig(t.TempDir()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	writeSessions(t, s, "a", 1)
	for i := range 3 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
}

func TestStore_OperationsAfterClose(t *testing.T) {
	s, err := Open(testConfig(t.TempDir()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b := s.NewBatch()
	b.PutSession(&Session{ClientID: "a"})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	if err := b.Commit(); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}
	b.Close()
	b = s.NewBatch()
	b.PutSession(&Session{ClientID: "b"})
	if err := b.Commit(); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit of a batch made after Close = %v, want ErrClosed", err)
	}
	b.Close()
	if err := s.Sessions(func(*Session) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Sessions after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Message(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Message after Close = %v, want ErrClosed", err)
	}
	// The first id needs a reservation, which a closed store cannot write.
	if id := s.NextID(); id != 0 {
		t.Errorf("NextID after Close = %d, want 0", id)
	}
	_ = s.DiskUsage()
}

func TestStore_LoadCallbackMayCommit(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	writeSessions(t, s, "a", 3)
	err := s.Sessions(func(sess *Session) error {
		b := s.NewBatch()
		defer b.Close()
		sess.NextPacketID = 9
		b.PutSession(sess)
		return b.Commit()
	})
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	for _, sess := range loadSessions(t, s) {
		if sess.NextPacketID != 9 {
			t.Errorf("session %q NextPacketID = %d, want 9", sess.ClientID, sess.NextPacketID)
		}
	}
}

func TestStore_LoadCallbackErrorStops(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	writeSessions(t, s, "a", 3)
	stop := errors.New("stop")
	calls := 0
	err := s.Sessions(func(*Session) error { calls++; return stop })
	if !errors.Is(err, stop) {
		t.Errorf("Sessions = %v, want the callback's error", err)
	}
	if calls != 1 {
		t.Errorf("callback ran %d times, want 1", calls)
	}
}

func TestStore_MessageNotFound(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	if _, err := s.Message(42); !errors.Is(err, ErrNotFound) {
		t.Errorf("Message(42) = %v, want ErrNotFound", err)
	}
}

func TestStore_RelaxedCommitsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Durability = DurabilityRelaxed
	cfg.SyncInterval = 2 * time.Millisecond
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	writeSessions(t, s, "r", 20)
	waitFor(t, 5*time.Second, func() bool { return !s.dirty.Load() })
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openStore(t, testConfig(dir))
	if got := len(loadSessions(t, s)); got != 20 {
		t.Errorf("sessions after reopen = %d, want 20", got)
	}
}

func TestStore_DiskUsageAndLimit(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	s := openStore(t, cfg)
	if s.DiskUsage() <= 0 {
		t.Errorf("DiskUsage = %d, want > 0", s.DiskUsage())
	}
	if s.OverLimit() {
		t.Error("OverLimit = true without a limit")
	}

	s.cfg.MaxDiskBytes = 1
	if !s.OverLimit() {
		t.Errorf("OverLimit = false with limit 1 and usage %d", s.DiskUsage())
	}
	s.cfg.MaxDiskBytes = 1 << 40
	if s.OverLimit() {
		t.Errorf("OverLimit = true with limit 1 TiB and usage %d", s.DiskUsage())
	}
}

func TestStore_DiskUsageCached(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	first := s.DiskUsage()
	b := s.NewBatch()
	b.PutRetained(&Message{Topic: "big", Payload: make([]byte, 1<<20)})
	mustCommit(t, b)
	if got := s.DiskUsage(); got != first {
		t.Errorf("DiskUsage within the cache period = %d, want the cached %d", got, first)
	}
	s.usage.measured.Store(0)
	if got := s.DiskUsage(); got <= first {
		t.Errorf("DiskUsage after a 1 MiB write = %d, want above %d", got, first)
	}
}
