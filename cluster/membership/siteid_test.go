package membership

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestLoadOrCreateSiteID_CreatesThenKeeps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	first, err := LoadOrCreateSiteID(dir)
	if err != nil {
		t.Fatalf("first LoadOrCreateSiteID: %v", err)
	}
	if len(first) != 32 {
		t.Errorf("site id %q has %d characters, want 32 hex digits", first, len(first))
	}
	if err := validateSiteID(first); err != nil {
		t.Errorf("created site id %q is invalid: %v", first, err)
	}

	second, err := LoadOrCreateSiteID(dir)
	if err != nil {
		t.Fatalf("second LoadOrCreateSiteID: %v", err)
	}
	if second != first {
		t.Errorf("second call returned %q, want the stored %q", second, first)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	if len(entries) != 1 || entries[0].Name() != SiteIDFile {
		t.Errorf("data directory holds %v, want only %s (no temporary files)", entries, SiteIDFile)
	}
}

func TestLoadOrCreateSiteID_EmptyDiskGetsNewID(t *testing.T) {
	a, err := LoadOrCreateSiteID(t.TempDir())
	if err != nil {
		t.Fatalf("LoadOrCreateSiteID: %v", err)
	}
	b, err := LoadOrCreateSiteID(t.TempDir())
	if err != nil {
		t.Fatalf("LoadOrCreateSiteID: %v", err)
	}
	if a == b {
		t.Errorf("two empty directories got the same site id %q", a)
	}
}

func TestLoadOrCreateSiteID_ConcurrentCallersAgree(t *testing.T) {
	dir := t.TempDir()
	const callers = 8
	ids := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { ids[i], errs[i] = LoadOrCreateSiteID(dir) })
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("caller %d got %q, caller 0 got %q", i, ids[i], ids[0])
		}
	}
}

func TestLoadOrCreateSiteID_KeepsOperatorID(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SiteIDFile), []byte("  restored_ID-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := LoadOrCreateSiteID(dir)
	if err != nil {
		t.Fatalf("LoadOrCreateSiteID: %v", err)
	}
	if id != "restored_ID-1" {
		t.Errorf("site id = %q, want %q", id, "restored_ID-1")
	}
}

func TestLoadOrCreateSiteID_RejectsCorruptFile(t *testing.T) {
	cases := map[string]string{
		"empty":         "",
		"spaces-inside": "not an id",
		"too-long":      string(make([]byte, 65)),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, SiteIDFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadOrCreateSiteID(dir); !errors.Is(err, ErrInvalidSiteID) {
				t.Fatalf("LoadOrCreateSiteID = %v, want ErrInvalidSiteID", err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != content {
				t.Errorf("the corrupt file was changed to %q", got)
			}
		})
	}
}
