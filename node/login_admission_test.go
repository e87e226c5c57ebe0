package node

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/node/packet"
)

// These tests drive the login throttle over real TCP connections. The
// throttle is there to slow down password guessing; it must not refuse a
// client for what other clients did, nor for logins that are merely still
// being checked.

// gatedStore holds every lookup of one user name until release is closed,
// so that a test controls how long logins as that user stay in progress.
type gatedStore struct {
	*auth.MemStore
	name    string
	held    atomic.Int32 // lookups of name that have started
	release chan struct{}
}

func (g *gatedStore) User(ctx context.Context, name string) (auth.User, error) {
	if name == g.name {
		g.held.Add(1)
		select {
		case <-g.release:
		case <-ctx.Done():
			return auth.User{}, ctx.Err()
		}
	}
	return g.MemStore.User(ctx, name)
}

// syncBuffer is a log destination that tests read while the node writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// loginServer starts a node whose loopback listener admits anonymous
// clients, with user "fleet" (password "pw") in a store that holds lookups
// of "fleet" until the returned store's release is closed. Its log goes to
// the returned buffer.
func loginServer(t *testing.T, throttle ThrottleConfig) (*Server, *gatedStore, *syncBuffer) {
	t.Helper()
	gs := &gatedStore{MemStore: &auth.MemStore{}, name: "fleet", release: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-gs.release:
		default:
			close(gs.release)
		}
	})
	u := auth.User{Name: "fleet"}
	if err := u.SetPassword([]byte("pw"), fastParams(), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := gs.MemStore.PutUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := testServer(t, "", func(c *Config) {
		c.Auth.Store = gs
		c.Auth.Throttle = throttle
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	return srv, gs, logs
}

// connectAs dials the node and sends a CONNECT with the given user name and
// password ("" for none), and returns the client and the CONNACK's code as
// the client reads it (for 3.1.1 the return code, as a ReasonCode value).
func connectAs(t *testing.T, srv *Server, version byte, clientID, user, password string) (*rawClient, packet.ReasonCode, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.addr(), 5*time.Second)
	if err != nil {
		return nil, 0, err
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc), version: version}
	cp := &packet.Connect{ProtocolName: "MQTT", ProtocolVersion: version, ClientID: clientID, CleanStart: true}
	if user != "" {
		cp.UsernameFlag, cp.Username = true, user
	}
	if password != "" {
		cp.PasswordFlag, cp.Password = true, []byte(password)
	}
	b, err := cp.Encode(nil, version)
	if err != nil {
		return nil, 0, err
	}
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(b); err != nil {
		return nil, 0, err
	}
	p, err := c.readTimeout(15 * time.Second)
	if err != nil {
		return nil, 0, err
	}
	ack, ok := p.(*packet.Connack)
	if !ok {
		return nil, 0, fmt.Errorf("expected CONNACK, got %T", p)
	}
	return c, ack.ReasonCode, nil
}

// TestLoginThrottle_AnonymousNotRefusedForOthersFailures: on a loopback-only
// listener every local client shares 127.0.0.1. Failed logins of another
// client there must not delay or ban anonymous clients, which present no
// credentials to guess; the guessing client stays banned.
func TestLoginThrottle_AnonymousNotRefusedForOthersFailures(t *testing.T) {
	srv, gs, _ := loginServer(t, ThrottleConfig{FreeFailures: 1, MaxDelay: 10 * time.Millisecond, BanAfter: 3, BanFor: time.Minute})
	close(gs.release)
	for i := range 3 {
		if _, code, err := connectAs(t, srv, packet.Version5, fmt.Sprintf("guess-%d", i), "fleet", "wrong"); err != nil || code != packet.ReasonBadUsernameOrPassword {
			t.Fatalf("wrong password %d: CONNACK 0x%02X, %v; want 0x86", i, byte(code), err)
		}
	}
	for _, v := range []byte{packet.Version311, packet.Version5} {
		c, code, err := connectAs(t, srv, v, fmt.Sprintf("anon-v%d", v), "", "")
		if err != nil || code != packet.ReasonSuccess {
			t.Fatalf("anonymous client (protocol level %d) after another client's failed logins: CONNACK 0x%02X (3.1.1: %d), %v; want 0x00",
				v, byte(code), code.V3ConnackCode(), err)
		}
		c.send(&packet.Pingreq{})
		if _, ok := c.read().(*packet.Pingresp); !ok {
			t.Fatalf("anonymous MQTT v%d client: no PINGRESP", v)
		}
	}
	// The throttle still protects the password: the address is banned for it.
	if _, code, err := connectAs(t, srv, packet.Version5, "fleet-1", "fleet", "pw"); err != nil || code != packet.ReasonNotAuthorized {
		t.Fatalf("right password after 3 failures: CONNACK 0x%02X, %v; want 0x87 (banned)", byte(code), err)
	}
	if n := srv.Stats().AuthFailures["banned"]; n != 1 {
		t.Errorf("banned attempts = %d, want 1 (only the password login)", n)
	}
}

