package membership

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseMemberlistLine(t *testing.T) {
	cases := []struct {
		line      string
		wantLevel slog.Level
		wantMsg   string
	}{
		{"[ERR] memberlist: Decrypt packet failed: no keys\n", slog.LevelError, "Decrypt packet failed: no keys"},
		{"[WARN] memberlist: Refuting a dead message (from: a)\n", slog.LevelWarn, "Refuting a dead message (from: a)"},
		{"[INFO] memberlist: Suspect c has failed, no acks received\n", slog.LevelInfo, "Suspect c has failed, no acks received"},
		{"[DEBUG] memberlist: Initiating push/pull sync with: a 127.0.0.2:7946\n", slog.LevelDebug, "Initiating push/pull sync with: a 127.0.0.2:7946"},
		{"[ERR] Failed to shutdown transport: closed\n", slog.LevelError, "Failed to shutdown transport: closed"},
		{"no tag at all\n", slog.LevelInfo, "no tag at all"},
		// A restarted node reclaiming its name is expected, not an operator's problem.
		{"[ERR] memberlist: Conflicting address for c. Mine: 127.0.0.4:1 Theirs: 127.0.0.4:2 Old state: 0\n", slog.LevelWarn, "Conflicting address for c. Mine: 127.0.0.4:1 Theirs: 127.0.0.4:2 Old state: 0"},
		{"[ERR] memberlist: Failed fallback TCP ping: dial tcp: refused\n", slog.LevelWarn, "Failed fallback TCP ping: dial tcp: refused"},
	}
	for _, tc := range cases {
		t.Run(tc.wantMsg, func(t *testing.T) {
			level, msg := parseMemberlistLine(tc.line)
			if level != tc.wantLevel {
				t.Errorf("level = %v, want %v", level, tc.wantLevel)
			}
			if msg != tc.wantMsg {
				t.Errorf("message = %q, want %q", msg, tc.wantMsg)
			}
		})
	}
}

func TestLogBridge_RoutesThroughSlog(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	std := newLogBridge(logger)
	std.Printf("[DEBUG] memberlist: hidden below Info")
	std.Printf("[WARN] memberlist: something degraded")

	out := buf.String()
	if strings.Contains(out, "hidden below Info") {
		t.Errorf("Debug line logged at Info level: %q", out)
	}
	want := `level=WARN msg="something degraded" component=memberlist`
	if !strings.Contains(out, want) {
		t.Errorf("output %q does not contain %q", out, want)
	}
}

func TestLogBridge_RateLimitsWarnings(t *testing.T) {
	var buf bytes.Buffer
	b := &logBridge{logger: slog.New(slog.NewTextHandler(&buf, nil))}
	for range bridgeWindowLines + 5 {
		if _, err := b.Write([]byte("[ERR] memberlist: Decrypt packet failed\n")); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Count(buf.String(), "\n"); got != bridgeWindowLines {
		t.Errorf("logged %d lines in one window, want %d", got, bridgeWindowLines)
	}

	// The first line of the next window reports what was dropped.
	suppressed, ok := b.allow(time.Now().Add(bridgeWindow))
	if !ok || suppressed != 5 {
		t.Errorf("allow in the next window = (%d, %v), want (5, true)", suppressed, ok)
	}
}
