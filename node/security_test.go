package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/node/packet"
)

// securedServer starts a node whose listener refuses anonymous clients, with
// user dev-1 (password "pw") in group fleet, whose role "device" may publish
// under devices/<client id>/ and read data/#.
func securedServer(t *testing.T, mutate func(*Config)) *Server {
	t.Helper()
	no := false
	srv := testServer(t, "", func(c *Config) {
		c.Listeners[0].AllowAnonymous = &no
		c.Auth.Verifier.Workers = 2
		if mutate != nil {
			mutate(c)
		}
	})
	ctx := context.Background()
	st := srv.AuthStore()
	u := auth.User{Name: "dev-1", Groups: []string{"fleet"}}
	if err := u.SetPassword([]byte("pw"), fastParams(), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := st.PutGroup(ctx, auth.Group{Name: "fleet", Roles: []string{"device"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutRole(ctx, auth.Role{Name: "device", Rules: []auth.Rule{
		{Action: auth.ActionPublish, Permission: auth.Allow, Topic: "devices/%c/#"},
		{Action: auth.ActionSubscribe, Permission: auth.Allow, Topic: "data/#"},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReloadAuth(ctx); err != nil {
		t.Fatal(err)
	}
	return srv
}

// fastParams keeps password hashing cheap in tests.
func fastParams() auth.Params {
	p := auth.DefaultPBKDF2Params()
	p.Iterations = 1000
	return p
}

func TestAuth_PasswordAndAnonymous(t *testing.T) {
	srv := securedServer(t, nil)
	cases := []struct {
		name     string
		version  byte
		username string
		password string
		want     packet.ReasonCode
	}{
		{"v5-good-password", packet.Version5, "dev-1", "pw", packet.ReasonSuccess},
		{"v5-wrong-password", packet.Version5, "dev-1", "nope", packet.ReasonBadUsernameOrPassword},
		{"v5-unknown-user", packet.Version5, "ghost", "pw", packet.ReasonBadUsernameOrPassword},
		{"v5-anonymous-refused", packet.Version5, "", "", packet.ReasonNotAuthorized},
		{"v311-good-password", packet.Version311, "dev-1", "pw", packet.ReasonSuccess},
		{"v311-anonymous-refused", packet.Version311, "", "", packet.ReasonNotAuthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, srv, tc.version)
			cp := &packet.Connect{ClientID: "dev-1", CleanStart: true}
			if tc.username != "" {
				cp.UsernameFlag, cp.Username = true, tc.username
				cp.PasswordFlag, cp.Password = true, []byte(tc.password)
			}
			if ack := c.connect(cp); ack.ReasonCode != tc.want {
				t.Fatalf("CONNACK 0x%02X, want 0x%02X", byte(ack.ReasonCode), byte(tc.want))
			}
		})
	}
}

func connectDev(t *testing.T, srv *Server, clientID string, will *packet.Will) (*rawClient, *packet.Connack) {
	t.Helper()
	c := dialRaw(t, srv, packet.Version5)
	ack := c.connect(&packet.Connect{ClientID: clientID, CleanStart: true, UsernameFlag: true, Username: "dev-1",
		PasswordFlag: true, Password: []byte("pw"), Will: will})
	return c, ack
}

func TestAuth_PublishAndSubscribeRules(t *testing.T) {
	srv := securedServer(t, nil)
	c, ack := connectDev(t, srv, "dev-1", nil)
	if ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("CONNACK 0x%02X", byte(ack.ReasonCode))
	}
	codes := c.subscribe(1,
		packet.Subscription{Filter: "data/+", QoS: 1},
		packet.Subscription{Filter: "devices/#", QoS: 1},
		packet.Subscription{Filter: "$share/g/data/x", QoS: 1})
	want := []packet.ReasonCode{packet.ReasonGrantedQoS1, packet.ReasonNotAuthorized, packet.ReasonGrantedQoS1}
	for i := range want {
		if codes[i] != want[i] {
			t.Errorf("SUBACK %d = 0x%02X, want 0x%02X", i, byte(codes[i]), byte(want[i]))
		}
	}

	// The placeholder %c is this client's id, so another device's topic is refused.
	c.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "devices/dev-2/state", Payload: []byte("x")})
	if ack, ok := c.read().(*packet.Puback); !ok || ack.ReasonCode != packet.ReasonNotAuthorized {
		t.Fatalf("publish to another device: %+v, want PUBACK 0x87", ack)
	}
	c.send(&packet.Publish{QoS: 1, PacketID: 2, Topic: "devices/dev-1/state", Payload: []byte("x")})
	if ack, ok := c.read().(*packet.Puback); !ok || ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("publish to own topic: %+v, want PUBACK 0", ack)
	}
}

func TestAuth_WildcardClientIDGainsNothing(t *testing.T) {
	srv := securedServer(t, nil)
	for _, id := range []string{"+", "#"} {
		c, ack := connectDev(t, srv, id, nil)
		if ack.ReasonCode != packet.ReasonSuccess {
			continue // refusing such an identity is also safe
		}
		c.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "devices/dev-7/cmd", Payload: []byte("x")})
		if ack, ok := c.read().(*packet.Puback); !ok || ack.ReasonCode != packet.ReasonNotAuthorized {
			t.Fatalf("client id %q published to devices/dev-7/cmd: %+v", id, ack)
		}
	}
}

