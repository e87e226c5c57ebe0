package node

import (
	"fmt"
	"testing"
	"time"
)

func TestThrottle_DelaysThenBans(t *testing.T) {
	now := time.Unix(1000, 0)
	th := newThrottle(ThrottleConfig{FreeFailures: 2, BanAfter: 5, BanFor: time.Minute, MaxDelay: time.Second})
	th.now = func() time.Time { return now }

	for i := 0; i < 2; i++ {
		th.fail("10.0.0.1", "dev-1")
	}
	if wait, banned := th.check("10.0.0.1", "dev-1"); banned || wait != 100*time.Millisecond {
		t.Fatalf("after 2 failures: wait %v banned %v, want 100ms", wait, banned)
	}
	for i := 0; i < 3; i++ {
		th.fail("10.0.0.1", "dev-1")
	}
	if _, banned := th.check("10.0.0.1", "dev-1"); !banned {
		t.Fatal("not banned after 5 failures")
	}
	// Another address is not affected by the attacker's failures.
	if wait, banned := th.check("10.0.0.2", "dev-1"); banned || wait != 0 {
		t.Fatalf("other address: wait %v banned %v", wait, banned)
	}
	now = now.Add(2 * time.Minute)
	if wait, banned := th.check("10.0.0.1", "dev-1"); banned || wait != 0 {
		t.Fatalf("after the ban: wait %v banned %v", wait, banned)
	}
}

func TestThrottle_SuccessClearsPairOnly(t *testing.T) {
	th := newThrottle(ThrottleConfig{FreeFailures: 1, BanAfter: 3})
	th.fail("10.0.0.1", "guess")
	th.fail("10.0.0.1", "guess")
	th.succeed("10.0.0.1", "dev-1")
	if wait, _ := th.check("10.0.0.1", "guess"); wait == 0 {
		t.Fatal("the address lost its failures after another user's success")
	}
}

func TestThrottle_BoundedEntries(t *testing.T) {
	th := newThrottle(ThrottleConfig{MaxEntries: 100})
	for i := 0; i < 1000; i++ {
		th.fail("10.0.0."+string(rune('a'+i%26))+string(rune('a'+i/26)), "u")
	}
	if n := len(th.entries); n > 100 {
		t.Fatalf("throttle holds %d entries, limit 100", n)
	}
}

func TestThrottle_ParallelAttemptsCountAsPending(t *testing.T) {
	th := newThrottle(ThrottleConfig{FreeFailures: 100, BanAfter: 5, BanFor: time.Minute})
	allowed := 0
	for i := 0; i < 60; i++ {
		// Sixty attempts checked before any of them is decided.
		if _, banned := th.check("10.0.0.1", "dev-1"); !banned {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("%d of 60 parallel attempts were checked, want 5", allowed)
	}
}

func TestThrottle_StormFromOneAddressNotBanned(t *testing.T) {
	th := newThrottle(ThrottleConfig{FreeFailures: 3, BanAfter: 20, BanFor: time.Minute})
	// A reconnect storm: many devices, each its own user or anonymous,
	// logging in at once from one address, none failing.
	for i := 0; i < 500; i++ {
		user := ""
		if i%2 == 0 {
			user = fmt.Sprintf("dev-%d", i)
		}
		if wait, banned := th.check("10.0.0.1", user); banned || wait != 0 {
			t.Fatalf("attempt %d (user %q): wait %v banned %v", i, user, wait, banned)
		}
	}
}
