package e2e

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Scenarios rebuilt from bug reports against other MQTT brokers. The B number
// in a test name identifies the scenario, and the comment on each test
// states the failure it guards against.

// TestFieldBug_B01_ServerOnlyPackets: a broker crashed when a client sent a
// packet only servers send (CONNACK, SUBACK, UNSUBACK, PINGRESP), or a
// PUBACK before CONNECT. Each such connection must be closed alone.
func TestFieldBug_B01_ServerOnlyPackets(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	probe := newProbe(t, b)
	rssBefore, _ := b.RSS()

	// The exact bytes of the report: a 5.0 CONNECT with Receive Maximum 20
	// and an empty client id, then a CONNACK with flags 1001, then DISCONNECT.
	reportedConnect := []byte{0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C, 0x03, 0x21, 0x00, 0x14, 0x00, 0x00}
	conn3 := func(id string) []byte { return v3(id, true).encode() }
	serverOnly := [][]byte{{0x90, 0x03, 0x00, 0x01, 0x00}, {0xB0, 0x02, 0x00, 0x01}, {0xD0, 0x00}}

	iterations := scaled(50, 1000)
	for i := 0; i < iterations; i++ {
		// A: [MQTT-2.1.3-1] [MQTT-4.13.1-1] the CONNACK type with reserved
		// flags set is malformed, and 5.0 may report it with DISCONNECT 0x81/0x82.
		a := dialRaw(t, b, "A", 5)
		a.send(reportedConnect, []byte{0x29, 0x02, 0x00, 0x01}, []byte{0xE0, 0x00})
		expectOnlyConnackThenClose(t, a, malformed)

		// B: a well-formed CONNACK from a 3.1.1 client [MQTT-4.8.0-1].
		bc := dialRaw(t, b, "B", 4)
		bc.send(conn3("c1"), []byte{0x20, 0x02, 0x00, 0x00})
		expectOnlyConnackThenClose(t, bc, nil)

		// C: SUBACK, UNSUBACK or PINGRESP from a 3.1.1 client.
		if !knownMosquittoGap(t, "3.1.1 SUBACK/UNSUBACK/PINGRESP from a client ignored") {
			c := dialRaw(t, b, "C", 4)
			c.send(conn3("c2"), serverOnly[i%len(serverOnly)])
			expectOnlyConnackThenClose(t, c, nil)
		}

		// D: [MQTT-3.1.0-1] PUBACK as the first packet; no CONNACK.
		d := dialRaw(t, b, "D", 4)
		d.send([]byte{0x40, 0x02, 0x00, 0x01})
		if got := d.expectClosed(ioTimeout); len(got) != 0 {
			t.Fatalf("iteration %d: D got %v, expected a close without reply", i, got)
		}
		a.close()
		bc.close()
		d.close()
		if i%10 == 9 {
			probe.check()
		}
	}
	probe.check()
	requireAlive(t, b)

	rssAfter, err := b.RSS()
	if err == nil && rssBefore > 0 {
		t.Logf("broker RSS %d KiB before, %d KiB after %d iterations", rssBefore>>10, rssAfter>>10, iterations)
		if rssAfter > rssBefore+64<<20 {
			t.Errorf("broker RSS grew by %d MiB over %d rejected connections", (rssAfter-rssBefore)>>20, iterations*4)
		}
	}
}

// expectOnlyConnackThenClose waits for the close of a connection that sent a
// valid CONNECT followed by a protocol error: a successful CONNACK may come
// first, and for 5.0 a DISCONNECT with one of reasons (required for Starling).
func expectOnlyConnackThenClose(t testing.TB, c *rawClient, reasons []byte) {
	t.Helper()
	got := c.expectClosed(ioTimeout)
	if len(got) > 0 && got[0].Type == typeConnack {
		if len(got[0].Body) < 2 || got[0].Body[1] != 0 {
			t.Fatalf("%s: CONNACK %v, expected success for a valid CONNECT", c.name, got[0])
		}
		got = got[1:]
	}
	if c.version != 5 || reasons == nil {
		if len(got) != 0 {
			t.Fatalf("%s: expected a close after CONNACK, got %v", c.name, got)
		}
		return
	}
	if len(got) == 0 {
		if isStarling() {
			t.Fatalf("%s: closed without DISCONNECT; expected a reason code in % x", c.name, reasons)
		}
		return
	}
	if len(got) != 1 || got[0].Type != typeDisconnect || !containsByte(reasons, disconnectReason(got[0])) {
		t.Fatalf("%s: expected DISCONNECT with a reason in % x, got %v", c.name, reasons, got)
	}
}