// TestLoginThrottle_SameUserStormWaitsItsTurn: many devices that share one
// account and one address (a NAT, a fleet reconnecting after a restart) log
// in at once and none fails. More than ban_after of them are in progress at
// once, which must make the later ones wait, not ban them.
func TestLoginThrottle_SameUserStormWaitsItsTurn(t *testing.T) {
	const devices = 64
	srv, gs, _ := loginServer(t, ThrottleConfig{})
	codes := make(chan string, devices)
	var wg sync.WaitGroup
	for i := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, code, err := connectAs(t, srv, packet.Version311, fmt.Sprintf("dev-%d", i), "fleet", "pw")
			if err != nil {
				codes <- err.Error()
				return
			}
			codes <- fmt.Sprintf("0x%02X", byte(code))
		}()
	}
	// Hold the first logins until the storm has arrived, as a slow password
	// hash would.
	waitFor(t, 10*time.Second, "logins in progress", func() bool { return gs.held.Load() >= 20 })
	time.Sleep(200 * time.Millisecond)
	close(gs.release)
	wg.Wait()
	close(codes)
	counts := map[string]int{}
	for c := range codes {
		counts[c]++
	}
	if counts["0x00"] != devices {
		t.Fatalf("CONNACK codes of %d logins as one valid user from one address: %v; want all 0x00", devices, counts)
	}
	if st := srv.Stats(); st.ConnectRefused != 0 || st.AuthFailures["banned"] != 0 {
		t.Fatalf("refused %d, banned %d; want none", st.ConnectRefused, st.AuthFailures["banned"])
	}
}

// TestLoginThrottle_BusyWhenTurnNeverComes: when the logins in progress for
// one user and address do not finish within max_delay, the next one is
// refused as an overload: MQTT 5.0 0x89 Server busy, 3.1.1 return code 3
// Server unavailable, never 0x87/5 Not authorized, with a log line and the
// busy metric. The address is not banned for it.
func TestLoginThrottle_BusyWhenTurnNeverComes(t *testing.T) {
	srv, gs, logs := loginServer(t, ThrottleConfig{BanAfter: 2, MaxDelay: 200 * time.Millisecond})
	first := make(chan packet.ReasonCode, 2)
	for i := range 2 {
		go func() {
			_, code, err := connectAs(t, srv, packet.Version5, fmt.Sprintf("held-%d", i), "fleet", "pw")
			if err != nil {
				code = 0xFF
			}
			first <- code
		}()
	}
	waitFor(t, 10*time.Second, "two logins in progress", func() bool { return gs.held.Load() == 2 })

	start := time.Now()
	if _, code, err := connectAs(t, srv, packet.Version5, "late-5", "fleet", "pw"); err != nil || code != packet.ReasonServerBusy {
		t.Fatalf("MQTT 5.0 login while 2 are in progress: CONNACK 0x%02X, %v; want 0x89 Server busy", byte(code), err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("refused after %v; it should wait up to max_delay (200ms) for its turn", waited)
	}
	if _, code, err := connectAs(t, srv, packet.Version311, "late-3", "fleet", "pw"); err != nil || code.V3ConnackCode() != 3 {
		t.Fatalf("MQTT 3.1.1 login while 2 are in progress: return code %d, %v; want 3 Server unavailable", code.V3ConnackCode(), err)
	}
	st := srv.Stats()
	if st.AuthFailures["busy"] != 2 || st.AuthFailures["banned"] != 0 || st.ConnectRefused != 2 {
		t.Errorf("auth failures %v, refused %d; want busy 2, banned 0, refused 2", st.AuthFailures, st.ConnectRefused)
	}
	if log := logs.String(); !strings.Contains(log, "server busy") || !strings.Contains(log, "reason=0x89") {
		t.Errorf("no log line for the busy refusal; log:\n%s", log)
	}

	close(gs.release)
	for range 2 {
		if code := <-first; code != packet.ReasonSuccess {
			t.Fatalf("held login: CONNACK 0x%02X, want 0x00", byte(code))
		}
	}
	if _, code, err := connectAs(t, srv, packet.Version5, "after", "fleet", "pw"); err != nil || code != packet.ReasonSuccess {
		t.Fatalf("login after the overload: CONNACK 0x%02X, %v; want 0x00", byte(code), err)
	}
}

// TestLoginThrottle_ConcurrentGuessesStillLimited: waiting for a turn must
// not let a burst of parallel guesses at one user through: no more than
// ban_after of them are checked, the rest are banned.
func TestLoginThrottle_ConcurrentGuessesStillLimited(t *testing.T) {
	const guesses, banAfter = 30, 5
	srv, gs, _ := loginServer(t, ThrottleConfig{FreeFailures: 100, BanAfter: banAfter, MaxDelay: 5 * time.Second, BanFor: time.Minute})
	codes := make(chan string, guesses)
	var wg sync.WaitGroup
	for i := range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, code, err := connectAs(t, srv, packet.Version5, fmt.Sprintf("bf-%d", i), "fleet", fmt.Sprintf("guess-%d", i))
			if err != nil {
				codes <- err.Error()
				return
			}
			codes <- fmt.Sprintf("0x%02X", byte(code))
		}()
	}
	waitFor(t, 10*time.Second, "guesses in progress", func() bool { return gs.held.Load() >= banAfter })
	time.Sleep(200 * time.Millisecond)
	close(gs.release)
	wg.Wait()
	close(codes)
	counts := map[string]int{}
	for c := range codes {
		counts[c]++
	}
	if counts["0x86"] != banAfter || counts["0x87"] != guesses-banAfter {
		t.Fatalf("CONNACK codes of %d parallel guesses: %v; want %d checked (0x86) and the rest banned (0x87)", guesses, counts, banAfter)
	}
}

