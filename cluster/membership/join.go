package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"time"
)

// maxJoinPeers bounds the seed addresses contacted in one attempt. One
// successful push/pull is enough to join, because gossip spreads the rest,
// and a DNS name of a large StatefulSet can list every pod.
const maxJoinPeers = 3

// lookupTimeout bounds one DNS lookup of a seed name.
const lookupTimeout = 5 * time.Second

// joinOutcome is the result of one join attempt.
type joinOutcome int

const (
	// joinedOK: a peer was reached and no peer lists this name elsewhere.
	joinedOK joinOutcome = iota
	// joinedHeld: a peer was reached but some peer still maps this node's
	// name to another address (the name has not been reclaimed yet).
	joinedHeld
	// joinNoPeers: the seeds resolved to no address but this node's own.
	joinNoPeers
	// joinFailed: no seed address resolved or accepted a connection.
	joinFailed
)

// gossip is the part of *memberlist.Memberlist that the join loop uses, so
// tests can drive the loop without sockets.
type gossip interface {
	Join(addrs []string) (int, error)
	NumMembers() int
}

// joiner owns the join loop: it joins through the seeds until a peer accepts
// this node under its name, and joins again whenever the node finds itself
// alone. It runs on one goroutine that Membership starts and stops through
// the context; all its fields belong to that goroutine.
type joiner struct {
	gossip   gossip
	seeds    []string
	seedPort int
	resolver Resolver
	watcher  *claimWatcher
	self     netip.AddrPort
	timings  timings
	logger   *slog.Logger
	now      func() time.Time

	recognized   bool          // a peer accepted this node under its name
	backoff      time.Duration // next wait after a failed attempt
	heldSince    time.Time     // first attempt that found the name held; zero if not held
	warnedHeld   bool          // the "still held" warning was logged for this episode
	warnedAlone  bool          // the "alone" warning was logged for this episode
	failedStreak int           // failed attempts since the last success
}

func newJoiner(g gossip, cfg *Config, watcher *claimWatcher, self netip.AddrPort, logger *slog.Logger) *joiner {
	t := cfg.Profile.timings()
	return &joiner{
		gossip:   g,
		seeds:    cfg.Join,
		seedPort: cfg.seedPort(),
		resolver: cfg.Resolver,
		watcher:  watcher,
		self:     self,
		timings:  t,
		logger:   logger,
		now:      time.Now,
		backoff:  t.joinRetryMin,
	}
}

// run attempts joins until ctx is done.
func (j *joiner) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		timer.Reset(j.step(ctx))
	}
}

// step makes one join attempt when one is needed and returns the wait until
// the next step.
func (j *joiner) step(ctx context.Context) time.Duration {
	alone := j.gossip.NumMembers() <= 1
	if j.recognized && !alone {
		j.warnedAlone = false
		return j.timings.aloneCheck
	}
	if j.recognized && alone && !j.warnedAlone {
		j.warnedAlone = true
		j.logger.Warn("lost contact with every peer: joining again through the seeds", keySeeds, j.seeds)
	}

	outcome, contacted, err := j.attempt(ctx)
	switch outcome {
	case joinedOK:
		if !j.recognized || alone {
			j.logger.Info("joined cluster", keyPeers, contacted, keyMembers, j.gossip.NumMembers())
		}
		j.recognized = true
		j.backoff = j.timings.joinRetryMin
		j.heldSince = time.Time{}
		j.warnedHeld = false
		j.failedStreak = 0
		return j.timings.aloneCheck

	case joinedHeld:
		j.recognized = false
		j.failedStreak = 0
		return j.heldWait()

	case joinNoPeers:
		j.logger.Debug("no seed address other than this node's own", keySeeds, j.seeds)
		return j.nextBackoff()

	default:
		j.failedStreak++
		// A peer that is still starting fails the first attempts, so only a
		// failure that lasted through the whole backoff ramp is a warning.
		if j.backoff >= j.timings.joinRetryMax {
			j.logger.Warn("cannot join the cluster yet: retrying", keySeeds, j.seeds, keyAttempts, j.failedStreak, keyErr, err)
		} else {
			j.logger.Debug("join attempt failed", keySeeds, j.seeds, keyErr, err)
		}
		return j.nextBackoff()
	}
}

