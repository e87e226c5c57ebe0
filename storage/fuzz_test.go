package storage

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed files under testdata/fuzz from fuzzSeeds")

// fuzzSeeds returns valid encodings of each record kind, keyed by fuzz
// target. They are written to testdata/fuzz by -update-seeds.
func fuzzSeeds() map[string][][]byte {
	return map[string][][]byte{
		"FuzzDecodeMessage": {
			appendMessage(nil, &Message{}),
			appendMessage(nil, &Message{ID: 1 << 40, Topic: "a/b", Payload: []byte("hello"), QoS: 2, Retain: true,
				Properties: []byte{0x01, 0x01}, ExpiresAt: 1_700_000_000_000_000_000, PublisherID: "pub"}),
		},
		"FuzzDecodeSession": {
			appendSession(nil, &Session{ClientID: "c", ProtocolVersion: 4}),
			appendSession(nil, &Session{ClientID: "c5", ProtocolVersion: 5, ExpiryInterval: 0xFFFFFFFF,
				DisconnectedAt: 1_700_000_000_000_000_000, NextPacketID: 65535, Will: []byte{1, 2, 3}}),
		},
		"FuzzDecodeSubscription": {
			appendSubscription(nil, &Subscription{}),
			appendSubscription(nil, &Subscription{QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, SubID: 268435455}),
		},
		"FuzzDecodeQueueEntry": {
			appendQueueEntry(nil, &QueueEntry{MessageID: 1}),
			appendQueueEntry(nil, &QueueEntry{MessageID: 1 << 60, QoS: 2, Retain: true, SubIDs: []uint32{1, 2, 268435455}}),
		},
		"FuzzDecodeInflightEntry": {
			appendInflightEntry(nil, &InflightEntry{Seq: 1, MessageID: 2, QoS: 1}),
			appendInflightEntry(nil, &InflightEntry{Seq: 1 << 50, MessageID: 3, QoS: 2, Released: true, SubIDs: []uint32{7}}),
		},
		"FuzzParseKey": {
			appendQueueKey(nil, "client", 42),
			appendInflightKey(nil, "client", 65535),
			appendSubscriptionKey(nil, "client", "$share/g/a/#"),
			appendMessageKey(nil, 7),
		},
	}
}

// TestFuzzSeeds_UpToDate checks that every seed file exists, and rewrites
// them with -update-seeds after an encoding change.
func TestFuzzSeeds_UpToDate(t *testing.T) {
	for target, seeds := range fuzzSeeds() {
		for i, seed := range seeds {
			path := filepath.Join("testdata", "fuzz", target, fmt.Sprintf("seed-%d", i))
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed)
			if *updateSeeds {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read seed: %v (run go test -run TestFuzzSeeds -update-seeds)", err)
			}
			if string(got) != want {
				t.Errorf("%s is stale: run go test -run TestFuzzSeeds -update-seeds", path)
			}
		}
	}
}

// checkDecodeError fails unless err is nil or marked ErrCorrupt.
func checkDecodeError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("decode error %v is not ErrCorrupt", err)
	}
	return err == nil
}

func addSeeds(f *testing.F, target string) {
	for _, seed := range fuzzSeeds()[target] {
		f.Add(seed)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	addSeeds(f, "FuzzDecodeMessage")
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if !checkDecodeError(t, decodeMessage(data, &m)) {
			return
		}
		var again Message
		if err := decodeMessage(appendMessage(nil, &m), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(m, again) {
			t.Fatalf("re-encoding changed %+v to %+v", m, again)
		}
	})
}

func FuzzDecodeSession(f *testing.F) {
	addSeeds(f, "FuzzDecodeSession")
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Session
		if !checkDecodeError(t, decodeSession(data, &s)) {
			return
		}
		var again Session
		if err := decodeSession(appendSession(nil, &s), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		s.OwnerKnown = true // the encoder always stores the owner
		if !reflect.DeepEqual(s, again) {
			t.Fatalf("re-encoding changed %+v to %+v", s, again)
		}
	})
}

func FuzzDecodeSubscription(f *testing.F) {
	addSeeds(f, "FuzzDecodeSubscription")
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Subscription
		if !checkDecodeError(t, decodeSubscription(data, &s)) {
			return
		}
		var again Subscription
		if err := decodeSubscription(appendSubscription(nil, &s), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(s, again) {
			t.Fatalf("re-encoding changed %+v to %+v", s, again)
		}
	})
}

func FuzzDecodeQueueEntry(f *testing.F) {
	addSeeds(f, "FuzzDecodeQueueEntry")
	f.Fuzz(func(t *testing.T, data []byte) {
		var e QueueEntry
		if !checkDecodeError(t, decodeQueueEntry(data, &e)) {
			return
		}
		var again QueueEntry
		if err := decodeQueueEntry(appendQueueEntry(nil, &e), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("re-encoding changed %+v to %+v", e, again)
		}
	})
}

func FuzzDecodeInflightEntry(f *testing.F) {
	addSeeds(f, "FuzzDecodeInflightEntry")
	f.Fuzz(func(t *testing.T, data []byte) {
		var e InflightEntry
		if !checkDecodeError(t, decodeInflightEntry(data, &e)) {
			return
		}
		var again InflightEntry
		if err := decodeInflightEntry(appendInflightEntry(nil, &e), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("re-encoding changed %+v to %+v", e, again)
		}
	})
}

// FuzzParseKey feeds arbitrary keys to every key parser. A parsed key must
// encode back to the same bytes.
func FuzzParseKey(f *testing.F) {
	addSeeds(f, "FuzzParseKey")
	f.Fuzz(func(t *testing.T, key []byte) {
		if client, seq, err := parseQueueKey(key); checkDecodeError(t, err) {
			if got := appendQueueKey(nil, client, seq); string(got) != string(key) {
				t.Fatalf("queue key %x re-encoded as %x", key, got)
			}
		}
		for _, kind := range []byte{kindInflight, kindInbound} {
			if client, pid, err := parsePacketIDKey(key, kind); checkDecodeError(t, err) {
				got := appendClientPrefix(nil, kind, client)
				got = append(got, byte(pid>>8), byte(pid))
				if string(got) != string(key) {
					t.Fatalf("packet id key %x re-encoded as %x", key, got)
				}
			}
		}
		if client, filter, err := parseClientKey(key, kindSubscription); checkDecodeError(t, err) {
			if got := appendSubscriptionKey(nil, client, string(filter)); string(got) != string(key) {
				t.Fatalf("subscription key %x re-encoded as %x", key, got)
			}
		}
		if id, err := parseMessageKey(key); checkDecodeError(t, err) {
			if got := appendMessageKey(nil, id); string(got) != string(key) {
				t.Fatalf("message key %x re-encoded as %x", key, got)
			}
		}
	})
}
