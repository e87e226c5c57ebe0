package e2e

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
)

// MQTT 5.0 features that 3.1.1 clients cannot exercise: session expiry,
// will delay, retain handling, No Local, subscription identifiers, the
// client's Maximum Packet Size and shared subscriptions.

func TestV5_SessionExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	spec := v5("expiry", false, propU32(propSessionExpiry, 2))

	// [MQTT-3.1.2-23] With Session Expiry Interval 2 the session outlives
	// the connection by 2 s.
	c, _ := connectRaw(t, b, "expiry", spec)
	c.mustSubscribe("exp/t", 1)
	c.disconnect()
	time.Sleep(500 * time.Millisecond)
	c, ca := connectRaw(t, b, "expiry", spec)
	if !ca.SessionPresent {
		t.Fatal("reconnect within the expiry interval: Session Present 0")
	}
	c.disconnect()

	// After the interval the session is gone.
	time.Sleep(4 * time.Second)
	c, ca = connectRaw(t, b, "expiry", spec)
	if ca.SessionPresent {
		t.Fatal("reconnect after the expiry interval: Session Present 1")
	}
	c.disconnect()

	// Expiry 0 (the default) ends the session with the connection.
	zero := v5("expiry-zero", false)
	c, _ = connectRaw(t, b, "expiry-zero", zero)
	c.mustSubscribe("exp/z", 1)
	c.disconnect()
	_, ca = connectRaw(t, b, "expiry-zero", zero)
	if ca.SessionPresent {
		t.Fatal("Session Expiry 0: Session Present 1 on reconnect")
	}
}

func TestV5_DisconnectCannotRaiseSessionExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	// Section 3.14.2.2.2: a DISCONNECT that sets a non-zero Session Expiry
	// Interval after CONNECT set 0 is a protocol error (0x82), and the
	// session is not kept.
	c, _ := connectRaw(t, b, "raise", v5("raise", false))
	c.mustSubscribe("raise/t", 1)
	c.send(encodeDisconnect(5, 0, propU32(propSessionExpiry, 60)))
	got := c.expectClosed(ioTimeout)
	for _, p := range got {
		if p.Type != typeDisconnect || disconnectReason(p) != rcProtocolError {
			t.Fatalf("expected nothing or DISCONNECT 0x82, got %v", got)
		}
	}
	_, ca := connectRaw(t, b, "raise", v5("raise", false))
	if ca.SessionPresent {
		t.Fatal("session kept although CONNECT asked for expiry 0")
	}
}

func TestV5_WillDelay(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	watch, _ := connectRaw(t, b, "watch", v3("watch", true))
	watch.mustSubscribe("wd/#", 1)

	delayed := func(id string, delay, expiry uint32) connectSpec {
		spec := v5(id, false, propU32(propSessionExpiry, expiry))
		return withWillSpec(spec, willSpec{Topic: "wd/" + id, Payload: id, QoS: 1, Props: [][]byte{propU32(propWillDelay, delay)}})
	}

	// [MQTT-3.1.2-8] The will waits for its delay: not before 2 s.
	c1, _ := connectRaw(t, b, "c1", delayed("c1", 2, 60))
	// [MQTT-3.1.3-9] A reconnect within the delay cancels the will.
	c2, _ := connectRaw(t, b, "c2", delayed("c2", 2, 60))
	start := time.Now()
	c1.close()
	c2.close()
	time.Sleep(300 * time.Millisecond)
	connectRaw(t, b, "c2-again", v5("c2", false, propU32(propSessionExpiry, 60)))

	m := watch.receive(2*time.Second + ioTimeout)
	elapsed := time.Since(start)
	if m.Payload != "c1" {
		t.Fatalf("got the will of %q, expected only c1's", m.Payload)
	}
	if elapsed < 1800*time.Millisecond {
		t.Fatalf("will published %v after the close, before its 2 s delay", elapsed)
	}
	// The delay is a will property, not a PUBLISH property (section 3.3.2.3).
	watch.expectNoPublish(2 * time.Second)
	t.Logf("will published %v after the close", elapsed.Round(10*time.Millisecond))

	// The session ending first publishes the will at once: expiry 1 s,
	// delay 60 s.
	c3, _ := connectRaw(t, b, "c3", delayed("c3", 60, 1))
	start = time.Now()
	c3.close()
	if m := watch.receive(ioTimeout); m.Payload != "c3" {
		t.Fatalf("got %+v, expected c3's will", m)
	}
	t.Logf("c3's will published %v after the close", time.Since(start).Round(10*time.Millisecond))
}

func TestV5_RetainHandling(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub, _ := connectRaw(t, b, "pub", v3("pub", true))
	pub.publish("rh/a", 1, true, "x")

	sub, _ := connectRaw(t, b, "sub-1", v5("sub-1", true))
	gets := func(options byte) bool {
		t.Helper()
		sub.subscribe("rh/#", options)
		p, err := sub.next(quietPeriod)
		if err != nil {
			return false
		}
		m, err := decodePublish(5, p)
		if err != nil {
			t.Fatal(err)
		}
		sub.ack(m)
		return true
	}

	// [MQTT-3.3.1-9] Retain Handling 0 sends retained messages on every
	// SUBSCRIBE, [MQTT-3.3.1-10] 1 only for a new subscription,
	// [MQTT-3.3.1-11] 2 never.
	steps := []struct {
		name        string
		options     byte
		unsubscribe bool
		expected    bool
	}{
		{"rh0-new", 1 | 0<<4, false, true},
		{"rh0-again", 1 | 0<<4, false, true},
		{"rh1-existing", 1 | 1<<4, true, false},
		{"rh1-new", 1 | 1<<4, true, true},
		{"rh2-new", 1 | 2<<4, false, false},
	}
	for _, s := range steps {
		if got := gets(s.options); got != s.expected {
			t.Errorf("%s: retained message delivered %v, expected %v", s.name, got, s.expected)
		}
		if s.unsubscribe {
			sub.unsubscribe("rh/#")
		}
	}
}

