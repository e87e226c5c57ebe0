package membership

import (
	"context"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// memberlistComponent is the component name on lines that memberlist
// itself logs.
const memberlistComponent = "memberlist"

// Rate limit for memberlist's warnings and errors: a peer with the wrong key
// or a dead address makes memberlist log one line per packet.
const (
	bridgeWindow      = time.Second
	bridgeWindowLines = 20
)

// downgrades lists memberlist "[ERR]" lines that describe a peer that is
// down or restarting, which the protocol recovers from: they log at Warn,
// which this project keeps for degraded-but-recovering states. Each entry is
// the start of the message after the "memberlist: " prefix, in
// memberlist v0.6.0.
var downgrades = []string{
	"Conflicting address for", // a restarted node reclaiming its name
	"Failed fallback TCP ping",
	"Push/Pull with",
	"Failed to send gossip to",
	"Failed to send UDP compound ping",
	"Failed to send indirect",
	"Failed to send UDP ping",
}

// logBridge is the io.Writer behind the *log.Logger that memberlist writes
// to. memberlist formats each line as "[LEVEL] memberlist: text"; the bridge
// parses the level and logs the text through slog. Safe for concurrent use.
type logBridge struct {
	logger *slog.Logger

	mu struct {
		sync.Mutex
		windowStart time.Time // start of the current rate-limit window
		lines       int       // Warn and Error lines logged in the window
		suppressed  int       // lines dropped since the last logged line
	}
}

// newLogBridge returns a *log.Logger for memberlist.Config.Logger that
// writes to logger.
func newLogBridge(logger *slog.Logger) *log.Logger {
	b := &logBridge{logger: logger.With(keyComponent, memberlistComponent)}
	return log.New(b, "", 0)
}

// Write logs one line from memberlist. It never returns an error, so a
// logging failure cannot disturb memberlist.
func (b *logBridge) Write(p []byte) (int, error) {
	level, msg := parseMemberlistLine(string(p))
	ctx := context.Background()
	if !b.logger.Enabled(ctx, level) {
		return len(p), nil
	}
	if level < slog.LevelWarn {
		b.logger.Log(ctx, level, msg)
		return len(p), nil
	}

	suppressed, ok := b.allow(time.Now())
	if !ok {
		return len(p), nil
	}
	if suppressed > 0 {
		b.logger.Log(ctx, level, msg, keySuppressed, suppressed)
	} else {
		b.logger.Log(ctx, level, msg)
	}
	return len(p), nil
}

// allow reports whether a Warn or Error line may be logged now, and how many
// were dropped before it.
func (b *logBridge) allow(now time.Time) (suppressed int, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.mu.windowStart) >= bridgeWindow {
		b.mu.windowStart = now
		b.mu.lines = 0
	}
	if b.mu.lines >= bridgeWindowLines {
		b.mu.suppressed++
		return 0, false
	}
	b.mu.lines++
	suppressed = b.mu.suppressed
	b.mu.suppressed = 0
	return suppressed, true
}

// parseMemberlistLine maps a memberlist log line to a slog level and its
// text without the level tag and the "memberlist: " prefix. Lines without a
// known tag log at Info.
func parseMemberlistLine(line string) (slog.Level, string) {
	line = strings.TrimRight(line, "\r\n")
	level := slog.LevelInfo
	for _, tag := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[ERR]", slog.LevelError},
		{"[ERROR]", slog.LevelError},
		{"[WARN]", slog.LevelWarn},
		{"[INFO]", slog.LevelInfo},
		{"[DEBUG]", slog.LevelDebug},
		{"[TRACE]", slog.LevelDebug},
	} {
		if rest, ok := strings.CutPrefix(line, tag.prefix); ok {
			level = tag.level
			line = rest
			break
		}
	}
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "memberlist: ")

	if level == slog.LevelError {
		for _, prefix := range downgrades {
			if strings.HasPrefix(line, prefix) {
				level = slog.LevelWarn
				break
			}
		}
	}
	return level, line
}
