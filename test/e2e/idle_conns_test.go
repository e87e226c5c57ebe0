package e2e

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The idle cell of scripts/bench-compare.sh opens thousands of anonymous
// connections from a few loopback source addresses. Starling refused some of
// them with CONNACK 5 (not authorized) although none had failed a login,
// because its login throttle counted the logins of an address still being
// checked as failures and banned the address. These tests rebuild that
// scenario, and the one where another client's failed logins ban the shared
// loopback address of anonymous clients.

// idleBroker starts a broker for the idle tests. Starling gets a listener
// whose rate limit does not cap a burst of connections, as in the bench;
// mosquitto has no such limit.
func idleBroker(t *testing.T) *broker {
	t.Helper()
	if !isStarling() {
		return startBroker(t, brokerOptions{})
	}
	return startBroker(t, brokerOptions{Command: func(b *broker) (*exec.Cmd, error) {
		conf := filepath.Join(b.dir, "starling.yaml")
		yaml := fmt.Sprintf("listeners:\n  - url: tcp://%s\n    max_conn_rate: 100000\n", b.addr)
		if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
			return nil, err
		}
		return exec.Command(starlingBin, "serve", "--config", conf, "--data-dir", b.dataDir), nil
	}})
}

// randomSourceAddr returns a loopback address in 127.1.0.0/16 for the
// clients of one test, so that tests running at once do not share one.
func randomSourceAddr() net.IP {
	return net.IPv4(127, 1, byte(1+rand.IntN(250)), byte(1+rand.IntN(250)))
}

// idleConn is one client connection of the idle tests.
type idleConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// openIdle connects from source and sends the CONNECT of spec. It returns
// the connection and the CONNACK code; the connection is closed unless the
// code is 0.
func openIdle(b *broker, source net.IP, spec connectSpec, timeout time.Duration) (*idleConn, byte, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: source}, Timeout: timeout}
	conn, err := d.Dial("tcp", b.Addr())
	if err != nil {
		return nil, 0, err
	}
	c := &idleConn{conn: conn, r: bufio.NewReaderSize(conn, 256)}
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(spec.encode()); err != nil {
		conn.Close()
		return nil, 0, err
	}
	p, err := readPacket(c.r)
	if err != nil {
		conn.Close()
		return nil, 0, fmt.Errorf("read CONNACK: %w", err)
	}
	ca, err := decodeConnack(spec.Version, p)
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	conn.SetDeadline(time.Time{})
	if ca.Code != 0 {
		conn.Close()
	}
	return c, ca.Code, nil
}

// ping sends PINGREQ and waits for PINGRESP.
func (c *idleConn) ping(timeout time.Duration) error {
	c.conn.SetDeadline(time.Now().Add(timeout))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := c.conn.Write(encodePingreq()); err != nil {
		return err
	}
	p, err := readPacket(c.r)
	if err != nil {
		return err
	}
	if p.Type != typePingresp {
		return fmt.Errorf("expected PINGRESP, got %v", p)
	}
	return nil
}

// openMany opens n anonymous connections from source, parallel handshakes
// at a time, and fails the test unless the broker accepts every one.
func openMany(t *testing.T, b *broker, source net.IP, n, parallel int, prefix string) []*idleConn {
	t.Helper()
	conns := make([]*idleConn, n)
	t.Cleanup(func() { closeAll(conns) })
	var (
		mu       sync.Mutex
		refused  = map[byte]int{}
		firstErr error
		failures int
	)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, code, err := openIdle(b, source, v3(fmt.Sprintf("%s-%d", prefix, i), true), ioTimeout)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failures++
				if firstErr == nil {
					firstErr = fmt.Errorf("connection %d: %w", i, err)
				}
			case code != 0:
				refused[code]++
			default:
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if failures > 0 || len(refused) > 0 {
		t.Fatalf("%d anonymous connections from %s: %d failed (first: %v), refused by CONNACK code: %v",
			n, source, failures, firstErr, refused)
	}
	return conns
}

func closeAll(conns []*idleConn) {
	for _, c := range conns {
		if c != nil {
			c.conn.Close()
		}
	}
}