// TestFieldBug_B04_ClientIDsAndUTF8: brokers accepted empty ids with clean
// session 0, gave two empty-id clients the same id, and accepted ids and
// topics with U+0000 or ill-formed UTF-8.
func TestFieldBug_B04_ClientIDsAndUTF8(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	watch, _ := connectRaw(t, b, "sub-1", v3("sub-1", true))
	watch.mustSubscribe("#", 0)

	// 1. [MQTT-3.1.3-8] 3.1.1 empty id with clean session 0: CONNACK 0x02.
	c := dialRaw(t, b, "empty-clean0", 4)
	c.send([]byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x00, 0x00, 0x3C, 0x00, 0x00})
	if c.expectRefused(0x02) == nil {
		t.Fatal("empty id with clean session 0: closed without CONNACK 0x02")
	}

	// 2. [MQTT-3.1.3-6] Two empty-id clean clients get distinct ids: neither
	// takes the other over, and each gets only its own messages.
	e1, _ := connectRaw(t, b, "empty-1", v3("", true))
	e1.mustSubscribe("e/1", 1)
	e2, _ := connectRaw(t, b, "empty-2", v3("", true))
	e2.mustSubscribe("e/2", 1)
	time.Sleep(time.Duration(scaled(2, 10)) * time.Second)
	e1.publish("e/2", 1, false, "for e2")
	e2.publish("e/1", 1, false, "for e1")
	if m := e1.receive(ioTimeout); m.Payload != "for e1" {
		t.Fatalf("empty-1 got %+v", m)
	}
	if m := e2.receive(ioTimeout); m.Payload != "for e2" {
		t.Fatalf("empty-2 got %+v", m)
	}
	e1.expectNoPublish(quietPeriod)
	e2.expectNoPublish(quietPeriod / 2)
	drain(watch)

	// 3. [MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16] 5.0 allows an empty id
	// with either clean start, and assigns a unique id in CONNACK.
	_, ca0 := connectRaw(t, b, "empty-5-start0", v5("", false, propU32(propSessionExpiry, 60)))
	_, ca1 := connectRaw(t, b, "empty-5-start1", v5("", true))
	id0, _ := ca0.Props.str(propAssignedClientID)
	id1, _ := ca1.Props.str(propAssignedClientID)
	if id0 == "" || id1 == "" || id0 == id1 {
		t.Fatalf("assigned client ids %q and %q, expected two distinct non-empty ids", id0, id1)
	}

	// 4. and 5. [MQTT-1.5.3-1] [MQTT-1.5.3-2] An id with U+0000 or bytes that
	// are not UTF-8 makes CONNECT malformed: close, perhaps after a refusal,
	// never CONNACK 0x00.
	for name, connect := range map[string][]byte{
		"nul-id":   {0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x03, 'a', 0x00, 'b'},
		"ff-fe-id": {0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02, 0xFF, 0xFE},
	} {
		c := dialRaw(t, b, name, 4)
		c.send(connect)
		c.expectRefused(0x02)
	}

	// 6. [MQTT-4.7.3-2] SUBSCRIBE to "a<NUL>b": close, no SUBACK.
	s, _ := connectRaw(t, b, "c1", v3("c1", true))
	s.send([]byte{0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', 0x00, 'b', 0x00})
	if got := s.expectClosed(ioTimeout); len(got) != 0 {
		t.Fatalf("SUBSCRIBE with U+0000: got %v, expected a close without SUBACK", got)
	}

	// 7. PUBLISH to topic bytes C3 28 (ill-formed UTF-8): the publisher is
	// closed and the subscriber to "#" gets nothing and stays connected.
	p, _ := connectRaw(t, b, "c2", v3("c2", true))
	p.send([]byte{0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 'x'})
	p.expectProtocolClose()
	watch.expectNoPublish(quietPeriod)
	watch.ping()

	// No collision among many empty-id connects.
	seen := map[string]bool{}
	for i := 0; i < scaled(100, 1000); i++ {
		c, ca := connectRaw(t, b, "many", v5("", true))
		id, _ := ca.Props.str(propAssignedClientID)
		if id == "" || seen[id] {
			t.Fatalf("connect %d: assigned client id %q is empty or reused", i, id)
		}
		seen[id] = true
		c.disconnect()
	}
}

// drain discards whatever the client has received so far.
func drain(c *rawClient) {
	for {
		if _, err := c.next(100 * time.Millisecond); err != nil {
			return
		}
	}
}

// TestFieldBug_B05_HashMatchesParent: a subscription "sport/#" did not get
// messages published to "sport", live or retained.
func TestFieldBug_B05_HashMatchesParent(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	filters := []string{"sport/#", "+/#", "#", "sport/tennis/player1/#"}
	subs := make([]*rawClient, len(filters))
	for i, f := range filters {
		subs[i], _ = connectRaw(t, b, fmt.Sprintf("sub-%d", i+1), v3(fmt.Sprintf("sub-%d", i+1), true))
		subs[i].mustSubscribe(f, 1)
	}
	pub, _ := connectRaw(t, b, "pub-1", v3("pub-1", true))
	for _, topic := range []string{"sport", "sport/", "sport/tennis/player1", "sports"} {
		pub.publish(topic, 1, false, topic)
	}

	// "#" also matches the parent level (non-normative example in section
	// 4.7.1.2; delivery to every matching subscription is [MQTT-4.5.0-1]).
	expected := [][]string{
		{"sport", "sport/", "sport/tennis/player1"},
		{"sport", "sport/", "sport/tennis/player1", "sports"},
		{"sport", "sport/", "sport/tennis/player1", "sports"},
		{"sport/tennis/player1"},
	}
	for i, sub := range subs {
		var got []string
		for _, m := range sub.receiveN(len(expected[i]), ioTimeout) {
			got = append(got, m.Topic)
		}
		if !slices.Equal(got, expected[i]) {
			t.Errorf("%q received %v, expected %v", filters[i], got, expected[i])
		}
		sub.expectNoPublish(quietPeriod)
	}

	// The retained index must apply the same rule.
	pub.publish("sport/tennis/player1", 1, true, "m-parent")
	for i, f := range []string{"sport/tennis/player1/#", "sport/#"} {
		sub, _ := connectRaw(t, b, fmt.Sprintf("sub-%d", i+5), v3(fmt.Sprintf("sub-%d", i+5), true))
		sub.mustSubscribe(f, 1)
		m := sub.receive(ioTimeout)
		if m.Payload != "m-parent" || !m.Retain {
			t.Errorf("%q: got %+v, expected retained m-parent with RETAIN=1", f, m)
		}
	}
}

// TestFieldBug_B07_WildcardsSkipDollarTopics: "#" and "+/#" subscribers
// received the broker's $SYS traffic.
func TestFieldBug_B07_WildcardsSkipDollarTopics(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	// [MQTT-4.7.2-1] Filters that start with a wildcard never match a topic
	// that starts with "$".
	wild := []string{"#", "+/#", "+/+/+", "+/x", "$share/g/#"}
	subs := make([]*rawClient, len(wild))
	for i, f := range wild {
		subs[i], _ = connectRaw(t, b, "wild "+f, v5(fmt.Sprintf("sub-%d", i+1), true))
		subs[i].mustSubscribe(f, 0)
	}
	sys, _ := connectRaw(t, b, "sub-5", v5("sub-5", true))
	sys.mustSubscribe("$SYS/#", 0)
	dollar, _ := connectRaw(t, b, "dollar", v5("dollar", true))
	dollar.mustSubscribe("$x/#", 0)

	pub, _ := connectRaw(t, b, "pub-1", v5("pub-1", true))
	pub.publish("$x/x", 0, false, "client dollar topic")
	pub.publish("$SYS/fake", 0, false, "spoofed")

	// Let the broker's own $SYS messages flow for a while.
	window := time.Duration(scaled(3, 10)) * time.Second
	deadline := time.Now().Add(window)
	var sysTopics []string
	for time.Now().Before(deadline) {
		p, err := sys.next(time.Until(deadline))
		if err != nil {
			break
		}
		if m, err := decodePublish(5, p); err == nil {
			if m.Topic == "$SYS/fake" {
				t.Errorf("a client's publish to $SYS/fake reached a $SYS/# subscriber")
			}
			sysTopics = append(sysTopics, m.Topic)
		}
	}
	dollarOK := false
	if p, err := dollar.next(quietPeriod); err == nil && p.Type == typePublish {
		dollarOK = true
	}
	t.Logf("%d $SYS messages in %v; client publish to $x/x delivered: %v", len(sysTopics), window, dollarOK)
	if len(sysTopics) == 0 && !dollarOK {
		t.Skip("no $-topic message flowed (no $SYS and client $ topics rejected), so [MQTT-4.7.2-1] cannot be observed")
	}

	// An explicit "$SYS/+/..." filter built from a real topic matches it.
	if len(sysTopics) > 0 {
		levels := strings.Split(sysTopics[0], "/")
		if len(levels) >= 3 {
			levels[1] = "+"
			filter := strings.Join(levels, "/")
			sub6, _ := connectRaw(t, b, "sub-6", v5("sub-6", true))
			sub6.mustSubscribe(filter, 0)
			if m := sub6.expectPublish(ioTimeout + window); !strings.HasPrefix(m.Topic, "$SYS/") {
				t.Errorf("%q delivered %q", filter, m.Topic)
			}
		}
	}

	for i, sub := range subs {
		for {
			p, err := sub.next(100 * time.Millisecond)
			if err != nil {
				break
			}
			if m, _ := decodePublish(5, p); strings.HasPrefix(m.Topic, "$") {
				t.Errorf("filter %q received %q", wild[i], m.Topic)
			}
		}
	}
}

// TestFieldBug_B09_ReceiveMaximum: brokers ignored Receive Maximum in one
// direction or the other, and delivered an offline backlog out of order.
func TestFieldBug_B09_ReceiveMaximum(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{Limits: limits{ReceiveMaximum: 10, MaxInflight: 10}})

	t.Run("server-limit", func(t *testing.T) {
		if knownMosquittoGap(t, "answers PUBREC 0x97 instead of DISCONNECT 0x93") {
			t.SkipNow()
		}
		// 5.0 [MQTT-3.3.4-7]: a client that exceeds the server's Receive
		// Maximum gets DISCONNECT 0x93.
		pub, ca := connectRaw(t, b, "pub-1", v5("pub-1", true))
		limit, ok := ca.Props.u32(propReceiveMaximum)
		if !ok || limit > 1000 {
			t.Skipf("server Receive Maximum %d (present %v) is too large to exceed in a test", limit, ok)
		}
		t.Logf("server Receive Maximum %d", limit)
		for id := 1; id <= int(limit); id++ {
			pub.send(encodePublish(5, publishSpec{Topic: "rm/in", QoS: 2, ID: uint16(id), Payload: []byte("x")}))
			pub.awaitAck(typePubrec, uint16(id))
		}
		pub.send(encodePublish(5, publishSpec{Topic: "rm/in", QoS: 2, ID: uint16(limit + 1), Payload: []byte("x")}))
		pub.expectProtocolClose(rcReceiveMaximumExceeded)
	})

	t.Run("client-limit", func(t *testing.T) {
		// 5.0 [MQTT-3.3.4-9]: no more than the client's Receive Maximum of
		// unacknowledged PUBLISHes, [MQTT-4.9.0-3] other packets still flow,
		// and each PUBACK lets the next one out at once.
		sub := dialRaw(t, b, "sub-1", 5)
		sub.send([]byte{0x10, 0x12, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C, 0x03, 0x21, 0x00, 0x02, 0x00, 0x02, 'r', '1'})
		if ca, err := decodeConnack(5, sub.await(typeConnack, ioTimeout)); err != nil || ca.Code != 0 {
			t.Fatalf("CONNACK %+v, %v", ca, err)
		}
		sub.mustSubscribe("rm/t", 1)
		pub, _ := connectRaw(t, b, "pub-2", v5("pub-2", true))
		for i := 0; i < 5; i++ {
			pub.publish("rm/t", 1, false, strconv.Itoa(i))
		}

		window := []publishMsg{sub.expectPublish(ioTimeout), sub.expectPublish(ioTimeout)}
		sub.expectNoPublish(quietPeriod)
		start := time.Now()
		sub.ping()
		t.Logf("PINGRESP with a full window after %v", time.Since(start).Round(time.Millisecond))

		if knownMosquittoGap(t, "after a PUBACK sends two PUBLISHes, exceeding Receive Maximum 2") {
			return
		}
		checked, arrived := 0, 2
		for checked < 5 {
			m := window[0]
			window = window[1:]
			if m.Payload != strconv.Itoa(checked) {
				t.Fatalf("got %q, expected %d: out of order", m.Payload, checked)
			}
			checked++
			sub.send(encodeAck(typePuback, m.ID))
			if arrived < 5 {
				start := time.Now()
				window = append(window, sub.expectPublish(timingSlack(2*time.Second)))
				t.Logf("PUBLISH %d followed its PUBACK after %v", arrived, time.Since(start).Round(time.Millisecond))
				arrived++
			}
			sub.expectNoPublish(quietPeriod / 2)
		}
	})

	t.Run("backlog-order", func(t *testing.T) {
		// [MQTT-4.6.0-6] An offline backlog larger than the window arrives
		// in order, and starts at once after CONNACK.
		spec := v3("sub-2", false)
		sub, _ := connectRaw(t, b, "sub-2", spec)
		sub.mustSubscribe("ord/t", 1)
		sub.disconnect()
		pub, _ := connectRaw(t, b, "pub-2b", v3("pub-2b", true))
		for i := 1; i <= 100; i++ {
			pub.publish("ord/t", 1, false, strconv.Itoa(i))
		}

		sub, _ = connectRaw(t, b, "sub-2", spec)
		start := time.Now()
		first := sub.receive(timingSlack(2 * time.Second))
		t.Logf("first backlog message %v after CONNACK", time.Since(start).Round(time.Millisecond))
		got := []string{first.Payload}
		for len(got) < 100 {
			m := sub.receive(ioTimeout)
			if m.Dup && slices.Contains(got, m.Payload) {
				continue
			}
			got = append(got, m.Payload)
		}
		for i, p := range got {
			if p != strconv.Itoa(i+1) {
				t.Fatalf("backlog message %d is %q: out of order", i+1, p)
			}
		}
	})
}

