// Package packet is the MQTT codec of Starling. It decodes and encodes the
// control packets of MQTT 3.1 (protocol name "MQIsdp", level 3), 3.1.1
// (level 4) and 5.0 (level 5). It handles both directions, so the server, the
// tests and a load tool share one implementation.
//
// # What it owns
//
//   - Read: framing (fixed header, remaining length, maxSize before any body
//     allocation) and every rule that one packet alone shows to be broken.
//     Violations come back as *Error with the reason code to send.
//   - Encode on every packet type: appends to a caller's buffer and does not
//     allocate when the buffer has room. In 5.0 the acknowledgements,
//     DISCONNECT and AUTH take the short forms the spec allows, and properties
//     are written in ascending identifier order, only those the packet type
//     allows. For 3.1 and 3.1.1 reason codes become the older return codes
//     (ReasonCode.V3ConnackCode, and 0x80 for a failed subscription), and
//     properties are left out.
//   - AppendPublishProperties and DecodePublishProperties, for the node to
//     store the properties of a message as the bytes of a PUBLISH property
//     block; ValidUTF8, for strings the node builds itself.
//
// # What it does not own
//
// I/O policy (deadlines, buffer sizes, closing the connection) and all state
// across packets belong to the node: the negotiated version, packet
// identifiers in flight, topic aliases and their maximum, Receive Maximum,
// the client's Maximum Packet Size for outgoing packets, and authentication
// exchanges. Topic name and filter syntax belong to the router. Nor does the
// codec check which side may send a packet type, so a client that sends
// CONNACK or a PUBLISH carrying a Subscription Identifier [MQTT-3.3.4-6]
// gets past Read and must be rejected by the node.
//
// # Decisions
//
//   - Packet identifier 0 where one is required is ReasonProtocolError in
//     every version, because the packet parses but carries a forbidden value.
//   - A property not allowed for its packet type is ReasonMalformedPacket, as
//     section 2.2.2.2 of MQTT 5.0 says; a duplicate is ReasonProtocolError.
//   - A reason code not allowed for its packet type is ReasonProtocolError.
//   - A CONNECT with a known protocol name but a level that does not go with it
//     ("MQTT" with level 3 or 6, "MQIsdp" with level 4) is
//     ReasonUnsupportedProtocolVersion; an unknown name is ReasonProtocolError.
//   - MQTT 3.1 input is decoded with the 3.1.1 rules, except that DUP may be set
//     on PUBREL, SUBSCRIBE and UNSUBSCRIBE and the first CONNACK byte is
//     ignored, as 3.1 defined them.
//
// # Known limitations
//
//   - Non-minimal variable byte integers of up to four bytes are accepted on
//     input. MQTT 5.0 requires the sender to use the minimum [MQTT-1.5.5-1] but
//     sets no rule for the receiver. The encoder always writes the minimum.
//   - Properties treats an empty string or byte slice as absent, so an empty
//     Correlation Data or Reason String that a peer did send is not re-sent.
//   - Decoded strings are copies; decoded byte slices (payload, password,
//     correlation and authentication data) alias the body buffer of their
//     packet, which Read never reuses.
//   - The encoder checks lengths and bit ranges but not the UTF-8 rules or
//     rules that span fields, such as a password flag without a user name.
//
// The package has no locks. Read and Encode share no state, so any number of
// goroutines may call them, each on its own reader and buffer.
package packet
