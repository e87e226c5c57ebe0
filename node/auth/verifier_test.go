package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// newTestVerifier starts a Verifier with cheap decoy parameters and closes
// it at the end of the test.
func newTestVerifier(t testing.TB, cfg VerifierConfig) *Verifier {
	t.Helper()
	if cfg.DecoyParams.Kind == "" {
		cfg.DecoyParams = testArgon2
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// testUser returns a stored user with password pw.
func testUser(t testing.TB, store *MemStore, name, pw string) User {
	t.Helper()
	u := User{Name: name}
	if err := u.SetPassword([]byte(pw), testArgon2, 0); err != nil {
		t.Fatal(err)
	}
	stored, err := store.PutUser(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

func TestVerifier_CachesSuccessOnly(t *testing.T) {
	ctx := context.Background()
	v := newTestVerifier(t, VerifierConfig{Workers: 1})
	u := testUser(t, &MemStore{}, "alice", "pw")

	for i := range 3 {
		ok, err := v.Verify(ctx, u, []byte("pw"))
		if err != nil || !ok {
			t.Fatalf("attempt %d: ok=%v err=%v", i, ok, err)
		}
	}
	for range 2 {
		if ok, _ := v.Verify(ctx, u, []byte("wrong")); ok {
			t.Fatal("wrong password accepted")
		}
	}
	st := v.Stats()
	if st.Computed != 3 || st.CacheHits != 2 || st.CacheSize != 1 {
		t.Errorf("stats %+v; want 3 computed (1 right, 2 wrong), 2 cache hits, 1 entry", st)
	}
}

func TestVerifier_NewVersionMissesCache(t *testing.T) {
	ctx := context.Background()
	store := &MemStore{}
	v := newTestVerifier(t, VerifierConfig{Workers: 1})
	u := testUser(t, store, "alice", "old")
	if ok, _ := v.Verify(ctx, u, []byte("old")); !ok {
		t.Fatal("old password rejected")
	}

	// passwd: a new hash and a new version.
	changed := testUser(t, store, "alice", "new")
	if changed.Version <= u.Version {
		t.Fatalf("Version %d did not grow from %d", changed.Version, u.Version)
	}
	if ok, _ := v.Verify(ctx, changed, []byte("old")); ok {
		t.Error("old password accepted after a password change")
	}
	if ok, _ := v.Verify(ctx, changed, []byte("new")); !ok {
		t.Error("new password rejected")
	}

	// The same credentials stored again still get a new version, so even
	// a store that kept the hash would miss the old cache entry.
	again, err := store.PutUser(ctx, changed)
	if err != nil {
		t.Fatal(err)
	}
	before := v.Stats().Computed
	if ok, _ := v.Verify(ctx, again, []byte("new")); !ok {
		t.Error("re-stored user rejected")
	}
	if v.Stats().Computed != before+1 {
		t.Error("a new Version hit the cache entry of the old one")
	}
}

func TestVerifier_TTLExpires(t *testing.T) {
	ctx := context.Background()
	v := newTestVerifier(t, VerifierConfig{Workers: 1, CacheTTL: time.Minute})
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	v.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	u := testUser(t, &MemStore{}, "alice", "pw")

	if ok, _ := v.Verify(ctx, u, []byte("pw")); !ok {
		t.Fatal("rejected")
	}
	mu.Lock()
	now = now.Add(59 * time.Second)
	mu.Unlock()
	if ok, _ := v.Verify(ctx, u, []byte("pw")); !ok || v.Stats().CacheHits != 1 {
		t.Fatal("no cache hit within the TTL")
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	if ok, _ := v.Verify(ctx, u, []byte("pw")); !ok || v.Stats().Computed != 2 {
		t.Errorf("expired entry was used: %+v", v.Stats())
	}
}

func TestVerifier_CacheOff(t *testing.T) {
	v := newTestVerifier(t, VerifierConfig{Workers: 1, CacheTTL: -1})
	u := testUser(t, &MemStore{}, "alice", "pw")
	for range 2 {
		if ok, _ := v.Verify(context.Background(), u, []byte("pw")); !ok {
			t.Fatal("rejected")
		}
	}
	if st := v.Stats(); st.CacheHits != 0 || st.Computed != 2 {
		t.Errorf("stats %+v with the cache off", st)
	}
}

func TestVerifyCache_EvictsLeastRecentlyUsed(t *testing.T) {
	c := newVerifyCache(2, time.Minute)
	now := time.Unix(0, 0)
	k1, k2, k3 := cacheKey{1}, cacheKey{2}, cacheKey{3}
	c.add(k1, now)
	c.add(k2, now)
	c.get(k1, now) // k2 is now the least recently used
	c.add(k3, now)
	if c.len() != 2 || !c.get(k1, now) || c.get(k2, now) || !c.get(k3, now) {
		t.Errorf("after eviction: len %d, k1 %v, k2 %v, k3 %v; want 2, true, false, true",
			c.len(), c.get(k1, now), c.get(k2, now), c.get(k3, now))
	}
}

// blockWorkers makes the Verifier's workers wait on release before each
// hash, and returns a channel that receives once per hash started.
func blockWorkers(v *Verifier) (started chan struct{}, release chan struct{}) {
	started, release = make(chan struct{}, 100), make(chan struct{})
	v.check = func(c Credentials, pw []byte) bool {
		started <- struct{}{}
		<-release
		return Verify(c, pw)
	}
	return started, release
}

func TestVerifier_BusyWhenQueueFull(t *testing.T) {
	ctx := context.Background()
	v := newTestVerifier(t, VerifierConfig{Workers: 1, QueueLen: 1})
	started, release := blockWorkers(v)
	store := &MemStore{}
	users := []User{testUser(t, store, "a", "pw"), testUser(t, store, "b", "pw"), testUser(t, store, "c", "pw")}

	results := make(chan error, 2)
	go func() { _, err := v.Verify(ctx, users[0], []byte("pw")); results <- err }()
	<-started // the worker holds a's hash
	go func() { _, err := v.Verify(ctx, users[1], []byte("pw")); results <- err }()
	waitFor(t, func() bool { return v.Stats().QueueDepth == 1 })

	if _, err := v.Verify(ctx, users[2], []byte("pw")); !errors.Is(err, ErrBusy) {
		t.Errorf("third Verify error = %v, want ErrBusy", err)
	}
	if ConnectReason(ErrBusy) != 0x89 {
		t.Errorf("ConnectReason(ErrBusy) = %#x, want 0x89", ConnectReason(ErrBusy))
	}
	close(release)
	for range 2 {
		if err := <-results; err != nil {
			t.Errorf("queued Verify: %v", err)
		}
	}
	if v.Stats().Busy != 1 {
		t.Errorf("Busy = %d, want 1", v.Stats().Busy)
	}
}

func TestVerifier_IdenticalRequestsShareOneHash(t *testing.T) {
	ctx := context.Background()
	v := newTestVerifier(t, VerifierConfig{Workers: 1, QueueLen: 1})
	started, release := blockWorkers(v)
	u := testUser(t, &MemStore{}, "alice", "pw")

	const n = 20
	results := make(chan bool, n)
	go func() { ok, _ := v.Verify(ctx, u, []byte("pw")); results <- ok }()
	<-started
	for range n - 1 {
		go func() { ok, _ := v.Verify(ctx, u, []byte("pw")); results <- ok }()
	}
	waitFor(t, func() bool { return v.Stats().Shared == n-1 })
	close(release)
	for range n {
		if !<-results {
			t.Error("a shared verification failed")
		}
	}
	if st := v.Stats(); st.Computed != 1 || st.Busy != 0 {
		t.Errorf("stats %+v; want one hash for %d identical requests and none busy", st, n)
	}
}

func TestVerifier_ContextAndClose(t *testing.T) {
	v := newTestVerifier(t, VerifierConfig{Workers: 1, QueueLen: 4})
	started, release := blockWorkers(v)
	store := &MemStore{}
	a, b := testUser(t, store, "a", "pw"), testUser(t, store, "b", "pw")

	go func() { _, _ = v.Verify(context.Background(), a, []byte("pw")) }()
	<-started

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Verify(ctx, b, []byte("pw")); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a cancelled context: %v, want context.Canceled", err)
	}

	queued := make(chan error, 1)
	c := testUser(t, store, "c", "pw")
	go func() { _, err := v.Verify(context.Background(), c, []byte("pw")); queued <- err }()
	waitFor(t, func() bool { return v.Stats().QueueDepth == 2 })

	closed := make(chan struct{})
	go func() { _ = v.Close(); close(closed) }()
	close(release)
	<-closed
	if err := <-queued; !errors.Is(err, ErrClosed) {
		t.Errorf("queued Verify after Close: %v, want ErrClosed", err)
	}
	if _, err := v.Verify(context.Background(), a, []byte("pw")); !errors.Is(err, ErrClosed) {
		t.Errorf("Verify after Close: %v, want ErrClosed", err)
	}
	if err := v.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestVerifierConfig_Validate(t *testing.T) {
	for name, cfg := range map[string]VerifierConfig{
		"negative-workers": {Workers: -1},
		"negative-queue":   {QueueLen: -1},
		"negative-cache":   {CacheEntries: -1},
		"short-secret":     {Secret: []byte("short")},
		"bad-decoy":        {DecoyParams: Params{Kind: KindPBKDF2SHA512}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewVerifier(cfg); err == nil {
				t.Error("NewVerifier accepted an invalid config")
			}
		})
	}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestVerifier_Storm runs a reconnect storm of 1,000 connects by 50 users
// with cheap hashes and checks that no user costs more than one hash.
func TestVerifier_Storm(t *testing.T) {
	users, connects := 50, 1000
	store := &MemStore{}
	records := make([]User, users)
	for i := range records {
		u := User{Name: fmt.Sprintf("dev-%d", i)}
		creds, err := HashPassword([]byte(u.Name+"-pw"), testArgon2)
		if err != nil {
			t.Fatal(err)
		}
		u.Credentials = creds
		if records[i], err = store.PutUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	v := newTestVerifier(t, VerifierConfig{QueueLen: connects})
	auth := &PasswordAuthenticator{Store: store, Verifier: v}

	var wg sync.WaitGroup
	errs := make(chan error, connects)
	for i := range connects {
		wg.Go(func() {
			name := fmt.Sprintf("dev-%d", i%users)
			_, err := auth.Authenticate(context.Background(), Request{Username: name, Password: []byte(name + "-pw")})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("storm connect failed: %v", err)
		}
	}
	if st := v.Stats(); st.Computed > uint64(users) {
		t.Errorf("stats %+v; want at most one hash per user", st)
	}
}

// BenchmarkVerifier_Storm is a reconnect storm: 5,000 connects of 100
// distinct users with default-cost argon2id hashes, all at once, through
// PasswordAuthenticator. One op is the whole storm; ns/op is the time until
// the last client is authenticated.
func BenchmarkVerifier_Storm(b *testing.B) {
	const users, connects = 100, 5000
	store := &MemStore{}
	for i := range users {
		u := User{Name: fmt.Sprintf("dev-%d", i)}
		creds, err := HashPassword([]byte(u.Name+"-pw"), DefaultParams())
		if err != nil {
			b.Fatal(err)
		}
		u.Credentials = creds
		if _, err := store.PutUser(context.Background(), u); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		v, err := NewVerifier(VerifierConfig{QueueLen: connects})
		if err != nil {
			b.Fatal(err)
		}
		auth := &PasswordAuthenticator{Store: store, Verifier: v}
		b.StartTimer()

		var wg sync.WaitGroup
		var failed sync.Once
		for i := range connects {
			wg.Go(func() {
				name := fmt.Sprintf("dev-%d", i%users)
				if _, err := auth.Authenticate(context.Background(), Request{Username: name, Password: []byte(name + "-pw")}); err != nil {
					failed.Do(func() { b.Error(err) })
				}
			})
		}
		wg.Wait()

		b.StopTimer()
		st := v.Stats()
		b.ReportMetric(float64(st.Computed), "hashes/op")
		b.ReportMetric(float64(st.CacheHits), "cachehits/op")
		b.ReportMetric(float64(st.Shared), "shared/op")
		_ = v.Close()
		b.StartTimer()
	}
}

// BenchmarkVerifier_CacheHit measures a Verify served from the cache.
func BenchmarkVerifier_CacheHit(b *testing.B) {
	v := newTestVerifier(b, VerifierConfig{})
	u := testUser(b, &MemStore{}, "alice", "pw")
	ctx := context.Background()
	if ok, err := v.Verify(ctx, u, []byte("pw")); !ok || err != nil {
		b.Fatal("first Verify failed")
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := v.Verify(ctx, u, []byte("pw")); !ok {
			b.Fatal("rejected")
		}
	}
}
