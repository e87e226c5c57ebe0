package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestLimits_QueueByteBoundAndDropAccounting checks the byte bound of an
// offline queue under both overflow policies, and that every dropped message
// is counted in starling_messages_dropped_total and logged for the session.
//
// Small messages first fill the queue by count of bytes, then large ones
// arrive. Under drop_oldest each large arrival must push out as many old
// messages as it takes to get back under max_queued_bytes, not just one:
// otherwise large messages replacing small ones one for one grow the queue far
// past its byte bound.
func TestLimits_QueueByteBoundAndDropAccounting(t *testing.T) {
	if !isStarling() {
		t.Skip("checks Starling's metrics endpoint and log lines")
	}
	t.Parallel()
	const (
		maxBytes  = 8192
		small     = 40
		large     = 30
		largeSize = 2000
		// The broker charges each queued message its topic, its payload
		// and 64 bytes of overhead (node/message.go).
		overhead = 64
	)
	for _, policy := range []string{"drop_oldest", "drop_newest"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			httpAddr := freeTCPAddr(t)
			b := startBroker(t, brokerOptions{
				Limits: limits{MaxQueuedMessages: 100000, MaxQueuedBytes: maxBytes, QueueOverflow: policy},
				Env:    []string{"STARLING_HTTP=" + httpAddr},
			})
			id := "qbytes-" + policy
			spec := v3(id, false)
			sub, _ := connectRaw(t, b, id, spec)
			sub.mustSubscribe("qb/#", 1)
			sub.disconnect()

			pub, _ := connectRaw(t, b, "qbytes-pub", v3("qbytes-pub-"+policy, true))
			var sent []string
			for i := 0; i < small; i++ {
				sent = append(sent, fmt.Sprintf("s%03d", i))
				pub.publish("qb/s", 1, false, sent[len(sent)-1])
			}
			for i := 0; i < large; i++ {
				p := fmt.Sprintf("l%03d-", i)
				sent = append(sent, p+strings.Repeat("x", largeSize-len(p)))
				pub.publish("qb/l", 1, false, sent[len(sent)-1])
			}
			pub.disconnect()

			sub, _ = connectRaw(t, b, id, spec)
			var got []string
			var charged, biggest int
			for {
				p, err := sub.next(2 * quietPeriod)
				if err != nil {
					break
				}
				m, err := decodePublish(4, p)
				if err != nil {
					t.Fatal(err)
				}
				sub.ack(m)
				got = append(got, m.Payload)
				size := len(m.Topic) + len(m.Payload) + overhead
				charged += size
				biggest = max(biggest, size)
			}
			sub.disconnect()
			t.Logf("%s: %d of %d messages kept, %d bytes charged (max_queued_bytes %d)", policy, len(got), len(sent), charged, maxBytes)
			if len(got) == 0 {
				t.Fatal("the offline queue delivered nothing")
			}

			// The queue admits a message while it is below the bound, so it
			// may pass the bound by at most the one message that crossed it.
			if charged > maxBytes+biggest {
				t.Errorf("the offline queue held %d bytes, above max_queued_bytes %d plus one message of %d", charged, maxBytes, biggest)
			}

			// drop_oldest keeps the newest messages, drop_newest the oldest,
			// each as one unbroken run in publish order.
			first := 0
			if policy == "drop_oldest" {
				first = len(sent) - len(got)
			}
			for i, p := range got {
				if p != sent[first+i] {
					t.Fatalf("message %d is %.8q, expected %.8q: %s did not keep one run of messages", i, p, sent[first+i], policy)
				}
			}

			// Counted: the metric accounts for every message not delivered.
			dropped := len(sent) - len(got)
			if n := droppedQueueFull(t, httpAddr); n != dropped {
				t.Errorf("starling_messages_dropped_total{reason=\"queue_full\"} = %d, expected %d", n, dropped)
			}
			// Logged: a warning names the session and the policy.
			want := strings.TrimPrefix(policy, "drop_")
			found := false
			for _, line := range strings.Split(b.Log(), "\n") {
				if strings.Contains(line, "messages dropped for session") && strings.Contains(line, id) && strings.Contains(line, "dropped "+want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no log line reports the drops of %s with %q:\n%s", id, "dropped "+want, b.Log())
			}
		})
	}
}

// freeTCPAddr returns a loopback address whose port was free a moment ago.
func freeTCPAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// droppedQueueFull reads the queue_full drop counter from the node's /metrics.
func droppedQueueFull(t testing.TB, httpAddr string) int {
	t.Helper()
	const series = `starling_messages_dropped_total{reason="queue_full"} `
	// No kept-alive connections: TestMain fails the run on leaked goroutines.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: ioTimeout}
	var value int
	waitFor(t, ioTimeout, func() error {
		resp, err := client.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), series); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
				if err != nil {
					return err
				}
				value = int(f)
				return nil
			}
		}
		return fmt.Errorf("no %s series in /metrics", strings.TrimSpace(series))
	})
	return value
}