// TestLoginThrottle_VerifierQueueFullIsBusy: when the password hashing queue
// is full, a login is refused as an overload (MQTT 5.0 0x89 Server busy,
// 3.1.1 return code 3 Server unavailable), never as Not authorized, and
// counted and logged as busy.
func TestLoginThrottle_VerifierQueueFullIsBusy(t *testing.T) {
	slow := auth.DefaultPBKDF2Params()
	slow.Iterations = 400_000 // about 0.2 s per check, 1.3 s under -race
	logs := &syncBuffer{}
	srv := testServer(t, "", func(c *Config) {
		c.Auth.Verifier = auth.VerifierConfig{Workers: 1, QueueLen: 1, DecoyParams: slow}
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	// Unknown users cost one decoy check each: one runs, one waits in the
	// queue, and the others arrive while both are in progress.
	const attempts = 6
	type result struct {
		version byte
		code    packet.ReasonCode
		err     error
	}
	results := make(chan result, attempts)
	for i := range attempts {
		v := []byte{packet.Version311, packet.Version5}[i%2]
		go func() {
			_, code, err := connectAs(t, srv, v, fmt.Sprintf("ghost-%d", i), fmt.Sprintf("ghost-%d", i), "pw")
			results <- result{v, code, err}
		}()
	}
	busy, checked := 0, 0
	for range attempts {
		r := <-results
		switch {
		case r.err != nil:
			t.Fatalf("login: %v", r.err)
		case r.version == packet.Version5 && r.code == packet.ReasonServerBusy,
			r.version == packet.Version311 && r.code.V3ConnackCode() == 3:
			busy++
		case r.code == packet.ReasonBadUsernameOrPassword:
			checked++
		default:
			t.Fatalf("MQTT v%d login of an unknown user: CONNACK 0x%02X (3.1.1: %d); want bad credentials or server busy",
				r.version, byte(r.code), r.code.V3ConnackCode())
		}
	}
	if busy == 0 || checked == 0 {
		t.Fatalf("%d checked, %d busy; want both", checked, busy)
	}
	if n := srv.Stats().AuthFailures["busy"]; n != uint64(busy) {
		t.Errorf("busy metric %d, want %d", n, busy)
	}
	if !strings.Contains(logs.String(), "connection refused: server busy") {
		t.Errorf("no log line for the busy refusal; log:\n%s", logs.String())
	}
}
