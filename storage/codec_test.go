package storage

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestCodec_MessageRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Message
	}{
		{"zero", Message{}},
		{"qos0-minimal", Message{ID: 1, Topic: "a"}},
		{"qos2-retain", Message{ID: 7, Topic: "a/b", Payload: []byte("hello"), QoS: 2, Retain: true}},
		{"all-fields", Message{
			ID: math.MaxUint64, Topic: "sensors/+/x", Payload: []byte{0, 1, 2, 0xff},
			QoS: 1, Properties: []byte{0x01, 0x01, 0x23}, ExpiresAt: 1_700_000_000_000_000_000,
			PublisherID: "pub-1",
		}},
		{"negative-expiry", Message{ID: 3, ExpiresAt: -5}},
		{"large-payload", Message{ID: 9, Topic: "big", Payload: make([]byte, 1<<20)}},
		{"forwarded-origin", Message{ID: 11, Topic: "t", QoS: 1, OriginSite: "site-b", OriginID: 1 << 40}},
		{"unicode-topic", Message{ID: 4, Topic: "häuser/ç/日本"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := appendMessage(nil, &tt.in)
			var out Message
			if err := decodeMessage(b, &out); err != nil {
				t.Fatalf("decodeMessage: %v", err)
			}
			if !reflect.DeepEqual(out, tt.in) {
				t.Errorf("round trip = %+v, want %+v", out, tt.in)
			}
		})
	}
}

func TestCodec_MessageEmptySlicesLoadNil(t *testing.T) {
	in := Message{ID: 1, Payload: []byte{}, Properties: []byte{}}
	var out Message
	if err := decodeMessage(appendMessage(nil, &in), &out); err != nil {
		t.Fatalf("decodeMessage: %v", err)
	}
	if out.Payload != nil {
		t.Errorf("Payload = %#v, want nil", out.Payload)
	}
	if out.Properties != nil {
		t.Errorf("Properties = %#v, want nil", out.Properties)
	}
}

func TestCodec_MessageDoesNotAliasInput(t *testing.T) {
	b := appendMessage(nil, &Message{ID: 1, Topic: "t", Payload: []byte("abc"), Properties: []byte{1}})
	var out Message
	if err := decodeMessage(b, &out); err != nil {
		t.Fatalf("decodeMessage: %v", err)
	}
	for i := range b {
		b[i] = 0xee
	}
	if string(out.Payload) != "abc" {
		t.Errorf("Payload changed with the input to %q", out.Payload)
	}
	if out.Properties[0] != 1 {
		t.Errorf("Properties changed with the input to %x", out.Properties)
	}
}

func TestCodec_SessionRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Session
	}{
		{"zero", Session{}},
		{"v311-connected", Session{ClientID: "c1", ProtocolVersion: 4, NextPacketID: 1}},
		{"v5-disconnected", Session{ClientID: "c2", ProtocolVersion: 5, ExpiryInterval: 3600, DisconnectedAt: 1_700_000_000_000_000_000, NextPacketID: 65535}},
		{"never-expires", Session{ClientID: "c3", ExpiryInterval: math.MaxUint32}},
		{"with-will", Session{ClientID: "c4", Will: []byte{1, 2, 3}}},
		{"empty-will", Session{ClientID: "c5", Will: []byte{}}},
		{"with-owner", Session{ClientID: "c6", Owner: "dev-1"}},
		{"with-will-and-owner", Session{ClientID: "c7", Will: []byte{9}, Owner: "ops"}},
	}
	// A record written before owners were stored decodes with the owner
	// unknown.
	var legacy Session
	if err := decodeSession([]byte{1, 0, 4, 0, 0, 1, 2, 'c', '8'}, &legacy); err != nil {
		t.Fatalf("decode a record without owner: %v", err)
	}
	if legacy.ClientID != "c8" || legacy.OwnerKnown {
		t.Errorf("record without owner decoded as %+v", legacy)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out Session
			if err := decodeSession(appendSession(nil, &tt.in), &out); err != nil {
				t.Fatalf("decodeSession: %v", err)
			}
			want := tt.in
			want.OwnerKnown = true // every record written now stores its owner
			if !reflect.DeepEqual(out, want) {
				t.Errorf("round trip = %+v, want %+v", out, want)
			}
		})
	}
}

func TestCodec_SubscriptionRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Subscription
	}{
		{"zero", Subscription{}},
		{"qos1", Subscription{QoS: 1}},
		{"v5-options", Subscription{QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, SubID: 268435455}},
		{"no-local-only", Subscription{NoLocal: true, RetainHandling: 1}},
		{"max-sub-id", Subscription{SubID: math.MaxUint32}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out Subscription
			if err := decodeSubscription(appendSubscription(nil, &tt.in), &out); err != nil {
				t.Fatalf("decodeSubscription: %v", err)
			}
			if !reflect.DeepEqual(out, tt.in) {
				t.Errorf("round trip = %+v, want %+v", out, tt.in)
			}
		})
	}
}

