package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// VerifierConfig configures a Verifier. Zero fields take the defaults of
// DefaultVerifierConfig. None is reloadable; build a new Verifier instead.
type VerifierConfig struct {
	// Workers is the number of goroutines that compute hashes. Default:
	// GOMAXPROCS, since hashing is CPU-bound. With argon2id each worker
	// holds Params.MemoryKiB while it runs.
	Workers int

	// QueueLen is the number of verifications that may wait for a worker.
	// A verification that finds the queue full fails at once with ErrBusy.
	// Default: 64 per worker, which at the default cost of about 25 ms per
	// hash (measured, see the package documentation) is under 2 s of work
	// in the queue on any number of cores.
	QueueLen int

	// CacheTTL is how long a successful verification is remembered. A
	// negative value turns the cache off. Default: 2 minutes, long enough
	// to absorb a reconnect storm and short enough that a password that
	// leaked from the client side is not usable for long after a rotation
	// elsewhere.
	CacheTTL time.Duration

	// CacheEntries bounds the cache. Default: 100,000, about 15 MB.
	CacheEntries int

	// Secret keys the cache. Nil means 32 random bytes, which is right for
	// a cache that lives in one process.
	Secret []byte

	// DecoyParams are the hash parameters of the decoy credential checked
	// for unknown users. They should equal those of most real users.
	// Default: DefaultParams.
	DecoyParams Params
}

// DefaultVerifierConfig returns the defaults described on VerifierConfig.
func DefaultVerifierConfig() VerifierConfig {
	workers := runtime.GOMAXPROCS(0)
	return VerifierConfig{
		Workers:      workers,
		QueueLen:     64 * workers,
		CacheTTL:     2 * time.Minute,
		CacheEntries: 100_000,
		DecoyParams:  DefaultParams(),
	}
}

// withDefaults fills zero fields.
func (c VerifierConfig) withDefaults() VerifierConfig {
	d := DefaultVerifierConfig()
	if c.Workers == 0 {
		c.Workers = d.Workers
	}
	if c.QueueLen == 0 {
		c.QueueLen = 64 * c.Workers
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = d.CacheTTL
	}
	if c.CacheEntries == 0 {
		c.CacheEntries = d.CacheEntries
	}
	if c.DecoyParams.Kind == "" {
		c.DecoyParams = d.DecoyParams
	}
	return c
}

// Validate returns an error naming the first invalid field.
func (c VerifierConfig) Validate() error {
	switch {
	case c.Workers < 0:
		return fmt.Errorf("auth: VerifierConfig.Workers %d is negative", c.Workers)
	case c.QueueLen < 0:
		return fmt.Errorf("auth: VerifierConfig.QueueLen %d is negative", c.QueueLen)
	case c.CacheEntries < 0:
		return fmt.Errorf("auth: VerifierConfig.CacheEntries %d is negative", c.CacheEntries)
	case c.Secret != nil && len(c.Secret) < 16:
		return fmt.Errorf("auth: VerifierConfig.Secret has %d bytes, want at least 16", len(c.Secret))
	}
	if c.DecoyParams.Kind != "" {
		if err := c.DecoyParams.Validate(); err != nil {
			return fmt.Errorf("auth: VerifierConfig.DecoyParams: %w", err)
		}
	}
	return nil
}

// VerifierStats are counters since the Verifier started.
type VerifierStats struct {
	CacheHits  uint64 // verifications served from the cache
	Shared     uint64 // verifications that waited for an identical one in flight
	Computed   uint64 // hashes computed by the workers, decoys included
	Busy       uint64 // verifications rejected with ErrBusy
	CacheSize  int    // entries in the cache now
	QueueDepth int    // verifications waiting for a worker now
}

