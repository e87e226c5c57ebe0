package node

import (
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/storage"
)

// storedEntries returns the queue and inflight entries of clientID on disk.
func storedEntries(t *testing.T, srv *Server, clientID string) (queue []storage.QueueEntry, inflight []storage.InflightEntry) {
	t.Helper()
	err := srv.store.Queue(clientID, func(e *storage.QueueEntry) error {
		queue = append(queue, *e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.store.Inflight(clientID, func(e *storage.InflightEntry) error {
		inflight = append(inflight, *e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return queue, inflight
}

// persistentSubscriber connects a persistent MQTT 5.0 session with the given
// Receive Maximum and subscribes it to topic at QoS 1.
func persistentSubscriber(t *testing.T, srv *Server, clientID, topic string, receiveMax uint16) *rawClient {
	t.Helper()
	sub := dialRaw(t, srv, packet.Version5)
	sub.connect(&packet.Connect{ClientID: clientID, CleanStart: true, Properties: packet.Properties{
		SessionExpiry: 3600, HasSessionExpiry: true,
		ReceiveMaximum: receiveMax, HasReceiveMaximum: true,
	}})
	sub.subscribe(1, packet.Subscription{Filter: topic, QoS: 1})
	return sub
}

func TestPublishBatch_StoresInflightEntry(t *testing.T) {
	srv := testServer(t, "", nil)
	sub := persistentSubscriber(t, srv, "sub", "pp/t", 10)
	pub := dialRaw(t, srv, packet.Version311)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})

	pub.publish(1, 1, "pp/t", "m1", false)

	// The PUBACK follows the publisher's commit, which already holds the
	// inflight entry with its packet id: no queue entry waits for the
	// persister.
	queue, inflight := storedEntries(t, srv, "sub")
	if len(queue) != 0 {
		t.Errorf("%d queue entries after the PUBACK, expected 0", len(queue))
	}
	if len(inflight) != 1 {
		t.Fatalf("%d inflight entries after the PUBACK, expected 1", len(inflight))
	}

	p := sub.expectPublish()
	if p.PacketID != inflight[0].PacketID {
		t.Errorf("delivered with packet id %d, stored %d", p.PacketID, inflight[0].PacketID)
	}
	if p.Dup {
		t.Error("first delivery has DUP set")
	}
	sub.ack(p)
	waitFor(t, 5*time.Second, "the inflight entry to be released", func() bool {
		_, inflight := storedEntries(t, srv, "sub")
		return len(inflight) == 0
	})
}

func TestPublishBatch_NeedsNoPersister(t *testing.T) {
	srv := testServer(t, "", nil)
	sub := persistentSubscriber(t, srv, "sub", "pp/t", 10)
	pub := dialRaw(t, srv, packet.Version311)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})

	// Each message taken from the queue costs one persister run, which
	// starts a goroutine. A message reserved in the publisher's batch
	// needs none.
	const n = 50
	created := goroutinesCreated()
	for i := 0; i < n; i++ {
		pub.publish(uint16(i+1), 1, "pp/t", "m", false)
		sub.ack(sub.expectPublish())
	}
	if started := goroutinesCreated() - created; started >= n/2 {
		t.Errorf("%d goroutines started for %d messages, expected fewer than %d", started, n, n/2)
	}
}

func TestPublishBatch_FullWindowQueuesInOrder(t *testing.T) {
	srv := testServer(t, "", nil)
	sub := persistentSubscriber(t, srv, "sub", "pp/t", 1)
	pub := dialRaw(t, srv, packet.Version311)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})

	// Three publishes in one write share one batch: the first takes the
	// only window slot, the other two are queued behind it.
	var out []byte
	for i, payload := range []string{"m1", "m2", "m3"} {
		var err error
		out, err = (&packet.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "pp/t", Payload: []byte(payload)}).Encode(out, packet.Version311)
		if err != nil {
			t.Fatal(err)
		}
	}
	pub.sendBytes(out)
	for i := 1; i <= 3; i++ {
		if ack, ok := pub.read().(*packet.Puback); !ok || ack.PacketID != uint16(i) {
			t.Fatalf("expected PUBACK %d, got %T %+v", i, ack, ack)
		}
	}
	queue, inflight := storedEntries(t, srv, "sub")
	if len(inflight) != 1 {
		t.Errorf("%d inflight entries, expected 1", len(inflight))
	}
	if len(queue) != 2 {
		t.Errorf("%d queue entries, expected 2", len(queue))
	}

	for _, want := range []string{"m1", "m2", "m3"} {
		p := sub.expectPublish()
		if string(p.Payload) != want {
			t.Fatalf("got %q, expected %q", p.Payload, want)
		}
		sub.ack(p)
	}
	waitFor(t, 5*time.Second, "every entry to be released", func() bool {
		queue, inflight := storedEntries(t, srv, "sub")
		return len(queue) == 0 && len(inflight) == 0
	})
}
