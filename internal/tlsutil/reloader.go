package tlsutil

import (
	"crypto/sha256"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are a Reloader's counters, for metrics and health checks.
type Stats struct {
	// Reloads counts loads that replaced the material after the first.
	Reloads uint64
	// Failures counts reload attempts that kept the old material. A file
	// that stays broken counts once, not once per poll.
	Failures uint64
	// LastReload is when the current material was loaded.
	LastReload time.Time
	// CertNotAfter is the expiry of the certificate currently presented.
	CertNotAfter time.Time
}

// Reloader owns the certificate, key, CA bundle and CRLs behind one Config
// and replaces them when their files change. Its methods are safe for
// concurrent use. Close stops its polling goroutine.
type Reloader struct {
	src    source
	build  func(*material) // adds per-material state (the server Config); may be nil
	logger *slog.Logger

	current atomic.Pointer[material]

	// reloadMu serializes reload attempts from the poller and from Reload.
	reloadMu sync.Mutex

	mu struct {
		sync.Mutex
		stats   Stats
		lastErr error
		// failedKey identifies the input of the last failed attempt (a
		// fingerprint, or a hash of the read error), so the same failure
		// is neither counted nor logged again on every poll.
		failedKey [sha256.Size]byte
	}

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// newReloader loads the files once and, when interval is positive, starts
// the polling goroutine. A failure of the first load is returned as is.
func newReloader(src source, build func(*material), interval time.Duration, logger *slog.Logger) (*Reloader, error) {
	r := &Reloader{src: src, build: build, logger: logger, stop: make(chan struct{}), done: make(chan struct{})}
	snap, err := src.read()
	if err != nil {
		return nil, err
	}
	m, err := r.parse(snap)
	if err != nil {
		return nil, err
	}
	r.publish(m, false)

	if interval <= 0 {
		close(r.done)
		return r, nil
	}
	go r.poll(interval)
	return r, nil
}

// poll rereads the files every interval until Close. It is the Reloader's
// only goroutine.
func (r *Reloader) poll(interval time.Duration) {
	defer close(r.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			// Reload logs and counts its own failures.
			_ = r.Reload()
		}
	}
}

// Reload rereads the files now and swaps in the new material if any file
// changed and all of them parse. It returns nil when nothing changed, and
// the load error when the old material was kept. It blocks on file I/O and
// on a concurrent Reload, never on handshakes.
func (r *Reloader) Reload() error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()

	snap, err := r.src.read()
	if err != nil {
		return r.fail(sha256.Sum256([]byte(err.Error())), err)
	}
	if snap.fingerprint == r.current.Load().fingerprint {
		r.clearErr()
		return nil
	}
	if err, seen := r.seenFailure(snap.fingerprint); seen {
		return err
	}
	m, err := r.parse(snap)
	if err != nil {
		return r.fail(snap.fingerprint, err)
	}
	r.publish(m, true)
	return nil
}

func (r *Reloader) parse(snap snapshot) (*material, error) {
	m, err := r.src.parse(snap, time.Now())
	if err != nil {
		return nil, err
	}
	if r.build != nil {
		r.build(m)
	}
	return m, nil
}

// publish makes m the material of new handshakes and logs what was loaded.
func (r *Reloader) publish(m *material, reload bool) {
	r.current.Store(m)

	r.mu.Lock()
	if reload {
		r.mu.stats.Reloads++
	}
	r.mu.stats.LastReload = m.loadedAt
	r.mu.stats.CertNotAfter = m.cert.Leaf.NotAfter
	r.mu.lastErr = nil
	r.mu.failedKey = [sha256.Size]byte{}
	r.mu.Unlock()

	msg := "loaded TLS certificate"
	if reload {
		msg = "reloaded TLS certificate"
	}
	r.logger.Info(msg, "file", r.src.certFile, "subject", m.cert.Leaf.Subject.String(),
		"not_after", m.cert.Leaf.NotAfter.UTC(), "crls", len(r.src.crlFiles))
	for _, path := range m.staleCRLs {
		r.logger.Warn("CRL is past its next update time and is still used: publish a fresh one", "file", path)
	}
}

// fail records a failed attempt, logging it once per distinct key.
func (r *Reloader) fail(key [sha256.Size]byte, err error) error {
	r.mu.Lock()
	repeated := r.mu.lastErr != nil && r.mu.failedKey == key
	if !repeated {
		r.mu.stats.Failures++
		r.mu.failedKey = key
	}
	r.mu.lastErr = err
	r.mu.Unlock()

	if !repeated {
		r.logger.Error("TLS reload failed; the previous certificate stays in use", "err", err)
	}
	return err
}

func (r *Reloader) seenFailure(key [sha256.Size]byte) (error, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.lastErr != nil && r.mu.failedKey == key {
		return r.mu.lastErr, true
	}
	return nil, false
}

// clearErr clears a failure once the files match the loaded material again,
// for example after a half-written file was completed.
func (r *Reloader) clearErr() {
	r.mu.Lock()
	r.mu.lastErr = nil
	r.mu.failedKey = [sha256.Size]byte{}
	r.mu.Unlock()
}

// LastError returns the error of the last reload attempt, or nil when it
// succeeded or found nothing changed.
func (r *Reloader) LastError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.lastErr
}

// Stats returns a copy of the counters.
func (r *Reloader) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.stats
}

// Close stops the polling goroutine and waits for it to return. The
// material in use stays valid, so Configs keep working without reloads.
// Close is idempotent.
func (r *Reloader) Close() error {
	r.closeOnce.Do(func() { close(r.stop) })
	<-r.done
	return nil
}
