package node

import (
	"slices"
	"testing"
)

func TestReloadLimits_KeepsWhatClientsWereTold(t *testing.T) {
	srv := testServer(t, "", nil)
	before := *srv.lim()
	next := before
	next.MaxQueuedMessages = before.MaxQueuedMessages * 2
	next.MaxPacketSize = before.MaxPacketSize / 2
	next.ReceiveMaximum = before.ReceiveMaximum + 1
	restart, err := srv.ReloadLimits(next)
	if err != nil {
		t.Fatal(err)
	}
	got := srv.lim()
	if got.MaxQueuedMessages != next.MaxQueuedMessages {
		t.Errorf("max_queued_messages = %d, want %d", got.MaxQueuedMessages, next.MaxQueuedMessages)
	}
	if got.MaxPacketSize != before.MaxPacketSize || got.ReceiveMaximum != before.ReceiveMaximum {
		t.Errorf("max_packet_size %d, receive_maximum %d changed; want %d and %d until a restart",
			got.MaxPacketSize, got.ReceiveMaximum, before.MaxPacketSize, before.ReceiveMaximum)
	}
	want := []string{"limits.max_packet_size", "limits.receive_maximum"}
	if !slices.Equal(restart, want) {
		t.Errorf("restart keys %v, want %v", restart, want)
	}
}

func TestReloadLimits_RejectsInvalid(t *testing.T) {
	srv := testServer(t, "", nil)
	before := *srv.lim()
	bad := before
	bad.MaxTopicLevels = -1
	if _, err := srv.ReloadLimits(bad); err == nil {
		t.Fatal("ReloadLimits accepted max_topic_levels -1")
	}
	if *srv.lim() != before {
		t.Error("a rejected reload changed the limits in force")
	}
}
