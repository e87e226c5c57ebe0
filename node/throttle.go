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
	// doubles from 100 ms with every failure beyond FreeFailures. It also
	// bounds how long a login waits for its turn while BanAfter logins of
	// its user name and address are being checked; one whose turn does not
	// come by then is refused with 0x89 Server busy. Default: 5 s.
	MaxDelay time.Duration

	// BanAfter is the number of failures after which the address (or the
	// address and user name pair) is refused without a check. It also
	// bounds the logins of one user name from one address that are checked
	// at once. Default: 20.
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
	pending int // attempts on a pair that are being checked, not yet decided
	last    time.Time

	// settled, when not nil, is closed when pending drops or the entry is
	// dropped: attempts waiting for their turn then check again.
	settled chan struct{}
}

// wake releases the attempts waiting for a turn on f.
func (f *failures) wake() {
	if f.settled != nil {
		close(f.settled)
		f.settled = nil
	}
}

func newThrottle(cfg ThrottleConfig) *throttle {
	cfg.setDefaults()
	return &throttle{cfg: cfg, now: time.Now, entries: make(map[string]*failures)}
}

func pairKey(host, username string) string { return host + "\x00" + username }

// verdict is the throttle's answer to one login attempt. The zero value
// admits it at once.
type verdict struct {
	// banned: refuse the attempt without checking it.
	banned bool
	// wait is how long to delay the check of an admitted attempt, or what
	// remains of a ban.
	wait time.Duration
	// turn, when not nil, means that the attempt may not start yet: pending
	// attempts on this address and user name are being checked already.
	// turn is closed when one of them is decided; check again then.
	turn    <-chan struct{}
	pending int
}

// check decides on a login from host as username. Only failures count
// against an attempt: the address's and the pair's, whichever is worse.
// After FreeFailures each attempt waits longer, and at BanAfter it is banned.
//
// Attempts on one user name from one address that are still being checked
// are limited to BanAfter at once, so that a burst of parallel guesses
// cannot all be checked before the first failure lands. An attempt beyond
// that limit is not a failure: it gets a turn channel and waits for the
// earlier ones to be decided. Many devices logging in at once from one
// address (a NAT, a reconnect storm) are therefore queued, never banned,
// unless they really fail. An admitted attempt with a user name is pending
// until fail, succeed or abandon settles it.
func (t *throttle) check(host, username string) verdict {
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
		if f.count > worst {
			worst, last = f.count, f.last
		}
	}
	if worst >= t.cfg.BanAfter {
		return verdict{banned: true, wait: t.cfg.BanFor - now.Sub(last)}
	}
	if username != "" {
		f := t.entries[pair]
		if f == nil || now.Sub(f.last) >= t.cfg.BanFor {
			if f != nil {
				f.wake()
			}
			f = &failures{last: now}
			t.entries[pair] = f
		}
		if f.count+f.pending >= t.cfg.BanAfter {
			if f.settled == nil {
				f.settled = make(chan struct{})
			}
			return verdict{turn: f.settled, pending: f.pending}
		}
		f.pending++
	}
	if worst < t.cfg.FreeFailures {
		return verdict{}
	}
	delay := 100 * time.Millisecond << min(worst-t.cfg.FreeFailures, 16)
	return verdict{wait: min(delay, t.cfg.MaxDelay)}
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
			if f != nil {
				f.wake()
			}
			f = &failures{}
			t.entries[key] = f
		}
		f.count++
		if key != host {
			f.pending = max(f.pending-1, 0)
			f.wake()
		}
		f.last = now
	}
}

// succeed clears the failures of the pair; the address keeps its count, so
// one valid device behind a NAT cannot clear the record of an attacker there.
func (t *throttle) succeed(host, username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := pairKey(host, username)
	if f := t.entries[key]; f != nil {
		f.wake()
		delete(t.entries, key)
	}
}

// abandon settles a checked attempt that ended without a decision (an
// authenticator error, a timeout), so it stops counting as pending.
func (t *throttle) abandon(host, username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.entries[pairKey(host, username)]; f != nil {
		f.pending = max(f.pending-1, 0)
		f.wake()
	}
}

// pruneLocked drops expired entries, then older ones, until at most target
// remain.
func (t *throttle) pruneLocked(now time.Time, target int) {
	for k, f := range t.entries {
		if now.Sub(f.last) >= t.cfg.BanFor {
			f.wake()
			delete(t.entries, k)
		}
	}
	cutoff := now.Add(-t.cfg.BanFor / 2)
	for k, f := range t.entries {
		if len(t.entries) <= target {
			return
		}
		if f.last.Before(cutoff) {
			f.wake()
			delete(t.entries, k)
		}
	}
	for k, f := range t.entries {
		if len(t.entries) <= target {
			return
		}
		f.wake()
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
