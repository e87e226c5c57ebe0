package node

import (
	"errors"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

func TestAdmin_ClientsKickAndDelete(t *testing.T) {
	srv := testServer(t, "", nil)
	c := dialRaw(t, srv, packet.Version5)
	c.connect(&packet.Connect{ClientID: "ops-1", Properties: packet.Properties{SessionExpiry: 300, HasSessionExpiry: true}})
	c.subscribe(1, packet.Subscription{Filter: "ops/#", QoS: 1})

	list := srv.Clients("ops", 0)
	if len(list) != 1 || !list[0].Connected || list[0].Subscriptions != 1 || !list[0].Persistent {
		t.Fatalf("clients %+v", list)
	}
	if !srv.Kick("ops-1") {
		t.Fatal("Kick found no connection")
	}
	got := c.expectClosed()
	if len(got) != 1 {
		t.Fatalf("got %d packets, want DISCONNECT", len(got))
	}
	if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.ReasonAdministrativeAction {
		t.Fatalf("got %+v, want DISCONNECT 0x98", got[0])
	}
	info, err := srv.Client("ops-1")
	if err != nil || info.Connected {
		t.Fatalf("after kick: %+v, %v (the session must stay, offline)", info, err)
	}
	subs, _ := srv.SubscriptionsOf("ops-1")
	if len(subs) != 1 || subs[0].Filter != "ops/#" {
		t.Fatalf("subscriptions %+v", subs)
	}
	if err := srv.DeleteSession("ops-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client("ops-1"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("deleted session: err %v, want ErrNoSession", err)
	}
}

func TestAdmin_PublishAndRetained(t *testing.T) {
	srv := testServer(t, "", nil)
	sub := dialRaw(t, srv, packet.Version311)
	sub.connect(&packet.Connect{ClientID: "ops-sub", CleanStart: true})
	sub.subscribe(1, packet.Subscription{Filter: "ops/#", QoS: 1})

	if err := srv.Publish("ops/a", []byte("hello"), 1, true); err != nil {
		t.Fatal(err)
	}
	got := sub.expectPublish()
	if string(got.Payload) != "hello" {
		t.Fatalf("got %q", got.Payload)
	}
	sub.ack(got)
	ret, err := srv.Retained("ops/#", 0)
	if err != nil || len(ret) != 1 || ret[0].Topic != "ops/a" {
		t.Fatalf("retained %+v, %v", ret, err)
	}
	if err := srv.DeleteRetained("ops/a"); err != nil {
		t.Fatal(err)
	}
	if ret, _ := srv.Retained("#", 0); len(ret) != 0 {
		t.Fatalf("retained after delete: %+v", ret)
	}
	if err := srv.Publish("ops/#", nil, 0, false); err == nil {
		t.Fatal("publish to a wildcard topic succeeded")
	}
	sub.expectNothing(100 * time.Millisecond)
}
