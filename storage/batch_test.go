package storage

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestBatch_RecordsRoundTripThroughStore(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	sess := &Session{ClientID: "c1", ProtocolVersion: 5, ExpiryInterval: 60, NextPacketID: 3, Will: []byte{9}, Owner: "u1", OwnerKnown: true}
	sub := &Subscription{ClientID: "c1", Filter: "$share/g/a/+", QoS: 1, NoLocal: true, RetainHandling: 1, SubID: 4}
	msg := &Message{ID: 1, Topic: "a/b", Payload: []byte("p"), QoS: 1, Properties: []byte{1, 2}, ExpiresAt: 99, PublisherID: "pub"}
	queued := &QueueEntry{Seq: 5, MessageID: 1, QoS: 1, SubIDs: []uint32{4}}
	inflight := &InflightEntry{PacketID: 2, Seq: 6, MessageID: 1, QoS: 1, Retain: true, SubIDs: []uint32{4}}
	retained := &Message{ID: 8, Topic: "r", Payload: []byte("keep"), QoS: 2, Retain: true}

	b := s.NewBatch()
	b.PutSession(sess)
	b.PutSubscription(sub)
	b.PutMessage(msg)
	b.Enqueue("c1", queued)
	b.PutInflight("c1", inflight)
	b.PutInboundQoS2("c1", 77)
	b.PutRetained(retained)
	mustCommit(t, b)

	checks := []struct {
		name      string
		got, want any
	}{
		{"session", loadSessions(t, s), []*Session{sess}},
		{"subscription", loadSubscriptions(t, s), []*Subscription{sub}},
		{"queue", loadQueue(t, s, "c1"), []*QueueEntry{queued}},
		{"inflight", loadInflight(t, s, "c1"), []*InflightEntry{inflight}},
		{"inbound", loadInbound(t, s, "c1"), []uint16{77}},
		{"retained", loadRetained(t, s), []*Message{retained}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %+v, want %+v", c.name, c.got, c.want)
		}
	}
	got, err := s.Message(1)
	if err != nil {
		t.Fatalf("Message(1): %v", err)
	}
	if !reflect.DeepEqual(got, msg) {
		t.Errorf("Message(1) = %+v, want %+v", got, msg)
	}
}

func TestBatch_Deletes(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	b.PutSubscription(&Subscription{ClientID: "c", Filter: "a"})
	b.PutSubscription(&Subscription{ClientID: "c", Filter: "b"})
	b.PutInboundQoS2("c", 1)
	b.PutInboundQoS2("c", 2)
	b.PutRetained(&Message{Topic: "x"})
	b.PutRetained(&Message{Topic: "y"})
	mustCommit(t, b)

	b = s.NewBatch()
	b.DeleteSubscription("c", "a")
	b.DeleteInboundQoS2("c", 1)
	b.DeleteRetained("x")
	mustCommit(t, b)

	if subs := loadSubscriptions(t, s); len(subs) != 1 || subs[0].Filter != "b" {
		t.Errorf("subscriptions = %+v, want only filter b", subs)
	}
	if ids := loadInbound(t, s, "c"); !reflect.DeepEqual(ids, []uint16{2}) {
		t.Errorf("inbound = %v, want [2]", ids)
	}
	if r := loadRetained(t, s); len(r) != 1 || r[0].Topic != "y" {
		t.Errorf("retained = %+v, want only topic y", r)
	}
}

func TestBatch_InvalidArgumentWritesNothing(t *testing.T) {
	tests := []struct {
		name   string
		add    func(b *Batch)
		reason string
	}{
		{"nul-client-id", func(b *Batch) { b.PutSession(&Session{ClientID: "a\x00b"}) }, "U+0000"},
		{"subscription-qos3", func(b *Batch) { b.PutSubscription(&Subscription{ClientID: "a", QoS: 3}) }, "QoS 3"},
		{"retain-handling-3", func(b *Batch) { b.PutSubscription(&Subscription{ClientID: "a", RetainHandling: 3}) }, "retain handling 3"},
		{"message-qos3", func(b *Batch) { b.PutMessage(&Message{ID: 1, QoS: 3}) }, "QoS 3"},
		{"queue-qos3", func(b *Batch) { b.Enqueue("a", &QueueEntry{Seq: 1, QoS: 3}) }, "QoS 3"},
		{"inflight-nul-client", func(b *Batch) { b.PutInflight("\x00", &InflightEntry{QoS: 1}) }, "U+0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, testConfig(t.TempDir()))
			b := s.NewBatch()
			defer b.Close()
			b.PutSession(&Session{ClientID: "valid"})
			tt.add(b)
			err := b.Commit()
			if err == nil || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Commit = %v, want an error containing %q", err, tt.reason)
			}
			if got := loadSessions(t, s); len(got) != 0 {
				t.Errorf("sessions = %+v, want none from the rejected batch", got)
			}
		})
	}
}

func TestBatch_CommitTwice(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	defer b.Close()
	b.PutSession(&Session{ClientID: "a"})
	if err := b.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := b.Commit(); err == nil {
		t.Error("second Commit = nil, want an error")
	}
}

func TestBatch_EmptyAndClose(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	if !b.Empty() {
		t.Error("new batch is not empty")
	}
	if err := b.Commit(); err != nil {
		t.Errorf("Commit of an empty batch = %v", err)
	}
	b.Close()
	b.Close()

	b = s.NewBatch()
	b.PutSession(&Session{ClientID: "a"})
	if b.Empty() {
		t.Error("batch with a session is empty")
	}
	b.Close()
	if got := loadSessions(t, s); len(got) != 0 {
		t.Errorf("closed batch wrote %+v", got)
	}
}