func TestV5_NoLocal(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	// [MQTT-3.8.3-3] No Local: the client's own messages are not sent back.
	c, _ := connectRaw(t, b, "nolocal", v5("nolocal", true))
	if code := c.subscribe("nl/t", 1|0x04); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	c.publish("nl/t", 1, false, "mine")
	c.expectNoPublish(quietPeriod)

	other, _ := connectRaw(t, b, "other", v5("other", true))
	other.publish("nl/t", 1, false, "theirs")
	if m := c.receive(ioTimeout); m.Payload != "theirs" {
		t.Fatalf("got %+v", m)
	}
}

func TestV5_SubscriptionIdentifiers(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	c, ca := connectRaw(t, b, "subid", v5("subid", true))
	if v, ok := ca.Props.u32(propSubIDAvailable); ok && v == 0 {
		t.Skip("broker has subscription identifiers switched off")
	}

	send := func(filter string, id int) {
		t.Helper()
		pid := c.newID()
		c.send(encodeSubscribe(5, pid, []subscription{{Filter: filter, Options: 1}}, propVarint(propSubscriptionID, id)))
		if a, err := decodeAck(5, c.await(typeSuback, ioTimeout)); err != nil || a.Codes[0] != 1 {
			t.Fatalf("SUBACK %+v, %v", a, err)
		}
	}
	send("si/a", 2)
	send("si/#", 3)

	// [MQTT-3.3.4-3] [MQTT-3.3.4-4] [MQTT-3.3.4-5]: one copy carrying both
	// identifiers, or one copy per subscription carrying its own.
	pub, _ := connectRaw(t, b, "pub", v3("pub", true))
	pub.publish("si/a", 1, false, "x")
	var ids []int
	first := c.receive(ioTimeout)
	for _, v := range first.Props[propSubscriptionID] {
		ids = append(ids, int(v.(uint32)))
	}
	if len(ids) == 1 {
		second := c.receive(ioTimeout)
		for _, v := range second.Props[propSubscriptionID] {
			ids = append(ids, int(v.(uint32)))
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []int{2, 3}) {
		t.Fatalf("subscription identifiers %v, expected 2 and 3", ids)
	}
	c.expectNoPublish(quietPeriod)
}

func TestV5_ClientMaximumPacketSize(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	// [MQTT-3.1.2-24] [MQTT-3.1.2-25] The server never sends more than the
	// client's Maximum Packet Size: a larger message is dropped for that
	// client as if delivered, and the connection stays up.
	small, _ := connectRaw(t, b, "small", v5("small", true, propU32(propMaximumPacketSize, 64)))
	small.mustSubscribe("mps/t", 1)
	pub, _ := connectRaw(t, b, "pub", v3("pub", true))
	pub.publish("mps/t", 1, false, string(bytes.Repeat([]byte("L"), 100)))
	pub.publish("mps/t", 1, false, "fits")

	if m := small.receive(ioTimeout); m.Payload != "fits" {
		t.Fatalf("got %d-byte payload, expected only the small message", len(m.Payload))
	}
	small.expectNoPublish(quietPeriod)
	small.ping()
}

func TestV5_SharedSubscriptionOneCopy(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	// Section 4.8.2: each message goes to one member of a share group, and a
	// non-shared subscriber gets its own copy.
	const members, n = 3, 60
	group := make([]*rawClient, members)
	for i := range group {
		group[i], _ = connectRaw(t, b, fmt.Sprintf("member-%d", i), v5(fmt.Sprintf("member-%d", i), true))
		group[i].mustSubscribe("$share/g/jobs", 1)
	}
	plain, _ := connectRaw(t, b, "plain", v5("plain", true))
	plain.mustSubscribe("jobs", 1)

	pub, _ := connectRaw(t, b, "pub", v3("pub", true))
	for i := 0; i < n; i++ {
		pub.publish("jobs", 1, false, strconv.Itoa(i))
	}

	if got := plain.receiveN(n, ioTimeout); len(got) != n {
		t.Fatalf("plain subscriber got %d of %d", len(got), n)
	}
	seen := map[string]int{}
	perMember := make([]int, members)
	for i, m := range group {
		for {
			p, err := m.next(quietPeriod)
			if err != nil {
				break
			}
			msg, err := decodePublish(5, p)
			if err != nil {
				t.Fatal(err)
			}
			m.ack(msg)
			seen[msg.Payload]++
			perMember[i]++
		}
	}
	t.Logf("messages per group member: %v", perMember)
	if len(seen) != n {
		t.Fatalf("the group received %d distinct messages, expected %d", len(seen), n)
	}
	for payload, count := range seen {
		if count != 1 {
			t.Errorf("message %s reached the group %d times", payload, count)
		}
	}
}
