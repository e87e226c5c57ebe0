package conformance

import (
	"context"
	"testing"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/node/packet"
)

// startSecuredBroker returns an in-process node for tests that store users
// and rules in it. It skips against an external broker, whose users and
// rules the suite cannot set.
func startSecuredBroker(t testing.TB) *broker {
	t.Helper()
	b := startBroker(t)
	if b.srv == nil {
		t.Skipf("needs users and rules in the node's store; %s points at an external broker", envAddr)
	}
	return b
}

// addUser stores u with password in the node's store and reloads the rules,
// so that they apply to the next check. It also stores the SCRAM-SHA-256
// credential that enhanced authentication needs.
func addUser(t testing.TB, b *broker, u auth.User, password string) {
	t.Helper()
	ctx := context.Background()

	// 1,000 PBKDF2 iterations is the node's minimum. The default of 210,000
	// costs about 0.1 s per hash (node/auth package doc), which adds up under
	// -race.
	params := auth.DefaultPBKDF2Params()
	params.Iterations = 1000
	if err := u.SetPassword([]byte(password), params, 0); err != nil {
		t.Fatalf("set password of %s: %v", u.Name, err)
	}
	if _, err := b.srv.AuthStore().PutUser(ctx, u); err != nil {
		t.Fatalf("store user %s: %v", u.Name, err)
	}
	if err := b.srv.ReloadAuth(ctx); err != nil {
		t.Fatalf("reload rules: %v", err)
	}
}

// addRole stores a role and reloads the rules.
func addRole(t testing.TB, b *broker, r auth.Role) {
	t.Helper()
	ctx := context.Background()
	if err := b.srv.AuthStore().PutRole(ctx, r); err != nil {
		t.Fatalf("store role %s: %v", r.Name, err)
	}
	if err := b.srv.ReloadAuth(ctx); err != nil {
		t.Fatalf("reload rules: %v", err)
	}
}

// withLogin sets the user name and password of the CONNECT.
func withLogin(user, password string) connectOption {
	return func(cp *packet.Connect) {
		cp.UsernameFlag, cp.Username = true, user
		cp.PasswordFlag, cp.Password = true, []byte(password)
	}
}

// [MQTT-3.3.5-2] v3
func TestV3_UnauthorizedPublishDropped(t *testing.T) {
	t.Parallel()
	b := startSecuredBroker(t)
	addRole(t, b, auth.Role{Name: "writer", Rules: []auth.Rule{
		{Action: auth.ActionPublish, Permission: auth.Allow, Topic: b.topic("allowed/#")},
		{Action: auth.ActionSubscribe, Permission: auth.Allow, Topic: b.topic("#")},
	}})
	addUser(t, b, auth.User{Name: "u-alpha", Roles: []string{"writer"}}, "pw-alpha")

	sub := newClient(t, b, v3, "sub", withLogin("u-alpha", "pw-alpha"))
	sub.mustSubscribe(b.topic("#"), 2)

	for qos := byte(0); qos <= 2; qos++ {
		pub := newClient(t, b, v3, "pub", withLogin("u-alpha", "pw-alpha"))
		denied := &packet.Publish{Topic: b.topic("denied"), QoS: qos, Payload: []byte("denied")}
		if qos > 0 {
			denied.PacketID = pub.nextID()
		}
		pub.send(denied)

		// The standard allows a normal acknowledgement for the QoS or a
		// close; MQTT 3.1.1 has no code that reports a refusal.
		switch qos {
		case 1:
			f, ok := pub.nextFrame(ioTimeout)
			if !ok {
				t.Logf("QoS 1: the broker closed the connection (%s)", pub.closeReason())
				continue
			}
			if ack, isAck := f.p.(*packet.Puback); !isAck || ack.PacketID != denied.PacketID {
				t.Fatalf("QoS 1: expected PUBACK %d or a close, got % x", denied.PacketID, truncate(f.raw))
			}
		case 2:
			f, ok := pub.nextFrame(ioTimeout)
			if !ok {
				t.Logf("QoS 2: the broker closed the connection (%s)", pub.closeReason())
				continue
			}
			if rec, isRec := f.p.(*packet.Pubrec); !isRec || rec.PacketID != denied.PacketID {
				t.Fatalf("QoS 2: expected PUBREC %d or a close, got % x", denied.PacketID, truncate(f.raw))
			}
			pub.send(&packet.Pubrel{PacketID: denied.PacketID})
			await(pub, func(c *packet.Pubcomp) bool { return c.PacketID == denied.PacketID })
		}

		// The connection still works, and the allowed topic still reaches
		// the subscriber, which proves that the denied message was dropped
		// rather than delayed.
		pub.publish(b.topic("allowed/x"), "allowed", 1, false)
		p := sub.receive()
		if string(p.Payload) != "allowed" {
			t.Fatalf("QoS %d: the subscriber received %s, want only the allowed message", qos, describe(p))
		}
	}
	sub.expectNothing(quietPeriod)
}
