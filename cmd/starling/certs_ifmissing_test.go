package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestCertsInit_IfMissingKeepsAnExistingSet(t *testing.T) {
	dir := t.TempDir()
	if code := certsInit([]string{dir, "--nodes", "n1"}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("first init exited %d", code)
	}
	before, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if code := certsInit([]string{dir, "--nodes", "n1"}, io.Discard, io.Discard); code == 0 {
		t.Fatal("a second init without --if-missing succeeded over existing files")
	}
	if code := certsInit([]string{dir, "--nodes", "n1", "--if-missing"}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("init --if-missing over a set exited %d, want 0", code)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if string(after) != string(before) {
		t.Fatal("init --if-missing rewrote ca.pem")
	}
}