// TestFieldBug_B11_CleanStartDiscardsSession: after a persistent session,
// a clean connect kept stale state, or a later connect inherited the
// subscriptions of a clean session.
func TestFieldBug_B11_CleanStartDiscardsSession(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub, _ := connectRaw(t, b, "pub-1", v3("pub-1", true))

	cases := []struct {
		name                 string
		persistent, clean    connectSpec
		takeoverA, takeoverB connectSpec
	}{
		{"v3", v3("dev1", false), v3("dev1", true), v3("c9", true), v3("c9", false)},
		{"v5",
			v5("dev1-5", false, propU32(propSessionExpiry, 300)), v5("dev1-5", true),
			v5("c9-5", true), v5("c9-5", false, propU32(propSessionExpiry, 300))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := "cs/" + tc.name
			// 1. persistent session with a subscription.
			d, _ := connectRaw(t, b, "dev1", tc.persistent)
			d.mustSubscribe(topic, 1)
			d.disconnect()

			// 2. [MQTT-3.1.2-6] (5.0 [MQTT-3.1.2-4]) clean start discards it:
			// Session Present 0 [MQTT-3.2.2-1], and the new subscription
			// gets each message once.
			d, ca := connectRaw(t, b, "dev1", tc.clean)
			if ca.SessionPresent {
				t.Fatal("clean connect: Session Present 1")
			}
			d.mustSubscribe(topic, 1)
			pub.publish(topic, 0, false, "q0")
			pub.publish(topic, 1, false, "q1")
			for _, payload := range []string{"q0", "q1"} {
				if m := d.receive(ioTimeout); m.Payload != payload {
					t.Fatalf("got %q, expected %q", m.Payload, payload)
				}
			}
			d.expectNoPublish(quietPeriod)
			d.disconnect()

			// 3. The clean session ended with its connection: a persistent
			// connect finds nothing [MQTT-3.2.2-3] and gets no messages.
			d, ca = connectRaw(t, b, "dev1", tc.persistent)
			if ca.SessionPresent {
				t.Fatal("persistent connect after a clean session: Session Present 1")
			}
			pub.publish(topic, 1, false, "stale")
			d.expectNoPublish(quietPeriod)
			d.disconnect()

			// 4. A clean session taken over by a persistent connect is not
			// inherited.
			topic9 := "my/topic/" + tc.name
			a, _ := connectRaw(t, b, "c9-a", tc.takeoverA)
			a.mustSubscribe(topic9, 1)
			c, ca := connectRaw(t, b, "c9-b", tc.takeoverB)
			if ca.SessionPresent {
				t.Fatal("takeover of a clean session: Session Present 1")
			}
			a.expectClosed(ioTimeout)
			pub.publish(topic9, 1, false, "inherited?")
			c.expectNoPublish(quietPeriod)
		})
	}
}

