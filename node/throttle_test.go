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
	if v := th.check("10.0.0.1", "dev-1"); v.banned || v.wait != 100*time.Millisecond {
		t.Fatalf("after 2 failures: %+v, want wait 100ms", v)
	}
	for i := 0; i < 3; i++ {
		th.fail("10.0.0.1", "dev-1")
	}
	if v := th.check("10.0.0.1", "dev-1"); !v.banned {
		t.Fatal("not banned after 5 failures")
	}
	// Another address is not affected by the attacker's failures.
	if v := th.check("10.0.0.2", "dev-1"); v.banned || v.wait != 0 {
		t.Fatalf("other address: %+v", v)
	}
	now = now.Add(2 * time.Minute)
	if v := th.check("10.0.0.1", "dev-1"); v.banned || v.wait != 0 {
		t.Fatalf("after the ban: %+v", v)
	}
}

func TestThrottle_SuccessClearsPairOnly(t *testing.T) {
	th := newThrottle(ThrottleConfig{FreeFailures: 1, BanAfter: 3})
	th.fail("10.0.0.1", "guess")
	th.fail("10.0.0.1", "guess")
	th.succeed("10.0.0.1", "dev-1")
	if v := th.check("10.0.0.1", "guess"); v.wait == 0 {
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

func TestThrottle_ParallelAttemptsWaitTheirTurn(t *testing.T) {
	th := newThrottle(ThrottleConfig{FreeFailures: 100, BanAfter: 5, BanFor: time.Minute})
	allowed := 0
	var turns []<-chan struct{}
	for i := 0; i < 60; i++ {
		// Sixty attempts checked before any of them is decided.
		v := th.check("10.0.0.1", "dev-1")
		switch {
		case v.banned:
			t.Fatalf("attempt %d banned although nothing failed", i)
		case v.turn != nil:
			turns = append(turns, v.turn)
		default:
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("%d of 60 parallel attempts were checked, want 5", allowed)
	}
	select {
	case <-turns[0]:
		t.Fatal("turn given before any attempt was decided")
	default:
	}
	// A failure lands: the waiting attempts check again, and the pair is
	// still full (4 pending and 1 failure).
	th.fail("10.0.0.1", "dev-1")
	for _, turn := range turns {
		<-turn
	}
	if v := th.check("10.0.0.1", "dev-1"); v.turn == nil {
		t.Fatalf("after 1 failure and 4 pending: %+v, want to wait", v)
	}
	// The other four fail too: now the pair is banned.
	for range 4 {
		th.fail("10.0.0.1", "dev-1")
	}
	if v := th.check("10.0.0.1", "dev-1"); !v.banned {
		t.Fatalf("after 5 failures: %+v, want banned", v)
	}
	// A success frees every turn on the pair.
	th2 := newThrottle(ThrottleConfig{BanAfter: 1})
	th2.check("10.0.0.1", "dev-1")
	v := th2.check("10.0.0.1", "dev-1")
	if v.turn == nil {
		t.Fatalf("second attempt with ban_after 1: %+v, want to wait", v)
	}
	th2.succeed("10.0.0.1", "dev-1")
	<-v.turn
	if v := th2.check("10.0.0.1", "dev-1"); v != (verdict{}) {
		t.Fatalf("after the success: %+v, want admitted", v)
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
		if v := th.check("10.0.0.1", user); v.banned || v.wait != 0 || (user == "" && v.turn != nil) {
			t.Fatalf("attempt %d (user %q): %+v", i, user, v)
		}
	}
}
