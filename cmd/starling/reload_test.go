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
	keys := restartOnlyChanges(base, changed)
	for _, want := range []string{"limits", "listeners"} {
		if !slices.Contains(keys, want) {
			t.Errorf("changed keys %v lack %q", keys, want)
		}
	}
}
