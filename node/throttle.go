package node

import (
	"net"
	"sync"
	"time"
)

// ThrottleConfig slows down repeated failed logins. Failures are counted per
// remote address and per pair of address and user name, never per user name
// alone, so an attacker guessing a device's user name from elsewhere cannot
// lock the real device out.
type ThrottleConfig struct {
	// FreeFailures is how many failures an address may have before its
	// attempts are delayed. Default: 3.
	FreeFailures int

	// MaxDelay caps the delay before a throttled attempt is checked, which
	// doubles from 100 ms with every failure beyond FreeFailures. Default: 5 s.
	MaxDelay time.Duration

	// BanAfter is the number of failures after which the address (or the
	// address and user name pair) is refused without a check. Default: 20.
	BanAfter int

	// BanFor is how long a ban lasts, and how long failures are remembered.
	// Default: 5 minutes.
	BanFor time.Duration

	// MaxEntries bounds the memory of the throttle; the oldest entries are
	// forgotten first. Default: 100,000.
	MaxEntries int
}

func (c *ThrottleConfig) setDefaults() {
	setIfZero(&c.FreeFailures, 3)
	setIfZero(&c.MaxDelay, 5*time.Second)
	setIfZero(&c.BanAfter, 20)
	setIfZero(&c.BanFor, 5*time.Minute)
	setIfZero(&c.MaxEntries, 100000)
}

// throttle counts failed logins. It is safe for concurrent use.
type throttle struct {
	cfg ThrottleConfig
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*failures
}

type failures struct {
	count   int
	pending int // attempts checked and not yet decided; counted as failures
	last    time.Time
}

func newThrottle(cfg ThrottleConfig) *throttle {
	cfg.setDefaults()
	return &throttle{cfg: cfg, now: time.Now, entries: make(map[string]*failures)}
}

func pairKey(host, username string) string { return host + "\x00" + username }

// check returns how long to wait before checking a login from host as
// username, or that the attempt is banned and for how long.
func (t *throttle) check(host, username string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	worst := 0
	last := now
	pair := pairKey(host, username)
	for _, key := range []string{host, pair} {
		f := t.entries[key]
		if f == nil || now.Sub(f.last) >= t.cfg.BanFor {
			continue
		}
		n := f.count
		if key == pair {
			// Attempts on this user name still being checked count as
			// failures, so a burst of parallel guesses cannot all pass
			// before the first failure lands. Only the pair counts them:
			// many devices logging in at once from one address (a NAT, a
			// reconnect storm) are not guesses.
			n += f.pending
		}
		if n > worst {
			worst, last = n, f.last
		}
	}
	if worst >= t.cfg.BanAfter {
		return t.cfg.BanFor - now.Sub(last), true
	}
	if username != "" {
		f := t.entries[pair]
		if f == nil || now.Sub(f.last) >= t.cfg.BanFor {
			f = &failures{last: now}
			t.entries[pair] = f
		}
		f.pending++
	}
	if worst < t.cfg.FreeFailures {
		return 0, false
	}
	delay := 100 * time.Millisecond << min(worst-t.cfg.FreeFailures, 16)
	return min(delay, t.cfg.MaxDelay), false
}

// fail records a failed login.
func (t *throttle) fail(host, username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.entries)+2 > t.cfg.MaxEntries {
		t.pruneLocked(now, t.cfg.MaxEntries-2)
	}
	for _, key := range []string{host, pairKey(host, username)} {
		f := t.entries[key]
		if f == nil || now.Sub(f.last) >= t.cfg.BanFor {
			f = &failures{}
			t.entries[key] = f
		}
		f.count++
		if key != host {
			f.pending = max(f.pending-1, 0)
		}
		f.last = now
	}
}

// succeed clears the failures of the pair; the address keeps its count, so
// one valid device behind a NAT cannot clear the record of an attacker there.
func (t *throttle) succeed(host, username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, pairKey(host, username))
}

// abandon settles a checked attempt that ended without a decision (an
// authenticator error, a timeout), so it stops counting as pending.
func (t *throttle) abandon(host, username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.entries[pairKey(host, username)]; f != nil {
		f.pending = max(f.pending-1, 0)
	}
}

// pruneLocked drops expired entries, then older ones, until at most target
// remain.
func (t *throttle) pruneLocked(now time.Time, target int) {
	for k, f := range t.entries {
		if now.Sub(f.last) >= t.cfg.BanFor {
			delete(t.entries, k)
		}
	}
	cutoff := now.Add(-t.cfg.BanFor / 2)
	for k, f := range t.entries {
		if len(t.entries) <= target {
			return
		}
		if f.last.Before(cutoff) {
			delete(t.entries, k)
		}
	}
	for k := range t.entries {
		if len(t.entries) <= target {
			return
		}
		delete(t.entries, k)
	}
}

// hostOf returns the address part of a host:port string.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
