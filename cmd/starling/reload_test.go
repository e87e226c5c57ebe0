package main

import (
	"slices"
	"testing"
)

func TestRestartOnlyChanges_NamesChangedKeys(t *testing.T) {
	base, _, err := buildConfig(fileConfig{}, settings{})
	if err != nil {
		t.Fatal(err)
	}
	same, _, _ := buildConfig(fileConfig{}, settings{})
	if keys := restartOnlyChanges(base, same); len(keys) != 0 {
		t.Fatalf("identical configurations differ in %v", keys)
	}
	changed, _, err := buildConfig(fileConfig{Limits: fileLimits{MaxQueuedMessages: 5}}, settings{listen: []string{"tcp://127.0.0.1:1999"}})
	if err != nil {
		t.Fatal(err)
	}
	// Limits reload while the node runs (node.Server.ReloadLimits); the
	// listeners do not.
	keys := restartOnlyChanges(base, changed)
	if !slices.Contains(keys, "listeners") || slices.Contains(keys, "limits") {
		t.Errorf("changed keys %v, want listeners and not limits", keys)
	}
}
