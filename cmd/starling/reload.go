package main

import (
	"context"
	"log/slog"
	"reflect"
	"sync"

	"github.com/starling-mqtt/starling/node"
)

// reloadMu serializes reloads.
var reloadMu sync.Mutex

// reloadResult is what a reload applied and what needs a restart; the admin
// API returns it as JSON.
type reloadResult struct {
	Restart []string `json:"restart_needed"`
	Error   string   `json:"error,omitempty"`
}

// reload re-reads the configuration on SIGHUP or POST /api/v1/config/reload.
// It applies what can change while the node runs (the log level, the limits
// that were not told to clients, and the users, groups and roles of the
// file, which connected clients see at once) and logs every other changed
// key as needing a restart. TLS certificates and CRLs need no signal: they
// are reloaded when their files change.
func reload(srv *node.Server, st settings, running node.Config, level *slog.LevelVar, log *slog.Logger) reloadResult {
	// A SIGHUP and an admin request may come together.
	reloadMu.Lock()
	defer reloadMu.Unlock()
	var fc fileConfig
	if st.configPath != "" {
		var err error
		if fc, err = loadFile(st.configPath); err != nil {
			log.Error("reload failed; the configuration in force is unchanged", "err", err)
			return reloadResult{Error: err.Error()}
		}
	}
	cfg, logs, err := buildConfig(fc, st)
	if err != nil {
		log.Error("reload failed; the configuration in force is unchanged", "err", err)
		return reloadResult{Error: err.Error()}
	}
	if lv, err := logs.slogLevel(); err == nil && lv != level.Level() {
		level.Set(lv)
		log.Info("log level changed", "level", lv.String())
	}
	var res reloadResult
	restart, err := srv.ReloadLimits(cfg.Limits)
	if err != nil {
		log.Error("reload of limits failed; the limits in force are unchanged", "err", err)
		res.Error = err.Error()
	}
	ctx := context.Background()
	if err := srv.ApplyAuthSeed(ctx, cfg.Auth.Seed); err != nil {
		log.Error("reload of users, groups and roles failed", "err", err)
		res.Error = err.Error()
	}
	res.Restart = append(restart, restartOnlyChanges(running, cfg)...)
	for _, key := range res.Restart {
		log.Warn("configuration changed but takes effect only after a restart", "key", key)
	}
	log.Info("configuration reloaded")
	return res
}

// restartOnlyChanges names the settings that differ and cannot change while
// the node runs.
func restartOnlyChanges(old, cur node.Config) []string {
	var keys []string
	check := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			keys = append(keys, key)
		}
	}
	check("listeners", old.Listeners, cur.Listeners)
	check("data_dir", old.DataDir, cur.DataDir)
	check("durability", old.Durability, cur.Durability)
	check("features", old.Features, cur.Features)
	check("keepalive.connect_timeout", old.ConnectTimeout, cur.ConnectTimeout)
	check("write.timeout", old.WriteTimeout, cur.WriteTimeout)
	check("sys_interval", old.SysInterval, cur.SysInterval)
	check("auth.jwt", old.Auth.JWT, cur.Auth.JWT)
	check("auth.throttle", old.Auth.Throttle, cur.Auth.Throttle)
	check("auth.default_allow", old.Auth.DefaultAllow, cur.Auth.DefaultAllow)
	return keys
}