// TestFieldBug_B12_SessionsSurviveRestart: queued messages of a persistent
// session were lost or reduced to the last one across a restart.
func TestFieldBug_B12_SessionsSurviveRestart(t *testing.T) {
	t.Parallel()

	for _, variant := range []string{"graceful", "kill"} {
		t.Run(variant, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, brokerOptions{})
			spec := v3("p1", false)
			p1, _ := connectRaw(t, b, "p1", spec)
			p1.mustSubscribe("pr/t", 2)
			p1.disconnect()

			pub, _ := connectRaw(t, b, "pub-1", v3("pub-1", true))
			for _, m := range []string{"m1", "m2", "m3"} {
				pub.publish("pr/t", 1, false, m)
			}
			// Kill right after the PUBACK for m3: it promised the message.
			if variant == "kill" {
				crash(t, b)
			} else {
				b.Stop()
			}
			b.Start()

			expected := []string{"m1", "m2", "m3"}
			if variant == "graceful" {
				pub, _ = connectRaw(t, b, "pub-1", v3("pub-1", true))
				pub.publish("pr/t", 1, false, "m4")
				expected = append(expected, "m4")
			}

			// [MQTT-3.1.2-4] [MQTT-3.1.2-5] The session and its queue
			// survive; [MQTT-4.6.0-6] in order, once each, at QoS 1 (the
			// published QoS, below the granted 2).
			p1, ca := connectRaw(t, b, "p1", spec)
			if !ca.SessionPresent {
				t.Fatal("Session Present 0 after restart")
			}
			for i, m := range p1.receiveN(len(expected), ioTimeout) {
				if m.Payload != expected[i] || m.QoS != 1 {
					t.Fatalf("message %d: %q at QoS %d, expected %q at QoS 1", i, m.Payload, m.QoS, expected[i])
				}
			}
			p1.expectNoPublish(quietPeriod)
		})
	}

	t.Run("inflight", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, brokerOptions{})
		spec := v3("p1", false)
		p1, _ := connectRaw(t, b, "p1", spec)
		p1.mustSubscribe("pr/t", 2)
		pub, _ := connectRaw(t, b, "pub-1", v3("pub-1", true))
		pub.publish("pr/t", 1, false, "m5")

		// p1 receives m5 and never acknowledges it.
		m5 := p1.expectPublish(ioTimeout)
		crash(t, b)
		b.Start()

		// [MQTT-4.4.0-1] On resume it is sent again with DUP=1 and the same id.
		p1, _ = connectRaw(t, b, "p1", spec)
		again := p1.expectPublish(ioTimeout)
		if again.Payload != "m5" || !again.Dup || again.ID != m5.ID {
			t.Fatalf("resent %+v, expected m5 with DUP=1 and id %d", again, m5.ID)
		}
		p1.ack(again)
		p1.expectNoPublish(quietPeriod)
	})
}