// Verifier checks passwords on a bounded pool of workers and remembers
// successful checks for a short time. It bounds what a reconnect storm
// costs: at most Workers hashes run at once, at most QueueLen wait, the
// rest fail fast with ErrBusy, and identical requests in flight (the same
// device retrying) share one hash. A password change or a re-created user
// gets a new User.Version, which is part of the cache key, so old entries
// are never hit again.
//
// The Verifier owns its worker goroutines: NewVerifier starts them and
// Close stops them. All methods are safe for concurrent use.
type Verifier struct {
	cfg     VerifierConfig
	secret  []byte
	decoy   Credentials
	now     func() time.Time               // replaced by tests
	check   func(Credentials, []byte) bool // Verify; replaced by tests to block a worker
	keyPool sync.Pool                      // of *keyHasher keyed with secret

	jobs chan *verifyJob
	quit chan struct{}
	wg   sync.WaitGroup

	mu struct {
		sync.Mutex
		closed   bool
		cache    *verifyCache
		inFlight map[cacheKey]*verifyFlight
	}

	hits, shared, computed, busy atomic.Uint64
}

// verifyJob is one hash computation. password is the job's own copy,
// zeroed when the job ends.
type verifyJob struct {
	creds    Credentials
	password []byte
	key      cacheKey
	cache    bool          // store a success under key
	flight   *verifyFlight // nil for decoys, which are never shared
	done     chan bool     // for decoys: receives the result
}

// verifyFlight is a verification in progress that identical requests wait
// for. ok and err are written before done is closed.
type verifyFlight struct {
	done chan struct{}
	ok   bool
	err  error
}

// NewVerifier starts a Verifier. It computes one hash at start, the decoy
// credential.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()

	secret := cfg.Secret
	if secret == nil {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("new verifier: read random secret: %w", err)
		}
	}
	decoyPassword := make([]byte, 16)
	if _, err := rand.Read(decoyPassword); err != nil {
		return nil, fmt.Errorf("new verifier: read random decoy: %w", err)
	}
	decoy, err := HashPassword(decoyPassword, cfg.DecoyParams)
	if err != nil {
		return nil, fmt.Errorf("new verifier: decoy credential: %w", err)
	}

	v := &Verifier{
		cfg:    cfg,
		secret: secret,
		decoy:  decoy,
		now:    time.Now,
		check:  Verify,
		jobs:   make(chan *verifyJob, cfg.QueueLen),
		quit:   make(chan struct{}),
	}
	v.keyPool.New = func() any { return &keyHasher{mac: hmac.New(sha256.New, v.secret)} }
	v.mu.cache = newVerifyCache(cfg.CacheEntries, cfg.CacheTTL)
	v.mu.inFlight = make(map[cacheKey]*verifyFlight)

	v.wg.Add(cfg.Workers)
	for range cfg.Workers {
		go v.work()
	}
	return v, nil
}

// Close stops the workers after the hashes they are computing and fails
// every queued verification with ErrClosed. It waits for the workers and
// may be called more than once.
func (v *Verifier) Close() error {
	v.mu.Lock()
	if v.mu.closed {
		v.mu.Unlock()
		return nil
	}
	v.mu.closed = true
	v.mu.Unlock()

	close(v.quit)
	v.wg.Wait()

	// No job can be queued now: submit checks closed under the mutex.
	for {
		select {
		case j := <-v.jobs:
			v.finish(j, false, ErrClosed)
		default:
			return nil
		}
	}
}

// Stats returns the counters.
func (v *Verifier) Stats() VerifierStats {
	v.mu.Lock()
	size := v.mu.cache.len()
	v.mu.Unlock()
	return VerifierStats{
		CacheHits:  v.hits.Load(),
		Shared:     v.shared.Load(),
		Computed:   v.computed.Load(),
		Busy:       v.busy.Load(),
		CacheSize:  size,
		QueueDepth: len(v.jobs),
	}
}

// Verify reports whether password matches the user's stored credentials.
// It returns a cached success when it can. Otherwise it queues the hash and
// waits for it or for ctx. It returns ErrBusy at once when the queue is
// full and ErrClosed after Close. A hash that was queued runs to the end
// even if ctx is done, and its success is cached for the next attempt.
//
// The caller keeps ownership of password: Verify copies it.
func (v *Verifier) Verify(ctx context.Context, u User, password []byte) (bool, error) {
	key := v.cacheKey(u, password)

	v.mu.Lock()
	if v.mu.closed {
		v.mu.Unlock()
		return false, ErrClosed
	}
	if v.mu.cache.get(key, v.now()) {
		v.mu.Unlock()
		v.hits.Add(1)
		return true, nil
	}
	if f, ok := v.mu.inFlight[key]; ok {
		v.mu.Unlock()
		v.shared.Add(1)
		return waitFlight(ctx, f)
	}
	f := &verifyFlight{done: make(chan struct{})}
	job := &verifyJob{creds: u.Credentials, password: clone(password), key: key, cache: true, flight: f}
	if !v.trySubmitLocked(job) {
		v.mu.Unlock()
		clear(job.password)
		return false, ErrBusy
	}
	v.mu.inFlight[key] = f
	v.mu.Unlock()

	return waitFlight(ctx, f)
}

