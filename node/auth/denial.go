package auth

import "github.com/starling-mqtt/starling/node/packet"

// SubscribeDeniedReason is the SUBACK reason code for a topic filter that
// Policy.CanSubscribe denies: 0x87 Not authorized. The packet codec turns
// every failure code into 0x80 for MQTT 3.1 and 3.1.1 clients, so the node
// sends this code for every protocol version.
const SubscribeDeniedReason = packet.ReasonNotAuthorized

// PublishDenied returns the node's reply to a PUBLISH that
// Policy.CanPublish denies. The message is dropped in every case and goes
// to no subscriber and no retained store.
//
//   - MQTT 5.0: the PUBACK (QoS 1) or PUBREC (QoS 2) carries 0x87 Not
//     authorized, so ack is true and reason is that code.
//   - MQTT 3.1 and 3.1.1 have no way to report the refusal. The server must
//     either acknowledge as usual or close the connection [MQTT-3.3.5-2];
//     Starling acknowledges with success (ack true, reason 0x00), so the
//     client does not resend the message forever and keeps its connection.
//
// A QoS 0 PUBLISH gets no acknowledgement whatever the version.
func PublishDenied(protocolVersion byte) (reason packet.ReasonCode, ack bool) {
	if protocolVersion == packet.Version5 {
		return packet.ReasonNotAuthorized, true
	}
	return packet.ReasonSuccess, true
}
