package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReload_SIGHUPAppliesQueueLimit changes limits.max_queued_messages in
// the file and sends SIGHUP: an offline session then holds the new number
// of messages, with no restart.
func TestReload_SIGHUPAppliesQueueLimit(t *testing.T) {
	if !isStarling() {
		t.Skip("SIGHUP reload is Starling's")
	}
	t.Parallel()
	b := startBroker(t, brokerOptions{Limits: limits{MaxQueuedMessages: 5}})
	conf := filepath.Join(b.dir, "starling.yaml")

	queued := func(round int) int {
		sub, _ := connectRaw(t, b, "sub", v3("reload-sub", false))
		sub.mustSubscribe("reload/#", 1)
		sub.disconnect()
		pub, _ := connectRaw(t, b, "pub", v3("reload-pub", true))
		for i := range 10 {
			pub.publish("reload/x", 1, false, fmt.Sprintf("%d-%d", round, i))
		}
		pub.disconnect()
		sub, _ = connectRaw(t, b, "sub", v3("reload-sub", false))
		n := 0
		for {
			p, err := sub.next(quietPeriod)
			if err != nil {
				break
			}
			if p.Type == typePublish {
				m, _ := decodePublish(4, p)
				sub.ack(m)
				n++
			}
		}
		sub.disconnect()
		return n
	}
	if n := queued(0); n != 5 {
		t.Fatalf("with max_queued_messages 5 the session got %d of 10, want 5", n)
	}

	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "max_queued_messages: 5") {
		t.Fatalf("unexpected configuration:\n%s", data)
	}
	data = []byte(strings.Replace(string(data), "max_queued_messages: 5", "max_queued_messages: 20", 1))
	if err := os.WriteFile(conf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(b.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if !strings.Contains(b.Log(), "limits reloaded") {
			return fmt.Errorf("no reload in the log yet")
		}
		return nil
	})
	if n := queued(1); n != 10 {
		t.Fatalf("after the reload to 20 the session got %d of 10, want all", n)
	}
}
