package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"time"
)

// JWTKeyStats are a JWTAuthenticator's key counters, for metrics and health
// checks.
type JWTKeyStats struct {
	// Keys is the number of keys in use.
	Keys int
	// Reloads counts loads that replaced the keys after the first.
	Reloads uint64
	// Failures counts reloads that kept the old keys. Files that stay
	// broken count once, not once per poll.
	Failures uint64
	// LastReload is when the keys in use were loaded.
	LastReload time.Time
}

// keySet is the immutable set of keys that Authenticate reads through an
// atomic pointer.
type keySet struct {
	byID map[string]*Key
	// only is the key of a set of exactly one key, which also verifies
	// tokens without kid.
	only  *Key
	count int

	fingerprint [sha256.Size]byte
	loadedAt    time.Time
}

// keyFileSnapshot is the contents of every key file, read once.
type keyFileSnapshot struct {
	keyFiles    [][]byte // in the order of JWTConfig.KeyFiles
	jwksFiles   [][]byte // in the order of JWTConfig.JWKSFiles
	fingerprint [sha256.Size]byte
}

func (a *JWTAuthenticator) hasFiles() bool {
	return len(a.cfg.KeyFiles) > 0 || len(a.cfg.JWKSFiles) > 0
}

// readFiles reads every key file once. The fingerprint covers each file's
// path, size and contents, so a change to any of them changes it.
func (a *JWTAuthenticator) readFiles() (keyFileSnapshot, error) {
	var snap keyFileSnapshot
	h := sha256.New()
	read := func(path string) ([]byte, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("auth: read JWT key file: %w", err)
		}
		h.Write([]byte(path))
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(data))))
		h.Write(data)
		return data, nil
	}
	for _, f := range a.cfg.KeyFiles {
		data, err := read(f.Path)
		if err != nil {
			return keyFileSnapshot{}, err
		}
		snap.keyFiles = append(snap.keyFiles, data)
	}
	for _, path := range a.cfg.JWKSFiles {
		data, err := read(path)
		if err != nil {
			return keyFileSnapshot{}, err
		}
		snap.jwksFiles = append(snap.jwksFiles, data)
	}
	copy(snap.fingerprint[:], h.Sum(nil))
	return snap, nil
}

// buildKeySet parses the files of snap and joins their keys with
// JWTConfig.Keys. Skipped JWKS keys are logged.
func (a *JWTAuthenticator) buildKeySet(snap keyFileSnapshot) (*keySet, error) {
	keys := slices.Clone(a.cfg.Keys)
	for i, f := range a.cfg.KeyFiles {
		k, err := parseKeyFile(f, snap.keyFiles[i])
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", f.Path, err)
		}
		keys = append(keys, k)
	}
	for i, path := range a.cfg.JWKSFiles {
		fileKeys, skipped, err := parseJWKS(snap.jwksFiles[i])
		if err != nil {
			return nil, fmt.Errorf("JWKS file %s: %w", path, err)
		}
		for _, reason := range skipped {
			a.logger.Info("JWKS key skipped", "file", path, "reason", reason)
		}
		keys = append(keys, fileKeys...)
	}

	set := &keySet{byID: make(map[string]*Key, len(keys)), count: len(keys), fingerprint: snap.fingerprint, loadedAt: time.Now()}
	for i := range keys {
		k := &keys[i]
		if len(keys) == 1 {
			set.only = k
		}
		if k.ID == "" {
			if len(keys) > 1 {
				return nil, fmt.Errorf("%w: %s has no ID, and with %d keys every key needs one to be selected by kid",
					ErrInvalidJWTKey, k, len(keys))
			}
			continue
		}
		if set.byID[k.ID] != nil {
			return nil, fmt.Errorf("%w: two keys have ID %q", ErrInvalidJWTKey, quoteShort(k.ID))
		}
		set.byID[k.ID] = k
	}
	return set, nil
}

// cloneKeys copies keys and their secrets, so a caller that changes or
// zeroes its slices does not change the keys in use.
func cloneKeys(keys []Key) []Key {
	out := slices.Clone(keys)
	for i := range out {
		out[i].Secret = bytes.Clone(out[i].Secret)
	}
	return out
}

// poll rereads the files every interval until Close. It is the
// JWTAuthenticator's only goroutine.
func (a *JWTAuthenticator) poll(interval time.Duration) {
	defer close(a.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			// Reload logs and counts its own failures.
			_ = a.Reload()
		}
	}
}

// Reload rereads KeyFiles and JWKSFiles and swaps in the new keys if any
// file changed and all of them parse. It returns nil when nothing changed,
// and the load error when the old keys were kept. It blocks on file I/O
// and on a concurrent Reload, never on Authenticate.
func (a *JWTAuthenticator) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()

	snap, err := a.readFiles()
	if err != nil {
		return a.fail(sha256.Sum256([]byte(err.Error())), err)
	}
	if snap.fingerprint == a.keys.Load().fingerprint {
		a.clearErr()
		return nil
	}
	if err, seen := a.seenFailure(snap.fingerprint); seen {
		return err
	}
	set, err := a.buildKeySet(snap)
	if err != nil {
		return a.fail(snap.fingerprint, err)
	}
	a.publish(set, true)
	return nil
}

// publish makes set the keys of new authentications and logs the load.
func (a *JWTAuthenticator) publish(set *keySet, reload bool) {
	a.keys.Store(set)

	a.mu.Lock()
	if reload {
		a.mu.stats.Reloads++
	}
	a.mu.stats.Keys = set.count
	a.mu.stats.LastReload = set.loadedAt
	a.mu.lastErr = nil
	a.mu.failedKey = [sha256.Size]byte{}
	a.mu.Unlock()

	msg := "loaded JWT keys"
	if reload {
		msg = "reloaded JWT keys"
	}
	a.logger.Info(msg, "keys", set.count, "key_files", len(a.cfg.KeyFiles), "jwks_files", len(a.cfg.JWKSFiles))
}

// fail records a failed reload, logging it once per distinct key.
func (a *JWTAuthenticator) fail(key [sha256.Size]byte, err error) error {
	a.mu.Lock()
	repeated := a.mu.lastErr != nil && a.mu.failedKey == key
	if !repeated {
		a.mu.stats.Failures++
		a.mu.failedKey = key
	}
	a.mu.lastErr = err
	a.mu.Unlock()

	if !repeated {
		a.logger.Error("JWT key reload failed; the previous keys stay in use", "err", err)
	}
	return err
}

func (a *JWTAuthenticator) seenFailure(key [sha256.Size]byte) (error, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mu.lastErr != nil && a.mu.failedKey == key {
		return a.mu.lastErr, true
	}
	return nil, false
}

// clearErr clears a failure once the files match the loaded keys again,
// for example after a half-written file was completed.
func (a *JWTAuthenticator) clearErr() {
	a.mu.Lock()
	a.mu.lastErr = nil
	a.mu.failedKey = [sha256.Size]byte{}
	a.mu.Unlock()
}

// LastError returns the error of the last reload, or nil when it succeeded
// or found nothing changed.
func (a *JWTAuthenticator) LastError() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mu.lastErr
}

// Stats returns a copy of the key counters.
func (a *JWTAuthenticator) Stats() JWTKeyStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mu.stats
}