func TestAuth_RevokedRuleStopsDeliveryAtOnce(t *testing.T) {
	srv := securedServer(t, nil)
	c, _ := connectDev(t, srv, "dev-1", nil)
	c.subscribe(1, packet.Subscription{Filter: "data/#"})

	// publishSys routes like any publish; it stands in for a producer that
	// the rules allow to write data/x.
	srv.publishSys("data/x", "before")
	if got := c.expectPublish(); string(got.Payload) != "before" {
		t.Fatalf("got %q", got.Payload)
	}

	ctx := context.Background()
	narrower := auth.Role{Name: "device", Rules: []auth.Rule{{Action: auth.ActionSubscribe, Permission: auth.Allow, Topic: "other/#"}}}
	if err := srv.AuthStore().PutRole(ctx, narrower); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReloadAuth(ctx); err != nil {
		t.Fatal(err)
	}
	srv.publishSys("data/x", "after")
	c.expectNothing(300 * time.Millisecond)
	if n := srv.Stats().Denied["delivery"]; n != 1 {
		t.Errorf("denied deliveries = %d, want 1", n)
	}
}

func TestAuth_WillOnForbiddenTopicRefused(t *testing.T) {
	srv := securedServer(t, nil)
	_, ack := connectDev(t, srv, "dev-1", &packet.Will{Topic: "cmd/all", Payload: []byte("x"), QoS: 1, Retain: true})
	if ack.ReasonCode != packet.ReasonNotAuthorized {
		t.Fatalf("will on cmd/all: CONNACK 0x%02X, want 0x87", byte(ack.ReasonCode))
	}
	_, ack = connectDev(t, srv, "dev-1", &packet.Will{Topic: "devices/dev-1/status", Payload: []byte("x")})
	if ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("will on own topic: CONNACK 0x%02X", byte(ack.ReasonCode))
	}
}

func TestAuth_RepeatedFailuresBanned(t *testing.T) {
	srv := securedServer(t, func(c *Config) {
		c.Auth.Throttle = ThrottleConfig{FreeFailures: 1, MaxDelay: 10 * time.Millisecond, BanAfter: 3, BanFor: time.Minute}
	})
	for i := 0; i < 3; i++ {
		c := dialRaw(t, srv, packet.Version5)
		c.connect(&packet.Connect{ClientID: "x", CleanStart: true, UsernameFlag: true, Username: "dev-1", PasswordFlag: true, Password: []byte("guess")})
	}
	// Now even the right password is refused from this address for a while.
	_, ack := connectDev(t, srv, "dev-1", nil)
	if ack.ReasonCode != packet.ReasonNotAuthorized {
		t.Fatalf("after 3 failures: CONNACK 0x%02X, want 0x87 (banned)", byte(ack.ReasonCode))
	}
	if n := srv.Stats().AuthFailures["banned"]; n != 1 {
		t.Errorf("banned attempts = %d, want 1", n)
	}
}

