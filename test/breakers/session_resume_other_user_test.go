package breakers

import (
	"testing"
	"time"
)

// TestSessionResume_OtherUserGetsFreshSession stores a message in the
// persistent session of user dev1 (client id dev1) and then connects as user
// dev2 with the same client id. A session belongs to the user that created
// it, so dev2 gets a fresh session (Session Present 0) and never the message
// queued for dev1, although the role rule "commands/%c" would let dev2 read
// it. Debian's mosquitto 2.0.11 hands the session over with `pattern
// readwrite commands/%c`.
func TestSessionResume_OtherUserGetsFreshSession(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "starling.yaml", `auth:
  groups:
    - {name: fleet, roles: [device]}
  roles:
    - name: device
      rules:
        - {action: subscribe, permission: allow, topic: "commands/%c"}
    - name: admin
      rules:
        - {action: all, permission: allow, topic: "#"}
`)
	b := newBroker(t, "--config", cfg)
	b.addUser("dev1", "pw-dev1", "--group", "fleet")
	b.addUser("dev2", "pw-dev2", "--group", "fleet")
	b.addUser("ops", "pw-ops", "--role", "admin")
	b.start()
	expiry := []byte{0x11, 0x00, 0x00, 0x0e, 0x10} // Session Expiry Interval: 3600 s

	dev1, ack := connect(t, b.addr, connectOpts{clientID: "dev1", clean: true, props: expiry, user: ptr("dev1"), pass: ptr("pw-dev1")})
	if code := connackCode(ack); code != 0 {
		t.Fatalf("dev1 CONNACK reason %#x", code)
	}
	dev1.send(subscribePacket(5, 1, "commands/dev1", 1))
	if suback := dev1.expect(typeSuback, 5*time.Second); suback.body[len(suback.body)-1] != 1 {
		t.Fatalf("dev1 SUBACK %x, expected granted QoS 1", suback.body)
	}
	dev1.Close()

	ops, _ := connect(t, b.addr, connectOpts{clientID: "ops", clean: true, user: ptr("ops"), pass: ptr("pw-ops")})
	ops.send(publishPacket(5, "commands/dev1", []byte("secret-for-dev1"), 1, 1, false, nil))
	ops.expect(typePuback, 5*time.Second)

	dev2, ack := connect(t, b.addr, connectOpts{clientID: "dev1", clean: false, props: expiry, user: ptr("dev2"), pass: ptr("pw-dev2")})
	if code := connackCode(ack); code != 0 {
		t.Fatalf("dev2 CONNACK reason %#x", code)
	}
	sessionPresent := ack.body[0]&1 == 1
	p, err := dev2.read(2 * time.Second)
	leaked := err == nil && p.typ == typePublish
	if sessionPresent {
		t.Errorf("user dev2 resumed the session of user dev1: Session Present 1")
	}
	if leaked {
		t.Errorf("user dev2 received the message queued for user dev1")
	}

	// dev1 gets a fresh session too (dev2's replaced its own), and nothing
	// of dev2's.
	dev2.Close()
	again, ack := connect(t, b.addr, connectOpts{clientID: "dev1", clean: false, props: expiry, user: ptr("dev1"), pass: ptr("pw-dev1")})
	if code := connackCode(ack); code != 0 {
		t.Fatalf("dev1 again: CONNACK reason %#x", code)
	}
	if ack.body[0]&1 == 1 {
		t.Errorf("dev1 resumed the session dev2 created")
	}
	again.Close()
}
