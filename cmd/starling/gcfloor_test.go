package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestGCHeapFloor(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   int64
		want uint64
	}{
		{name: "zero means the default", in: 0, want: defaultGCHeapFloor},
		{name: "negative turns it off", in: -1, want: 0},
		{name: "bytes as given", in: 256 << 20, want: 256 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gcHeapFloor(tc.in); got != tc.want {
				t.Errorf("gcHeapFloor(%d) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestLoadFile_GCHeapFloorKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "starling.yaml")
	if err := os.WriteFile(path, []byte("gc_heap_floor: 134217728\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fc, err := loadFile(path)
	if err != nil {
		t.Fatalf("loadFile: %v", err)
	}
	if fc.GCHeapFloor != 128<<20 {
		t.Errorf("GCHeapFloor = %d, want %d", fc.GCHeapFloor, 128<<20)
	}
}