func TestAuth_GlobalRulesWithSubjectsAndQoS(t *testing.T) {
	one := byte(1)
	srv := securedServer(t, func(c *Config) {
		c.Auth.Seed.Rules = []auth.GlobalRule{
			{Subject: auth.Subject{Kind: auth.SubjectClient, Name: "dev-*"},
				Rule: auth.Rule{Action: auth.ActionPublish, Permission: auth.Allow, Topic: "telemetry/%c", MaxQoS: &one}},
		}
	})
	c, ack := connectDev(t, srv, "dev-1", nil)
	if ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("CONNACK 0x%02X", byte(ack.ReasonCode))
	}
	c.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "telemetry/dev-1", Payload: []byte("x")})
	if ack, ok := c.read().(*packet.Puback); !ok || ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("QoS 1 under the global rule: %+v, want PUBACK 0", ack)
	}
	// Above the rule's max_qos the rule does not match, and nothing else allows it.
	c.send(&packet.Publish{QoS: 2, PacketID: 2, Topic: "telemetry/dev-1", Payload: []byte("x")})
	if rec, ok := c.read().(*packet.Pubrec); !ok || rec.ReasonCode != packet.ReasonNotAuthorized {
		t.Fatalf("QoS 2 above max_qos: %+v, want PUBREC 0x87", rec)
	}
}

func TestAuth_ConfigRemovalDeletesSeededRecords(t *testing.T) {
	dir := t.TempDir()
	u := auth.User{Name: "cfg-user"}
	if err := u.SetPassword([]byte("pw"), fastParams(), 0); err != nil {
		t.Fatal(err)
	}
	seedWith := func(users []auth.User, groups []auth.Group) func(*Config) {
		return func(c *Config) { c.Auth.Seed = AuthSeed{Users: users, Groups: groups} }
	}
	srv := testServer(t, dir, seedWith([]auth.User{u}, []auth.Group{{Name: "cfg-group"}}))
	ctx := context.Background()
	// A user added outside the file must survive the file's changes.
	if _, err := srv.AuthStore().PutUser(ctx, auth.User{Name: "cli-user"}); err != nil {
		t.Fatal(err)
	}
	stopServer(t, srv)

	srv = testServer(t, dir, seedWith(nil, nil))
	if _, err := srv.AuthStore().User(ctx, "cfg-user"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("user removed from the file: err %v, want ErrNotFound", err)
	}
	if _, err := srv.AuthStore().Group(ctx, "cfg-group"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("group removed from the file: err %v, want ErrNotFound", err)
	}
	if _, err := srv.AuthStore().User(ctx, "cli-user"); err != nil {
		t.Fatalf("user added through the API was removed: %v", err)
	}
}

func TestAuth_UserChangesApplyToConnectedClients(t *testing.T) {
	srv := securedServer(t, nil)
	c, _ := connectDev(t, srv, "dev-1", nil)
	ctx := context.Background()
	st := srv.AuthStore()

	// Give dev-1 its own rule for a new topic: it applies without reconnecting.
	u, err := st.User(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	u.Rules = []auth.Rule{{Action: auth.ActionPublish, Permission: auth.Allow, Topic: "extra/%c"}}
	if _, err := st.PutUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReloadAuth(ctx); err != nil {
		t.Fatal(err)
	}
	c.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "extra/dev-1", Payload: []byte("x")})
	if ack, ok := c.read().(*packet.Puback); !ok || ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("publish under the new rule: %+v, want PUBACK 0", ack)
	}

	// Removing the user disconnects its client.
	if err := st.DeleteUser(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReloadAuth(ctx); err != nil {
		t.Fatal(err)
	}
	got := c.expectClosed()
	if len(got) != 1 {
		t.Fatalf("got %d packets, want DISCONNECT", len(got))
	}
	if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.ReasonAdministrativeAction {
		t.Fatalf("got %+v, want DISCONNECT 0x98", got[0])
	}
}
