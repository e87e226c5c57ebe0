package main

import (
	"fmt"
	"io"
	"log/slog"
)

// logSettings choose the log level and format.
type logSettings struct {
	level  string
	format string
}

func (l logSettings) validate() error {
	if _, err := l.slogLevel(); err != nil {
		return err
	}
	switch l.format {
	case "", "text", "json":
		return nil
	}
	return fmt.Errorf("log.format: %q is invalid: use text or json", l.format)
}

func (l logSettings) slogLevel() (slog.Level, error) {
	switch l.level {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log.level: %q is invalid: use debug, info, warn or error", l.level)
}

// logger builds the process logger; validate has already passed. The level
// is a LevelVar so that a reload can change it.
func (l logSettings) logger(w io.Writer, level *slog.LevelVar) *slog.Logger {
	lv, _ := l.slogLevel()
	level.Set(lv)
	opts := &slog.HandlerOptions{Level: level}
	if l.format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