// heldWait returns the wait after an attempt that found this node's name
// held by another address. It retries quickly for reclaimPatience, which
// covers the failure detection and reclaim time of the profile, then warns
// once and backs off: by then another live process probably uses the name.
func (j *joiner) heldWait() time.Duration {
	now := j.now()
	if j.heldSince.IsZero() {
		j.heldSince = now
		j.logger.Info("node name is still mapped to this node's previous address: retrying until the cluster declares it dead and lets this address reclaim it")
	}
	if now.Sub(j.heldSince) < j.timings.reclaimPatience {
		return j.timings.reclaimRetry
	}
	if !j.warnedHeld {
		j.warnedHeld = true
		j.logger.Warn("node name is still held by another address: check that no other node runs with the same name",
			keyWaited, now.Sub(j.heldSince).Round(time.Millisecond))
	}
	return j.nextBackoff()
}

// nextBackoff returns the current backoff with ±20% jitter, so nodes that
// started together do not retry together, and doubles it up to joinRetryMax.
func (j *joiner) nextBackoff() time.Duration {
	wait := j.backoff
	j.backoff = min(2*j.backoff, j.timings.joinRetryMax)
	jitter := time.Duration(rand.Int64N(int64(wait)/5+1)) * 2
	return wait - wait/5 + jitter
}

// attempt resolves the seeds and joins through up to maxJoinPeers of their
// addresses, one at a time, so that a cancelled ctx waits for at most one
// connection attempt (memberlist's TCPTimeout). It returns the outcome, the
// number of addresses that completed a state exchange, and the errors met on
// the way.
func (j *joiner) attempt(ctx context.Context) (joinOutcome, int, error) {
	addrs, resolveErr := j.resolve(ctx)
	if len(addrs) == 0 {
		if resolveErr != nil {
			return joinFailed, 0, resolveErr
		}
		return joinNoPeers, 0, nil
	}
	rand.Shuffle(len(addrs), func(a, b int) { addrs[a], addrs[b] = addrs[b], addrs[a] })
	addrs = addrs[:min(len(addrs), maxJoinPeers)]

	before := j.watcher.conflicts.Load()
	contacted := 0
	var errs []error
	for _, addr := range addrs {
		if ctx.Err() != nil {
			break
		}
		n, err := j.gossip.Join([]string{addr})
		if err != nil {
			errs = append(errs, fmt.Errorf("join %s: %w", addr, err))
			continue
		}
		contacted += n
	}
	if contacted == 0 {
		return joinFailed, 0, errors.Join(append(errs, resolveErr)...)
	}
	if j.watcher.conflicts.Load() != before {
		return joinedHeld, contacted, nil
	}
	return joinedOK, contacted, nil
}

// resolve returns the distinct IP:port addresses of the seeds without this
// node's own. A seed name is looked up on every call, so a DNS name of a
// Kubernetes headless service picks up pods as they start. The error joins
// the lookups that failed; addresses from the others are still returned.
func (j *joiner) resolve(ctx context.Context) ([]string, error) {
	seen := make(map[netip.AddrPort]bool)
	var addrs []string
	var errs []error
	add := func(ip netip.Addr, port int) {
		ap := netip.AddrPortFrom(ip.Unmap(), uint16(port))
		if ap == j.self || seen[ap] {
			return
		}
		seen[ap] = true
		addrs = append(addrs, ap.String())
	}

	for _, seed := range j.seeds {
		host, port, err := splitSeed(seed, j.seedPort)
		if err != nil {
			errs = append(errs, fmt.Errorf("seed %q: %w", seed, err))
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			add(ip, port)
			continue
		}

		lookupCtx, cancel := context.WithTimeout(ctx, lookupTimeout)
		hosts, err := j.resolver.LookupHost(lookupCtx, host)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve seed %q: %w", host, err))
			continue
		}
		for _, h := range hosts {
			ip, err := netip.ParseAddr(h)
			if err != nil {
				errs = append(errs, fmt.Errorf("resolve seed %q: invalid address %q", host, h))
				continue
			}
			add(ip, port)
		}
	}
	return addrs, errors.Join(errs...)
}