func TestBatch_DeleteSessionLeavesOtherClients(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	// The ids "a\x01" and "ab" extend "a", and their keys must survive a
	// range delete of client "a".
	clients := []string{"a", "a\x01", "ab", "`"}
	b := s.NewBatch()
	for i, c := range clients {
		id := uint64(i + 1)
		b.PutSession(&Session{ClientID: c})
		b.PutSubscription(&Subscription{ClientID: c, Filter: "f"})
		b.PutMessage(&Message{ID: id})
		b.Enqueue(c, &QueueEntry{Seq: id, MessageID: id})
		b.PutInflight(c, &InflightEntry{PacketID: 1, MessageID: id, QoS: 1})
		b.PutInboundQoS2(c, 1)
	}
	mustCommit(t, b)

	b = s.NewBatch()
	b.DeleteSession("a")
	mustCommit(t, b)

	for _, c := range clients[1:] {
		if got := loadQueue(t, s, c); len(got) != 1 {
			t.Errorf("queue of %q = %d entries, want 1", c, len(got))
		}
		if got := loadInflight(t, s, c); len(got) != 1 {
			t.Errorf("inflight of %q = %d entries, want 1", c, len(got))
		}
		if got := loadInbound(t, s, c); len(got) != 1 {
			t.Errorf("inbound of %q = %d entries, want 1", c, len(got))
		}
	}
	if got := loadQueue(t, s, "a"); len(got) != 0 {
		t.Errorf("queue of deleted client = %d entries", len(got))
	}
	if got := loadInflight(t, s, "a"); len(got) != 0 {
		t.Errorf("inflight of deleted client = %d entries", len(got))
	}
	if got := loadInbound(t, s, "a"); len(got) != 0 {
		t.Errorf("inbound of deleted client = %d entries", len(got))
	}
	var names []string
	for _, sess := range loadSessions(t, s) {
		names = append(names, sess.ClientID)
	}
	if want := []string{"`", "a\x01", "ab"}; !reflect.DeepEqual(names, want) {
		t.Errorf("sessions = %q, want %q", names, want)
	}
	subs := loadSubscriptions(t, s)
	if len(subs) != 3 {
		t.Errorf("subscriptions = %d, want 3", len(subs))
	}
	checkRefsMatchDisk(t, s)
}

func TestBatch_IterationOrder(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	b := s.NewBatch()
	for _, c := range []string{"b", "a", "c"} {
		b.PutSession(&Session{ClientID: c})
	}
	b.PutSubscription(&Subscription{ClientID: "b", Filter: "z"})
	b.PutSubscription(&Subscription{ClientID: "a", Filter: "y"})
	b.PutSubscription(&Subscription{ClientID: "b", Filter: "a"})
	seqs := []uint64{1 << 40, 255, 256, 1}
	b.PutMessage(&Message{ID: 1})
	for _, seq := range seqs {
		b.Enqueue("q", &QueueEntry{Seq: seq, MessageID: 1})
	}
	// Packet ids wrap, so send order differs from packet id order.
	b.PutInflight("q", &InflightEntry{PacketID: 65535, Seq: 10, MessageID: 1, QoS: 1})
	b.PutInflight("q", &InflightEntry{PacketID: 1, Seq: 11, MessageID: 1, QoS: 1})
	b.PutInflight("q", &InflightEntry{PacketID: 300, Seq: 9, MessageID: 1, QoS: 1})
	for _, id := range []uint16{300, 2, 65535} {
		b.PutInboundQoS2("q", id)
	}
	for _, topic := range []string{"b/a", "a/b", "a"} {
		b.PutRetained(&Message{Topic: topic})
	}
	mustCommit(t, b)

	var sessions []string
	for _, v := range loadSessions(t, s) {
		sessions = append(sessions, v.ClientID)
	}
	var subs []string
	for _, v := range loadSubscriptions(t, s) {
		subs = append(subs, v.ClientID+":"+v.Filter)
	}
	var queue []uint64
	for _, v := range loadQueue(t, s, "q") {
		queue = append(queue, v.Seq)
	}
	var inflight []uint16
	for _, v := range loadInflight(t, s, "q") {
		inflight = append(inflight, v.PacketID)
	}
	var retained []string
	for _, v := range loadRetained(t, s) {
		retained = append(retained, v.Topic)
	}

	checks := []struct {
		name      string
		got, want any
	}{
		{"sessions", sessions, []string{"a", "b", "c"}},
		{"subscriptions", subs, []string{"a:y", "b:a", "b:z"}},
		{"queue", queue, []uint64{1, 255, 256, 1 << 40}},
		{"inflight", inflight, []uint16{300, 65535, 1}},
		{"inbound", loadInbound(t, s, "q"), []uint16{2, 300, 65535}},
		{"retained", retained, []string{"a", "a/b", "b/a"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s order = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestBatch_LargePayload(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	payload := bytes.Repeat([]byte("x"), 8<<20)
	b := s.NewBatch()
	b.PutMessage(&Message{ID: 1, Payload: payload})
	b.Enqueue("a", &QueueEntry{Seq: 2, MessageID: 1})
	mustCommit(t, b)
	m, err := s.Message(1)
	if err != nil {
		t.Fatalf("Message: %v", err)
	}
	if !bytes.Equal(m.Payload, payload) {
		t.Errorf("payload of %d bytes came back as %d bytes", len(payload), len(m.Payload))
	}
}

func TestBatch_FailedStoreRejectsWrites(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	s.setFailed(fmt.Errorf("injected: %w", errors.New("disk gone")))
	b := s.NewBatch()
	defer b.Close()
	b.PutSession(&Session{ClientID: "a"})
	if err := b.Commit(); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "injected") {
		t.Errorf("Commit on a failed store = %v, want ErrFailed wrapping the cause", err)
	}
}
