package breakers

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestRetainedBytes_ReplacementBypassesLimit fills the retained store with
// small messages and then replaces each with a large one. The limit
// max_retained_bytes is checked only for new topics, so replacements are
// stored without bound. With the default limits (100,000 topics, 1 MiB
// packets) that is an estimated 100 GiB against a 256 MiB limit, held in
// memory as well as on disk.
func TestRetainedBytes_ReplacementBypassesLimit(t *testing.T) {
	const topics = 40
	const limit = 100_000
	cfg := writeFile(t, t.TempDir(), "starling.yaml", fmt.Sprintf("limits:\n  max_retained_messages: %d\n  max_retained_bytes: %d\n", topics, limit))
	b := startBroker(t, "--config", cfg)

	c, _ := connect(t, b.addr, connectOpts{clientID: "retainer", clean: true})
	id := uint16(0)
	publish := func(topic string, payload []byte) byte {
		t.Helper()
		id++
		c.send(publishPacket(5, topic, payload, 1, id, true, nil))
		p := c.expect(typePuback, 30*time.Second)
		if len(p.body) < 3 {
			return 0
		}
		return p.body[2]
	}
	for i := 0; i < topics; i++ {
		if code := publish(fmt.Sprintf("state/%d", i), []byte("small")); code != 0 {
			t.Fatalf("small retained message %d: PUBACK %#x", i, code)
		}
	}

	rssBefore := b.rssKB()
	big := bytes.Repeat([]byte("x"), 500_000)
	accepted := 0
	for i := 0; i < topics; i++ {
		if code := publish(fmt.Sprintf("state/%d", i), big); code == 0 {
			accepted++
		}
	}
	rssAfter := b.rssKB()

	_, metrics, err := b.httpGet("/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	m := regexp.MustCompile(`(?m)^starling_retained_bytes (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatal("/metrics has no starling_retained_bytes")
	}
	stored, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("max_retained_bytes %d: %d of %d replacements of 500 kB accepted, starling_retained_bytes %.0f, VmRSS %d kB -> %d kB", limit, accepted, topics, stored, rssBefore, rssAfter)
	if stored > limit {
		knownBug(t, "starling_retained_bytes is %.0f with max_retained_bytes %d: replacing a retained topic skips the byte limit", stored, limit)
	}
}
