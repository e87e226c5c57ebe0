package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// Starling's command line and configured limits. Most of these tests skip
// on mosquitto, which has neither the flags nor most of the limits.

func TestServe_EnvironmentVariables(t *testing.T) {
	t.Parallel()
	// STARLING_LISTEN and STARLING_DATA_DIR replace --listen and --data-dir.
	b := startBroker(t, brokerOptions{UseEnvForFlags: true})
	requireAlive(t, b)

	spec := v3("env-persist", false)
	c, _ := connectRaw(t, b, "env-persist", spec)
	c.mustSubscribe("env/t", 1)
	c.disconnect()
	b.Restart()

	// The session lives in STARLING_DATA_DIR, so it survives the restart.
	_, ca := connectRaw(t, b, "env-persist", spec)
	if !ca.SessionPresent {
		t.Fatal("Session Present 0 after restart: STARLING_DATA_DIR not used?")
	}
}

func TestServe_JSONLogs(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{LogFormat: "json"})
	requireAlive(t, b)
	b.Stop()

	// Every line the broker wrote is one JSON object with the slog keys.
	lines := 0
	for _, line := range strings.Split(b.Log(), "\n") {
		if line == "" || strings.HasPrefix(line, "=== e2e:") {
			continue
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		for _, key := range []string{"time", "level", "msg"} {
			if _, ok := entry[key]; !ok {
				t.Fatalf("log line lacks %q: %s", key, line)
			}
		}
		lines++
	}
	if lines == 0 {
		t.Fatal("the broker logged nothing")
	}
}

func TestLimits_TopicLengthAndLevels(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{Limits: limits{MaxTopicLength: 32, MaxTopicLevels: 4}})
	watch, _ := connectRaw(t, b, "watch", v3("watch", true))
	watch.mustSubscribe("#", 0)

	cases := []struct{ name, topic string }{
		{"too-long", "t/" + strings.Repeat("x", 40)},
		{"too-deep", "a/b/c/d/e/f"},
	}
	for _, tc := range cases {
		// A topic over limits.max_topic_length or max_topic_levels is never
		// delivered. A 5.0 publisher learns it from a PUBACK reason code
		// of 0x80 or above, or from DISCONNECT; a 3.1.1 one may be closed.
		c, _ := connectRaw(t, b, tc.name, v5(tc.name, true))
		c.send(encodePublish(5, publishSpec{Topic: tc.topic, QoS: 1, ID: 1, Payload: []byte("x")}))
		p, err := c.next(ioTimeout)
		switch {
		case err != nil && isClosed(err):
		case err != nil:
			t.Fatalf("%s: %v", tc.name, err)
		case p.Type == typePuback:
			a, _ := decodeAck(5, p)
			if a.Codes[0] < 0x80 {
				t.Errorf("%s: PUBACK reason %#x, expected a failure code", tc.name, a.Codes[0])
			}
		case p.Type == typeDisconnect:
			if r := disconnectReason(p); r < 0x80 {
				t.Errorf("%s: DISCONNECT reason %#x", tc.name, r)
			}
		default:
			t.Errorf("%s: unexpected %v", tc.name, p)
		}
		watch.expectNoPublish(quietPeriod)

		// The same limits apply to topic filters.
		s, _ := connectRaw(t, b, tc.name+"-sub", v5(tc.name+"-sub", true))
		s.send(encodeSubscribe(5, 1, []subscription{{Filter: tc.topic, Options: 0}}))
		p, err = s.next(ioTimeout)
		switch {
		case err != nil && isClosed(err):
		case err != nil:
			t.Fatalf("%s subscribe: %v", tc.name, err)
		case p.Type == typeSuback:
			a, _ := decodeAck(5, p)
			if len(a.Codes) != 1 || a.Codes[0] < 0x80 {
				t.Errorf("%s: SUBACK codes % x, expected a failure code", tc.name, a.Codes)
			}
		case p.Type == typeDisconnect:
		default:
			t.Errorf("%s subscribe: unexpected %v", tc.name, p)
		}
	}

	// Topics inside both limits still work.
	ok, _ := connectRaw(t, b, "ok", v5("ok", true))
	ok.publish("a/b/c/d", 1, false, "fits")
	if m := watch.expectPublish(ioTimeout); m.Topic != "a/b/c/d" {
		t.Fatalf("got %+v", m)
	}
}

func TestLimits_MaxRetainedMessages(t *testing.T) {
	t.Parallel()
	const limit = 3
	b := startBroker(t, brokerOptions{Limits: limits{MaxRetainedMessages: limit}})
	pub, _ := connectRaw(t, b, "ret-pub", v5("ret-pub", true))

	// Retained messages past limits.max_retained_messages are not stored,
	// and the ones already stored are kept (an acknowledged retained
	// message is never dropped to make room). Replacing a stored topic is
	// not a new message.
	for i := 0; i < limit+2; i++ {
		code := pub.publish(fmt.Sprintf("rl/%d", i), 1, true, fmt.Sprintf("v%d", i))
		t.Logf("retained rl/%d: PUBACK reason %#x", i, code)
		if i < limit && code != 0 {
			t.Fatalf("retained message %d within the limit: PUBACK %#x", i, code)
		}
	}
	if code := pub.publish("rl/0", 1, true, "replaced"); code != 0 {
		t.Fatalf("replacing a stored retained message: PUBACK %#x", code)
	}

	sub, _ := connectRaw(t, b, "ret-sub", v3("ret-sub", true))
	sub.mustSubscribe("rl/#", 1)
	got := map[string]string{}
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
		got[m.Topic] = m.Payload
	}
	expected := map[string]string{"rl/0": "replaced", "rl/1": "v1", "rl/2": "v2"}
	if fmt.Sprint(got) != fmt.Sprint(expected) {
		t.Fatalf("retained store holds %v, expected %v", got, expected)
	}
}

func TestLimits_QueueOverflowPolicy(t *testing.T) {
	t.Parallel()
	const (
		maxQueued   = 5
		maxInflight = 1
		published   = 12
	)
	for _, policy := range []string{"drop_oldest", "drop_newest"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, brokerOptions{Limits: limits{
				MaxQueuedMessages: maxQueued, MaxInflight: maxInflight, QueueOverflow: policy,
			}})
			spec := v3("overflow", false)
			sub, _ := connectRaw(t, b, "overflow", spec)
			sub.mustSubscribe("ovf/t", 1)
			sub.disconnect()

			pub, _ := connectRaw(t, b, "overflow-pub", v3("overflow-pub", true))
			for i := 0; i < published; i++ {
				pub.publish("ovf/t", 1, false, fmt.Sprint(i))
			}

			// limits.queue_overflow decides which end of a full offline
			// queue loses messages. Whether the inflight window counts
			// towards the queue is the broker's choice, so up to maxInflight
			// more may survive.
			sub, _ = connectRaw(t, b, "overflow", spec)
			var got []int
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
				n, err := strconv.Atoi(m.Payload)
				if err != nil {
					t.Fatalf("unexpected payload %q", m.Payload)
				}
				got = append(got, n)
			}
			t.Logf("%s: received %v", policy, got)
			if len(got) < maxQueued || len(got) > maxQueued+maxInflight {
				t.Fatalf("received %d messages, expected %d to %d", len(got), maxQueued, maxQueued+maxInflight)
			}
			first := 0
			if policy == "drop_oldest" {
				first = published - len(got)
			}
			for i, n := range got {
				if n != first+i {
					t.Fatalf("received %v, expected %d consecutive messages from %d", got, len(got), first)
				}
			}
		})
	}
}
