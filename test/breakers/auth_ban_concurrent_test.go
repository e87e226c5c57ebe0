package breakers

import (
	"net"
	"sync"
	"testing"
	"time"
)

// TestAuthBan_ConcurrentGuessesBypassBan opens many connections at once from
// one address, each guessing a password. With ban_after: 5 the broker should
// check about five guesses before it bans the address, but a concurrent burst
// gets far more guesses checked (130 of 200 in a manual run with
// ban_after: 10), because every CONNECT passes the ban check before any of
// the failures is counted.
func TestAuthBan_ConcurrentGuessesBypassBan(t *testing.T) {
	const banAfter = 5
	const attempts = 60
	cfg := writeFile(t, t.TempDir(), "starling.yaml", `auth:
  throttle: {free_failures: 2, max_delay: 1s, ban_after: 5, ban_for: 5m}
`)
	b := newBroker(t, "--config", cfg)
	b.addUser("victim", "correct-horse")
	b.start()

	source := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 77)}
	codes := make(chan byte, attempts)
	var wg sync.WaitGroup
	for i := 0; i < attempts; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := net.Dialer{LocalAddr: source, Timeout: 5 * time.Second}
			nc, err := d.Dial("tcp", b.addr)
			if err != nil {
				codes <- 0xfe
				return
			}
			defer nc.Close()
			c := &rawConn{t: t, Conn: nc, r: newReader(nc)}
			pass := "guess-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			if _, err := nc.Write(connectPacket(connectOpts{clientID: "bf", clean: true, user: ptr("victim"), pass: &pass})); err != nil {
				codes <- 0xfe
				return
			}
			p, err := c.read(30 * time.Second)
			if err != nil || p.typ != typeConnack {
				codes <- 0xfd
				return
			}
			codes <- connackCode(p)
		}(i)
	}
	wg.Wait()
	close(codes)

	counts := map[byte]int{}
	for code := range codes {
		counts[code]++
	}
	checked := counts[0x86] // Bad User Name or Password: the guess was checked
	t.Logf("CONNACK codes for %d concurrent guesses: %v", attempts, counts)
	if checked > 2*banAfter {
		knownBug(t, "ban_after %d, but %d of %d concurrent password guesses from one address were checked (0x86) before the ban applied", banAfter, checked, attempts)
	}
}
