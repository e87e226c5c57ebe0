package raftstore

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// writeRaw writes key and val into a Pebble database in dir, as another
// program or version could have.
func writeRaw(t *testing.T, dir string, key, val []byte) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatalf("open pebble: %v", err)
	}
	if err := db.Set(key, val, pebble.Sync); err != nil {
		t.Fatalf("set: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close pebble: %v", err)
	}
}

func TestOpen_Layout(t *testing.T) {
	tests := []struct {
		name    string
		key     []byte
		val     []byte
		wantErr error
		wantMsg string
	}{
		{name: "current-version", key: layoutKey, val: binary.AppendUvarint(nil, layoutVersion)},
		{name: "newer-version", key: layoutKey, val: binary.AppendUvarint(nil, layoutVersion+1), wantErr: ErrUnsupportedLayout, wantMsg: "has layout version 2"},
		{name: "version-zero", key: layoutKey, val: []byte{0}, wantErr: ErrCorrupt},
		{name: "garbage-version", key: layoutKey, val: []byte{0xff}, wantErr: ErrCorrupt},
		{name: "trailing-bytes", key: layoutKey, val: []byte{1, 0}, wantErr: ErrCorrupt},
		{name: "foreign-data", key: []byte("\x01layout"), val: []byte{1}, wantErr: ErrUnsupportedLayout, wantMsg: "directory of its own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeRaw(t, dir, tt.key, tt.val)
			s, err := Open(testConfig(dir))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				return
			}
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open succeeded, want %v", tt.wantErr)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Open = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Open = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestOpen_WritesLayoutVersion(t *testing.T) {
	cfg := testConfig(filepath.Join(t.TempDir(), "new", "raft"))
	s := openStore(t, cfg)
	s = reopen(t, s, cfg)
	val, closer, err := s.mu.db.Get(layoutKey)
	if err != nil {
		t.Fatalf("read layout key: %v", err)
	}
	defer closer.Close()
	if v, n := binary.Uvarint(val); n != len(val) || v != layoutVersion {
		t.Errorf("layout value = %x, want uvarint %d", val, layoutVersion)
	}
}

func TestOpen_EmptyDir(t *testing.T) {
	_, err := Open(Config{})
	if err == nil || !strings.Contains(err.Error(), "Config.Dir") {
		t.Errorf("Open with no Dir = %v, want an error naming Config.Dir", err)
	}
}

func TestOpen_CorruptLogKey(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, testConfig(dir))
	if err := s.mu.db.Set([]byte{kindLog, 1, 2}, []byte{1}, pebble.Sync); err != nil {
		t.Fatalf("write short log key: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := Open(testConfig(dir))
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open with a short log key = %v, want an error marked ErrCorrupt", err)
	}
}
