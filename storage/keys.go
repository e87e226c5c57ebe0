package storage

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// Record kinds: the first byte of every key, as listed in doc.go. Changing a
// value here changes the on-disk layout and needs a new layoutVersion.
const (
	kindMeta         byte = 0x01
	kindSession      byte = 0x10
	kindSubscription byte = 0x11
	kindQueue        byte = 0x12
	kindInflight     byte = 0x13
	kindInbound      byte = 0x14
	kindMessage      byte = 0x20
	kindRetained     byte = 0x21
	kindAuthRecord   byte = 0x30
	kindOutbox       byte = 0x40 // see outbox.go
	kindForwardSeq   byte = 0x41
	kindHighWater    byte = 0x42
	kindCustody      byte = 0x43 // see custody.go
)

// clientSep ends the client id inside a key. MQTT forbids U+0000 in client
// ids, so the first 0x00 after the kind byte always ends the id.
const clientSep byte = 0x00

var (
	layoutKey  = []byte{kindMeta, 'l', 'a', 'y', 'o', 'u', 't'}
	idLimitKey = []byte{kindMeta, 'i', 'd', 'l', 'i', 'm', 'i', 't'}
)

// childKinds are the per-client record kinds that DeleteSession removes.
var childKinds = [...]byte{kindSubscription, kindQueue, kindInflight, kindInbound}

// validClientID reports whether id can be placed in a key.
func validClientID(id string) bool {
	return strings.IndexByte(id, clientSep) < 0
}

func appendSessionKey(dst []byte, clientID string) []byte {
	dst = append(dst, kindSession)
	return append(dst, clientID...)
}

// appendClientPrefix appends the first key of client's records of kind.
func appendClientPrefix(dst []byte, kind byte, clientID string) []byte {
	dst = append(dst, kind)
	dst = append(dst, clientID...)
	return append(dst, clientSep)
}

// appendClientPrefixEnd appends the exclusive upper bound of client's
// records of kind. No other client's keys fall inside the range, because a
// client id that extends clientID continues with a byte of at least 0x01.
func appendClientPrefixEnd(dst []byte, kind byte, clientID string) []byte {
	dst = append(dst, kind)
	dst = append(dst, clientID...)
	return append(dst, clientSep+1)
}

func appendSubscriptionKey(dst []byte, clientID, filter string) []byte {
	dst = appendClientPrefix(dst, kindSubscription, clientID)
	return append(dst, filter...)
}

func appendQueueKey(dst []byte, clientID string, seq uint64) []byte {
	dst = appendClientPrefix(dst, kindQueue, clientID)
	return binary.BigEndian.AppendUint64(dst, seq)
}

func appendInflightKey(dst []byte, clientID string, packetID uint16) []byte {
	dst = appendClientPrefix(dst, kindInflight, clientID)
	return binary.BigEndian.AppendUint16(dst, packetID)
}

func appendInboundKey(dst []byte, clientID string, packetID uint16) []byte {
	dst = appendClientPrefix(dst, kindInbound, clientID)
	return binary.BigEndian.AppendUint16(dst, packetID)
}

func appendMessageKey(dst []byte, id uint64) []byte {
	dst = append(dst, kindMessage)
	return binary.BigEndian.AppendUint64(dst, id)
}

func appendRetainedKey(dst []byte, topic string) []byte {
	dst = append(dst, kindRetained)
	return append(dst, topic...)
}

// kindBounds returns the key range that contains every record of kind.
func kindBounds(kind byte) (lower, upper []byte) {
	return []byte{kind}, []byte{kind + 1}
}

// parseClientKey splits a per-client key of kind into the client id and the
// bytes after the separator.
func parseClientKey(key []byte, kind byte) (clientID string, rest []byte, err error) {
	if len(key) == 0 || key[0] != kind {
		return "", nil, corruptf("key %x does not have kind 0x%02x", key, kind)
	}
	i := bytes.IndexByte(key[1:], clientSep)
	if i < 0 {
		return "", nil, corruptf("key %x has no client id separator", key)
	}
	return string(key[1 : 1+i]), key[2+i:], nil
}

// parseQueueKey returns the client id and sequence number of a queue key.
func parseQueueKey(key []byte) (string, uint64, error) {
	clientID, rest, err := parseClientKey(key, kindQueue)
	if err != nil {
		return "", 0, err
	}
	if len(rest) != 8 {
		return "", 0, corruptf("queue key %x has a %d-byte sequence number, expected 8", key, len(rest))
	}
	return clientID, binary.BigEndian.Uint64(rest), nil
}

// parsePacketIDKey returns the client id and packet id of an inflight or
// inbound QoS 2 key.
func parsePacketIDKey(key []byte, kind byte) (string, uint16, error) {
	clientID, rest, err := parseClientKey(key, kind)
	if err != nil {
		return "", 0, err
	}
	if len(rest) != 2 {
		return "", 0, corruptf("key %x has a %d-byte packet id, expected 2", key, len(rest))
	}
	return clientID, binary.BigEndian.Uint16(rest), nil
}

// parseMessageKey returns the message id of a message body key.
func parseMessageKey(key []byte) (uint64, error) {
	if len(key) != 9 || key[0] != kindMessage {
		return 0, corruptf("message key %x is not 0x%02x plus 8 bytes", key, kindMessage)
	}
	return binary.BigEndian.Uint64(key[1:]), nil
}