func TestCodec_QueueEntryRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   QueueEntry
	}{
		{"zero", QueueEntry{}},
		{"qos1", QueueEntry{MessageID: 42, QoS: 1}},
		{"retain-subids", QueueEntry{MessageID: math.MaxUint64, QoS: 2, Retain: true, SubIDs: []uint32{1, 268435455, math.MaxUint32}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out QueueEntry
			if err := decodeQueueEntry(appendQueueEntry(nil, &tt.in), &out); err != nil {
				t.Fatalf("decodeQueueEntry: %v", err)
			}
			if !reflect.DeepEqual(out, tt.in) {
				t.Errorf("round trip = %+v, want %+v", out, tt.in)
			}
		})
	}
}

func TestCodec_InflightEntryRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   InflightEntry
	}{
		{"zero", InflightEntry{}},
		{"qos1", InflightEntry{Seq: 10, MessageID: 11, QoS: 1}},
		{"qos2-released", InflightEntry{Seq: math.MaxUint64, MessageID: 3, QoS: 2, Retain: true, Released: true, SubIDs: []uint32{5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out InflightEntry
			if err := decodeInflightEntry(appendInflightEntry(nil, &tt.in), &out); err != nil {
				t.Fatalf("decodeInflightEntry: %v", err)
			}
			if !reflect.DeepEqual(out, tt.in) {
				t.Errorf("round trip = %+v, want %+v", out, tt.in)
			}
		})
	}
}

func TestCodec_CorruptValues(t *testing.T) {
	validMsg := appendMessage(nil, &Message{ID: 1, Topic: "t", Payload: []byte("p")})
	validQueue := appendQueueEntry(nil, &QueueEntry{MessageID: 1, SubIDs: []uint32{1}})
	tests := []struct {
		name   string
		decode func([]byte) error
		in     []byte
		reason string
	}{
		{"message-empty", decodeMessageErr, nil, "truncated"},
		{"message-version-2", decodeMessageErr, append([]byte{2}, validMsg[1:]...), "unknown record version 2"},
		{"message-truncated", decodeMessageErr, validMsg[:len(validMsg)-1], "truncated"},
		{"message-trailing", decodeMessageErr, append(append([]byte{}, validMsg...), 0), "trailing bytes"},
		{"message-qos3", decodeMessageErr, append([]byte{1, 3}, validMsg[2:]...), "QoS greater than 2"},
		{"message-unknown-flag", decodeMessageErr, append([]byte{1, 0x80}, validMsg[2:]...), "unknown flag bits"},
		{"message-huge-length", decodeMessageErr, []byte{1, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, "out of range"},
		{"message-bad-varint", decodeMessageErr, []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "invalid varint"},
		{"session-bad-flag", decodeSessionErr, []byte{1, 0x04, 5, 0, 0, 0, 0}, "unknown flag bits"},
		{"session-packet-id-overflow", decodeSessionErr, []byte{1, 0, 5, 0, 0, 0x80, 0x80, 0x04, 0}, "out of range"},
		{"subscription-qos3", decodeSubscriptionErr, []byte{1, 3, 0, 0, 0}, "QoS greater than 2"},
		{"subscription-retain-handling-3", decodeSubscriptionErr, []byte{1, 0, 0, 3, 0}, "retain handling"},
		{"queue-subid-count-too-large", decodeQueueEntryErr, []byte{1, 0, 1, 0x7f}, "out of range"},
		{"queue-trailing", decodeQueueEntryErr, append(append([]byte{}, validQueue...), 9), "trailing bytes"},
		{"inflight-unknown-flag", decodeInflightEntryErr, []byte{1, 0x10, 0, 0, 0}, "unknown flag bits"},
		{"inbound-trailing", decodeInbound, []byte{1, 0}, "trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode(tt.in)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not contain %q", err, tt.reason)
			}
		})
	}
}

func TestCodec_CorruptMarkSurvivesWrapping(t *testing.T) {
	err := decodeMessageErr([]byte{9})
	wrapped := errors.Join(errors.New("outer"), err)
	if !errors.Is(wrapped, ErrCorrupt) {
		t.Errorf("errors.Is(%v, ErrCorrupt) = false", wrapped)
	}
}

func decodeMessageErr(b []byte) error       { return decodeMessage(b, new(Message)) }
func decodeSessionErr(b []byte) error       { return decodeSession(b, new(Session)) }
func decodeSubscriptionErr(b []byte) error  { return decodeSubscription(b, new(Subscription)) }
func decodeQueueEntryErr(b []byte) error    { return decodeQueueEntry(b, new(QueueEntry)) }
func decodeInflightEntryErr(b []byte) error { return decodeInflightEntry(b, new(InflightEntry)) }