// verifyDecoy checks password against the decoy credential through the
// pool, with no cache and no sharing, so it costs what a real check costs.
func (v *Verifier) verifyDecoy(ctx context.Context, password []byte) (bool, error) {
	job := &verifyJob{creds: v.decoy, password: clone(password), done: make(chan bool, 1)}

	v.mu.Lock()
	if v.mu.closed {
		v.mu.Unlock()
		return false, ErrClosed
	}
	if !v.trySubmitLocked(job) {
		v.mu.Unlock()
		clear(job.password)
		return false, ErrBusy
	}
	v.mu.Unlock()

	select {
	case ok := <-job.done:
		return ok, nil
	case <-ctx.Done():
		return false, fmt.Errorf("verify password: %w", ctx.Err())
	}
}

// trySubmitLocked queues job without blocking. v.mu must be held.
func (v *Verifier) trySubmitLocked(job *verifyJob) bool {
	select {
	case v.jobs <- job:
		return true
	default:
		v.busy.Add(1)
		return false
	}
}

func waitFlight(ctx context.Context, f *verifyFlight) (bool, error) {
	select {
	case <-f.done:
		return f.ok, f.err
	case <-ctx.Done():
		return false, fmt.Errorf("verify password: %w", ctx.Err())
	}
}

// work is the loop of one worker goroutine, started by NewVerifier and
// stopped by Close.
func (v *Verifier) work() {
	defer v.wg.Done()
	for {
		// Close must win over a queued job: select picks at random among ready
		// cases, so check quit on its own first.
		select {
		case <-v.quit:
			return
		default:
		}
		select {
		case <-v.quit:
			return
		case j := <-v.jobs:
			ok := v.check(j.creds, j.password)
			v.computed.Add(1)
			v.finish(j, ok, nil)
		}
	}
}

// finish publishes a job's result, caches a success and zeroes the job's
// copy of the password.
func (v *Verifier) finish(j *verifyJob, ok bool, err error) {
	clear(j.password)
	if j.flight == nil {
		j.done <- ok // capacity 1 and one send per job, so it does not block
		return
	}
	v.mu.Lock()
	if ok && j.cache {
		v.mu.cache.add(j.key, v.now())
	}
	delete(v.mu.inFlight, j.key)
	v.mu.Unlock()

	j.flight.ok, j.flight.err = ok, err
	close(j.flight.done)
}

// keyHasher is a reusable HMAC and message buffer for cacheKey.
type keyHasher struct {
	mac hash.Hash
	buf []byte
}

// cacheKey computes the HMAC of the fields that identify one successful
// check. Each variable-length field is prefixed with its length, so no two
// different inputs give the same message. The buffer that held the
// password is zeroed before it goes back to the pool.
func (v *Verifier) cacheKey(u User, password []byte) cacheKey {
	h := v.keyPool.Get().(*keyHasher)
	defer v.keyPool.Put(h)

	b := h.buf[:0]
	b = binary.BigEndian.AppendUint64(b, uint64(len(u.Name)))
	b = append(b, u.Name...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(password)))
	b = append(b, password...)
	b = binary.BigEndian.AppendUint64(b, u.Version)
	b = binary.BigEndian.AppendUint64(b, uint64(len(u.Credentials.Hash)))
	b = append(b, u.Credentials.Hash...)

	h.mac.Reset()
	h.mac.Write(b)
	var key cacheKey
	h.mac.Sum(key[:0])
	clear(b)
	h.buf = b
	return key
}

func clone(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}