// TestFieldBug_B18_KeepaliveOneAndHalf: a broker used 1.0 x keepalive and
// dropped clients that pinged in time; another never closed timed-out sockets.
func TestFieldBug_B18_KeepaliveOneAndHalf(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	// The watcher has no keepalive: the parallel subtests may start long
	// after it connects, when the suite has no free slot, and a keepalive
	// would rightly close it before ka2's will arrives.
	watchSpec := v3("watch", true)
	watchSpec.Keepalive = 0
	watch, _ := connectRaw(t, b, "watch", watchSpec)
	watch.mustSubscribe("ka/dead", 1)

	t.Run("ka1-pings-at-1.33x", func(t *testing.T) {
		t.Parallel()
		// Keepalive 6 s with a PINGREQ every 8 s (1.33 x): never closed.
		keepalive, interval, pings := 6, 8*time.Second, 2
		if fullRun() {
			keepalive, interval, pings = 10, 14*time.Second, 8
		}
		spec := v3("ka1", true)
		spec.Keepalive = uint16(keepalive)
		c, _ := connectRaw(t, b, "ka1", spec)
		for i := 0; i < pings; i++ {
			c.expectOpen(interval)
			c.ping()
		}
	})

	t.Run("ka2-silent-with-will", func(t *testing.T) {
		t.Parallel()
		// [MQTT-3.1.2-24] Keepalive 4 s, silent: closed at 6 s (1.5 x),
		// and the will is published.
		spec := withWillSpec(v3("ka2", true), willSpec{Topic: "ka/dead", Payload: "ka2", QoS: 1})
		spec.Keepalive = 4
		c, _ := connectRaw(t, b, "ka2", spec)
		start := time.Now()
		closed, _ := c.closedWithin(keepaliveDeadline(t, 4*time.Second))
		elapsed := time.Since(start)
		if !closed {
			t.Fatalf("still open %v after the last packet", elapsed)
		}
		if elapsed < 5*time.Second {
			t.Fatalf("closed %v after the last packet, before 1.5 x 4 s minus 1 s", elapsed)
		}
		t.Logf("closed after %v", elapsed.Round(10*time.Millisecond))

		// Only ka2 has a will, so the watcher gets exactly one message.
		if m := watch.receive(ioTimeout); m.Payload != "ka2" {
			t.Fatalf("will watcher got %+v", m)
		}
		watch.expectNoPublish(quietPeriod)
	})

	t.Run("ka3-zero-silent", func(t *testing.T) {
		t.Parallel()
		spec := v3("ka3", true)
		spec.Keepalive = 0
		c, _ := connectRaw(t, b, "ka3", spec)
		c.expectOpen(time.Duration(scaled(8, 300)) * time.Second)
		c.ping()
	})

	t.Run("ka4-server-keep-alive", func(t *testing.T) {
		t.Parallel()
		// 5.0 [MQTT-3.2.2-21]: if CONNACK carries Server Keep Alive, the
		// client uses it, so the server must enforce that value.
		spec := v5("ka4", true)
		spec.Keepalive = 3
		c, ca := connectRaw(t, b, "ka4", spec)
		keepalive := 3 * time.Second
		if v, ok := ca.Props.u32(propServerKeepAlive); ok {
			t.Logf("Server Keep Alive %d s", v)
			keepalive = time.Duration(v) * time.Second
			if v == 0 || v > 10 {
				t.Skipf("Server Keep Alive %d s is outside what this test can wait for", v)
			}
		}
		start := time.Now()
		closed, _ := c.closedWithin(keepaliveDeadline(t, keepalive))
		elapsed := time.Since(start)
		if !closed {
			t.Fatalf("still open %v after the last packet, keepalive %v", elapsed, keepalive)
		}
		if elapsed < keepalive {
			t.Fatalf("closed %v after the last packet, before 1.0 x %v", elapsed, keepalive)
		}
	})

}