// TestIdle_AnonymousConnectionsFromOneAddress opens thousands of anonymous
// connections from one source address, 64 handshakes at a time as the
// bench's idle cell does, closes them all and opens them again at once (a
// reconnect storm, while the broker is still tearing the first ones down),
// holds them, and checks that every one was accepted and still answers a
// PINGREQ.
func TestIdle_AnonymousConnectionsFromOneAddress(t *testing.T) {
	// Not parallel: thousands of connections and their timing need the
	// machine to themselves, and go test runs serial tests first.
	n := scaled(3000, 5000)
	const parallel = 64
	b := idleBroker(t)
	source := randomSourceAddr()

	closeAll(openMany(t, b, source, n, parallel, "first"))
	rssBefore, rssErr := b.RSS()
	start := time.Now()
	conns := openMany(t, b, source, n, parallel, "idle")
	opened := time.Since(start)

	time.Sleep(time.Second)
	alive := 0
	var pingErr error
	for i, c := range conns {
		if err := c.ping(ioTimeout); err != nil {
			if pingErr == nil {
				pingErr = fmt.Errorf("connection %d: %w", i, err)
			}
			continue
		}
		alive++
	}
	if alive != n {
		t.Fatalf("%d of %d connections alive after the hold; first error: %v", alive, n, pingErr)
	}
	if rssAfter, err := b.RSS(); rssErr == nil && err == nil {
		t.Logf("%d connections reopened in %v; broker RSS %.1f MiB, grew %.1f MiB since the first batch closed",
			n, opened.Round(time.Millisecond), float64(rssAfter)/(1<<20), float64(rssAfter-rssBefore)/(1<<20))
	}
}

// TestIdle_AnonymousNotRefusedAfterOthersFailedLogins: on a loopback-only
// listener all local clients may share one address. Another client there
// fails ban_after (20) logins, which bans the address for password logins,
// but anonymous clients present no credentials and must still get in.
func TestIdle_AnonymousNotRefusedAfterOthersFailedLogins(t *testing.T) {
	t.Parallel()
	if !isStarling() {
		t.Skip("mosquitto with allow_anonymous accepts any user name and password")
	}
	b := startBroker(t, brokerOptions{})
	source := randomSourceAddr()
	const failures = 20 // the default ban_after
	const loginTimeout = 60 * time.Second

	// Parallel wrong logins of unknown users: each costs one decoy hash
	// and counts as a failure of the address.
	codes := make(chan string, failures)
	var wg sync.WaitGroup
	for i := range failures {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user, pass := fmt.Sprintf("nobody-%d", i), "wrong"
			spec := v3(fmt.Sprintf("guess-%d", i), true)
			spec.Username, spec.Password = &user, &pass
			_, code, err := openIdle(b, source, spec, loginTimeout)
			if err != nil {
				codes <- err.Error()
				return
			}
			codes <- fmt.Sprintf("%d", code)
		}()
	}
	wg.Wait()
	close(codes)
	got := map[string]int{}
	for c := range codes {
		got[c]++
	}
	if got["4"] != failures {
		t.Fatalf("return codes of %d wrong logins: %v; want all 4 (bad user name or password)", failures, got)
	}

	for _, spec := range []connectSpec{v3("anon-3", true), v5("anon-5", true)} {
		c, code, err := openIdle(b, source, spec, ioTimeout)
		if err != nil {
			t.Fatalf("anonymous client (protocol level %d): %v", spec.Version, err)
		}
		if code != 0 {
			t.Fatalf("anonymous client (protocol level %d) from %s after another client's %d failed logins there: CONNACK code %#x, want 0",
				spec.Version, source, failures, code)
		}
		if err := c.ping(ioTimeout); err != nil {
			t.Fatalf("anonymous client (protocol level %d): %v", spec.Version, err)
		}
		c.conn.Close()
	}

	// The throttle still protects passwords: the address is banned for them.
	user, pass := "nobody-0", "again"
	spec := v3("guess-again", true)
	spec.Username, spec.Password = &user, &pass
	if _, code, err := openIdle(b, source, spec, ioTimeout); err != nil || code != 5 {
		t.Fatalf("password login from the banned address: code %d, %v; want 5 (not authorized)", code, err)
	}
}
