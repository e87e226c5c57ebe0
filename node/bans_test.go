package node

import (
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

func TestBans_RefuseKickAndPersist(t *testing.T) {
	dir := t.TempDir()
	srv := testServer(t, dir, nil)
	c := dialRaw(t, srv, packet.Version5)
	c.connect(&packet.Connect{ClientID: "bad-1", CleanStart: true})

	if err := srv.AddBan(Ban{Kind: BanClientID, Value: "bad-1", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	// A connected client that a new ban matches is disconnected at once.
	got := c.expectClosed()
	if len(got) != 1 {
		t.Fatalf("got %d packets, want DISCONNECT", len(got))
	}
	again := dialRaw(t, srv, packet.Version5)
	if ack := again.connect(&packet.Connect{ClientID: "bad-1", CleanStart: true}); ack.ReasonCode != packet.ReasonBanned {
		t.Fatalf("banned client id: CONNACK 0x%02X, want 0x8A", byte(ack.ReasonCode))
	}
	if err := srv.AddBan(Ban{Kind: BanAddress, Value: "127.0.0.0/8", Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	other := dialRaw(t, srv, packet.Version311)
	// 3.1.1 has no Banned code: the return code is 5, which the codec reads
	// back as 0x87 Not authorized.
	if ack := other.connect(&packet.Connect{ClientID: "ok-1", CleanStart: true}); ack.ReasonCode != packet.ReasonNotAuthorized {
		t.Fatalf("banned address: CONNACK 0x%02X, want return code 5", byte(ack.ReasonCode))
	}
	if err := srv.AddBan(Ban{Kind: BanAddress, Value: "not-an-ip"}); err == nil {
		t.Fatal("invalid address ban accepted")
	}
	stopServer(t, srv)

	srv2 := testServer(t, dir, nil)
	if bans := srv2.Bans(); len(bans) != 2 {
		t.Fatalf("bans after restart: %+v", bans)
	}
	if err := srv2.RemoveBan(BanAddress, "127.0.0.0/8"); err != nil {
		t.Fatal(err)
	}
	ok := dialRaw(t, srv2, packet.Version311)
	if ack := ok.connect(&packet.Connect{ClientID: "ok-1", CleanStart: true}); ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("after unban: CONNACK 0x%02X", byte(ack.ReasonCode))
	}
}