// TestFieldBug_B19_TakeoverRace: after a takeover, the old connection's
// cleanup removed the subscriptions or the registration of the new one.
func TestFieldBug_B19_TakeoverRace(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub, _ := connectRaw(t, b, "pub-1", v3("pub-1", true))

	type pair struct {
		old, new *rawClient
		topic    string
		version  byte
	}
	iterations := scaled(20, 200)
	pairs := make([]pair, iterations)
	pause := func() { time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond) }

	for i := range pairs {
		version := byte(4)
		if i%2 == 1 {
			version = 5
		}
		id := fmt.Sprintf("tk%d", i)
		topic := fmt.Sprintf("tk/%d", i)
		spec := connectSpec{Version: version, ClientID: id, Clean: false, Keepalive: 3}
		if version == 5 {
			spec.Props = [][]byte{propU32(propSessionExpiry, 300)}
		}

		// 1. The first connection subscribes and then freezes: it neither
		// reads nor writes again, so its keepalive runs out later.
		old, _ := connectRaw(t, b, id+"-old", spec)
		old.mustSubscribe(topic+"/#", 1)
		pause()

		// 2. A second connection with the same id resumes the session
		// without subscribing [MQTT-3.1.4-2] [MQTT-3.2.2-2].
		spec.Keepalive = 60
		nc, ca := connectRaw(t, b, id+"-new", spec)
		if !ca.SessionPresent {
			t.Fatalf("%s: takeover got Session Present 0", id)
		}
		pause()
		pub.publish(topic+"/x", 1, false, "first")
		pairs[i] = pair{old: old, new: nc, topic: topic, version: version}
	}

	for _, p := range pairs {
		if m := p.new.receive(ioTimeout); m.Payload != "first" {
			t.Fatalf("%s: got %+v", p.topic, m)
		}
	}

	// 4. Wait past 1.5 x the frozen sockets' keepalive of 3 s, publishing
	// meanwhile. Nothing the old connections' timers do may touch the
	// sessions that the new connections now own.
	for round := 0; round < 3; round++ {
		time.Sleep(2 * time.Second)
		for _, p := range pairs {
			pub.publish(p.topic+"/x", 1, false, fmt.Sprintf("round %d", round))
		}
		for _, p := range pairs {
			if m := p.new.receive(ioTimeout); m.Payload != fmt.Sprintf("round %d", round) {
				t.Fatalf("%s: round %d got %+v", p.topic, round, m)
			}
		}
	}

	for _, p := range pairs {
		p.new.ping()
		// The old connection was closed at the takeover; 5.0 with DISCONNECT 0x8E.
		got := p.old.expectClosed(ioTimeout)
		if p.version == 5 && !(len(got) == 0 && knownMosquittoGap(t, "no DISCONNECT 0x8E on takeover")) {
			if len(got) != 1 || got[0].Type != typeDisconnect || disconnectReason(got[0]) != rcSessionTakenOver {
				t.Errorf("%s: old 5.0 connection got %v, expected DISCONNECT 0x8E", p.topic, got)
			}
		}
	}
}
