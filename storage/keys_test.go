package storage

import (
	"bytes"
	"errors"
	"testing"
)

func TestKeys_QueueKeysSortBySeq(t *testing.T) {
	seqs := []uint64{0, 1, 255, 256, 1 << 32, 1<<64 - 1}
	for i := 1; i < len(seqs); i++ {
		a := appendQueueKey(nil, "c", seqs[i-1])
		b := appendQueueKey(nil, "c", seqs[i])
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("queue key of seq %d does not sort before seq %d", seqs[i-1], seqs[i])
		}
	}
}

func TestKeys_ClientRangeHoldsOnlyThatClient(t *testing.T) {
	lower := appendClientPrefix(nil, kindQueue, "a")
	upper := appendClientPrefixEnd(nil, kindQueue, "a")
	tests := []struct {
		name   string
		key    []byte
		inside bool
	}{
		{"own-first", appendQueueKey(nil, "a", 0), true},
		{"own-last", appendQueueKey(nil, "a", 1<<64-1), true},
		{"extension-0x01", appendQueueKey(nil, "a\x01", 0), false},
		{"extension-b", appendQueueKey(nil, "ab", 0), false},
		{"shorter-prefix-byte", appendQueueKey(nil, "`", 1<<64-1), false},
		{"other-kind", appendInflightKey(nil, "a", 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inside := bytes.Compare(tt.key, lower) >= 0 && bytes.Compare(tt.key, upper) < 0
			if inside != tt.inside {
				t.Errorf("key %x inside [%x, %x) = %v, want %v", tt.key, lower, upper, inside, tt.inside)
			}
		})
	}
}

func TestKeys_ParseRoundTrip(t *testing.T) {
	client, seq, err := parseQueueKey(appendQueueKey(nil, "cl/1", 42))
	if err != nil || client != "cl/1" || seq != 42 {
		t.Errorf("parseQueueKey = %q, %d, %v; want cl/1, 42, nil", client, seq, err)
	}
	client, pid, err := parsePacketIDKey(appendInflightKey(nil, "x", 65535), kindInflight)
	if err != nil || client != "x" || pid != 65535 {
		t.Errorf("parsePacketIDKey = %q, %d, %v; want x, 65535, nil", client, pid, err)
	}
	id, err := parseMessageKey(appendMessageKey(nil, 1<<63))
	if err != nil || id != 1<<63 {
		t.Errorf("parseMessageKey = %d, %v; want %d, nil", id, err, uint64(1<<63))
	}
	client, filter, err := parseClientKey(appendSubscriptionKey(nil, "", "a/#"), kindSubscription)
	if err != nil || client != "" || string(filter) != "a/#" {
		t.Errorf("parseClientKey = %q, %q, %v; want \"\", a/#, nil", client, filter, err)
	}
}

func TestKeys_ParseCorrupt(t *testing.T) {
	tests := []struct {
		name  string
		parse func() error
	}{
		{"queue-short-seq", func() error { _, _, err := parseQueueKey([]byte{kindQueue, 'a', 0, 1}); return err }},
		{"queue-wrong-kind", func() error { _, _, err := parseQueueKey(appendInflightKey(nil, "a", 1)); return err }},
		{"queue-no-separator", func() error { _, _, err := parseQueueKey([]byte{kindQueue, 'a'}); return err }},
		{"packet-id-long", func() error {
			_, _, err := parsePacketIDKey([]byte{kindInbound, 'a', 0, 1, 2, 3}, kindInbound)
			return err
		}},
		{"message-short", func() error { _, err := parseMessageKey([]byte{kindMessage, 1}); return err }},
		{"empty", func() error { _, _, err := parseClientKey(nil, kindSubscription); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.parse(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("error = %v, want ErrCorrupt", err)
			}
		})
	}
}
