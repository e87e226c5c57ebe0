package breakers

import (
	"testing"
	"time"
)

// TestWill_AfterCrash kills the broker while two clients with wills are
// connected: one with a persistent session and one with Session Expiry
// Interval 0. After the restart a persistent subscriber must receive the will
// of the persistent session. The will of the clean session is lost, because
// such sessions are never written to disk, and docs/configuration.md does not
// say so; the test logs which wills arrived.
func TestWill_AfterCrash(t *testing.T) {
	b := startBroker(t)
	expiry := []byte{0x11, 0x00, 0x00, 0x0e, 0x10} // Session Expiry Interval: 3600 s

	sub, _ := connect(t, b.addr, connectOpts{clientID: "will-watcher", clean: true, props: expiry})
	sub.send(subscribePacket(5, 1, "wills/#", 1))
	sub.expect(typeSuback, 5*time.Second)
	sub.Close()

	connect(t, b.addr, connectOpts{clientID: "persistent", clean: true, props: expiry, willTopic: "wills/persistent", willMsg: "gone", willQoS: 1})
	connect(t, b.addr, connectOpts{clientID: "clean", clean: true, willTopic: "wills/clean", willMsg: "gone", willQoS: 1})

	b.restart()
	sub, ack := connect(t, b.addr, connectOpts{clientID: "will-watcher", props: expiry})
	if ack.body[0]&1 == 0 {
		t.Fatal("the subscriber's session did not survive kill -9")
	}
	got := map[string]bool{}
	for {
		p, err := sub.read(3 * time.Second)
		if err != nil {
			break
		}
		if p.typ != typePublish {
			continue
		}
		topic, id, _ := publishFields(p, 5)
		got[topic] = true
		sub.send(ackPacket(typePuback, id))
	}
	t.Logf("wills received after kill -9 and restart: %v", got)
	if !got["wills/persistent"] {
		t.Error("the will of the persistent session was not published after the restart")
	}
}
