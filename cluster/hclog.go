package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger returns an hclog.Logger, which hashicorp/raft requires, that
// writes to logger: hclog formats each line as JSON, and slogWriter turns
// it back into one structured record, so Raft's lines carry the node's keys
// like every other line. Raft's Debug and Trace lines are dropped unless
// logger is at Debug.
func newHCLogger(logger *slog.Logger, name string) hclog.Logger {
	level := hclog.Info
	if logger.Enabled(context.Background(), slog.LevelDebug) {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      level,
		JSONFormat: true,
		Output:     slogWriter{logger: logger},
	})
}

// slogWriter decodes hclog's JSON lines into slog records.
type slogWriter struct{ logger *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		var fields map[string]any
		if json.Unmarshal([]byte(line), &fields) != nil {
			w.logger.Info(line)
			continue
		}
		msg, _ := fields["@message"].(string)
		level := slog.LevelInfo
		switch fields["@level"] {
		case "trace", "debug":
			level = slog.LevelDebug
		case "warn":
			level = slog.LevelWarn
		case "error":
			level = slog.LevelError
		}
		keys := make([]string, 0, len(fields))
		for k := range fields {
			if !strings.HasPrefix(k, "@") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		args := make([]any, 0, 2*len(keys)+2)
		if mod, ok := fields["@module"].(string); ok {
			args = append(args, "module", mod)
		}
		for _, k := range keys {
			args = append(args, k, fields[k])
		}
		w.logger.Log(context.Background(), level, msg, args...)
	}
	return len(p), nil
}
