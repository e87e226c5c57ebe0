package breakers

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDataDir_LockedMessage starts a second node on the data directory of a
// running one. It must fail, and it does, but the message is Pebble's raw
// flock error "resource temporarily unavailable", which does not tell the
// operator that another process holds the directory.
func TestDataDir_LockedMessage(t *testing.T) {
	b := startBroker(t)
	cmd := exec.Command(starlingBin, "serve", "--listen", "tcp://"+freeAddr(t), "--data-dir", b.dataDir)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("a second node on a data directory in use kept running")
	}
	if err == nil {
		t.Fatalf("a second node on a data directory in use exited with status 0:\n%s", out)
	}
	// The test's own directory name contains "Locked", so leave it out.
	text := strings.ToLower(strings.ReplaceAll(string(out), b.dataDir, "DIR"))
	if !strings.Contains(text, "lock") && !strings.Contains(text, "in use") && !strings.Contains(text, "another") {
		knownBug(t, "second node on a busy data directory fails with an unclear message: %s", strings.TrimSpace(string(out)))
	}
}
