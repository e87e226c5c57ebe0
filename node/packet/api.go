package packet

import "bufio"

// The functions below form the decoding API that the node uses. Their bodies
// live in decode.go.

// DefaultMaxPacketSize is the largest packet the server accepts when no limit is
// configured: the MQTT maximum remaining length plus the largest fixed header.
const DefaultMaxPacketSize = 268435455 + 5

// Read reads one control packet from r.
//
// version is the negotiated protocol version, or 0 before CONNECT: then only a
// CONNECT is accepted, and its own protocol level decides how it is decoded.
// maxSize bounds the whole packet (fixed header included), and 0 means
// DefaultMaxPacketSize. A larger remaining length is rejected with
// ReasonPacketTooLarge before anything is allocated for the body. Read
// allocates one buffer for the body and the decoded packet may alias it. A
// body over 64 KiB is the exception: its buffer grows as the bytes arrive, so
// that a bare fixed header cannot make Read allocate the full claimed size.
//
// Errors: io.EOF or io.ErrUnexpectedEOF from r pass through (wrapped); every
// protocol violation is an *Error carrying the reason code the server must send
// (ReasonMalformedPacket, ReasonProtocolError, ReasonPacketTooLarge, ...).
// The packet is nil with an error, except for a CONNECT whose protocol name and
// level were read: then the partly decoded *Connect comes back too, so that the
// node can reply in the client's version (CONNACK return code 1 for an
// unsupported level in 3.1.1, a CONNACK reason code in 5.0).
//
// Read checks everything the codec can know alone: fixed header flags, remaining
// length encoding, string lengths, UTF-8 rules (well formed, no U+0000, no
// surrogates), property identifiers allowed for the packet type, duplicate
// properties, QoS 3, PUBLISH with QoS 0 and DUP set, a missing payload in
// SUBSCRIBE and UNSUBSCRIBE, packet id 0 where one is required, reserved bits in
// subscription options and CONNECT flags, reason codes not allowed for the
// packet type, and in 5.0 a PUBLISH with an empty topic name and no topic
// alias. Topic name and filter rules (wildcards, empty names in 3.1.1) belong
// to the router and are not checked here. Nor is the direction of a packet:
// a server-to-client type such as CONNACK decodes like any other.
func Read(r *bufio.Reader, version byte, maxSize uint32) (Packet, error) {
	return read(r, version, maxSize, nil)
}

// ReadInto reads like Read, except that it decodes a PUBLISH into *pub, which it
// clears first, and returns pub. A reader that handles each packet
// before it reads the next can so reuse one Publish for all of them. The
// caller must not keep pub or let anything refer to it after handling the
// packet; the strings and slices it contains stay valid.
func ReadInto(r *bufio.Reader, version byte, maxSize uint32, pub *Publish) (Packet, error) {
	return read(r, version, maxSize, pub)
}
