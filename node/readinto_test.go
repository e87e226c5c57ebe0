package node

import (
	"bytes"
	"slices"
	"testing"

	"github.com/starling-mqtt/starling/node/packet"
)

// TestReadPhase_BurstKeepsEachPublishApart sends three PUBLISH packets in
// one write, so that the reader decodes them into the same Publish one after
// the other. Each must reach the subscriber with its own topic, payload and
// properties: nothing of an earlier packet may leak into a later one, and
// nothing of a later one into a message already routed.
func TestReadPhase_BurstKeepsEachPublishApart(t *testing.T) {
	srv := testServer(t, "", nil)

	sub := dialRaw(t, srv, packet.Version5)
	if ack := sub.connect(&packet.Connect{ClientID: "burst-sub", CleanStart: true}); ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("subscriber CONNACK %v", ack.ReasonCode)
	}
	sub.subscribe(1, packet.Subscription{Filter: "burst/#", QoS: 1})

	pub := dialRaw(t, srv, packet.Version5)
	if ack := pub.connect(&packet.Connect{ClientID: "burst-pub", CleanStart: true}); ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("publisher CONNACK %v", ack.ReasonCode)
	}
	first := &packet.Publish{QoS: 1, PacketID: 1, Topic: "burst/a", Payload: []byte("one"),
		Properties: packet.Properties{
			ContentType:    "text/plain",
			HasTopicAlias:  true,
			TopicAlias:     1,
			UserProperties: []packet.UserProperty{{Key: "k", Value: "v"}},
		}}
	second := &packet.Publish{QoS: 0, Topic: "burst/b", Payload: []byte("two")}
	third := &packet.Publish{QoS: 1, PacketID: 2, Payload: []byte("three"),
		Properties: packet.Properties{HasTopicAlias: true, TopicAlias: 1}}
	var burst []byte
	for _, p := range []*packet.Publish{first, second, third} {
		var err error
		if burst, err = p.Encode(burst, packet.Version5); err != nil {
			t.Fatalf("encode: %v", err)
		}
	}
	pub.sendBytes(burst)

	got := make([]*packet.Publish, 3)
	for i := range got {
		got[i] = sub.expectPublish()
		if got[i].QoS > 0 {
			sub.ack(got[i])
		}
	}
	if got[0].Topic != "burst/a" || !bytes.Equal(got[0].Payload, []byte("one")) {
		t.Errorf("first message: topic %q payload %q, want burst/a one", got[0].Topic, got[0].Payload)
	}
	if got[0].Properties.ContentType != "text/plain" {
		t.Errorf("first message: content type %q, want text/plain", got[0].Properties.ContentType)
	}
	if !slices.Equal(got[0].Properties.UserProperties, []packet.UserProperty{{Key: "k", Value: "v"}}) {
		t.Errorf("first message: user properties %v, want k=v", got[0].Properties.UserProperties)
	}
	if got[1].Topic != "burst/b" || !bytes.Equal(got[1].Payload, []byte("two")) {
		t.Errorf("second message: topic %q payload %q, want burst/b two", got[1].Topic, got[1].Payload)
	}
	if got[1].Properties.ContentType != "" || len(got[1].Properties.UserProperties) != 0 {
		t.Errorf("second message carries properties of the first: %+v", got[1].Properties)
	}
	if got[2].Topic != "burst/a" || !bytes.Equal(got[2].Payload, []byte("three")) {
		t.Errorf("third message: topic %q payload %q, want burst/a (alias 1) three", got[2].Topic, got[2].Payload)
	}
	if got[2].Properties.ContentType != "" || len(got[2].Properties.UserProperties) != 0 {
		t.Errorf("third message carries properties of the first: %+v", got[2].Properties)
	}
}
