package packet

import "fmt"

// ReasonCode is an MQTT 5.0 reason code. For 3.1.1 the node maps it to the older
// return codes where a packet has one (CONNACK, SUBACK).
type ReasonCode byte

// Reason codes of MQTT 5.0, section 2.4.
const (
	ReasonSuccess                     ReasonCode = 0x00 // also Normal disconnection and Granted QoS 0
	ReasonGrantedQoS1                 ReasonCode = 0x01
	ReasonGrantedQoS2                 ReasonCode = 0x02
	ReasonDisconnectWithWill          ReasonCode = 0x04
	ReasonNoMatchingSubscribers       ReasonCode = 0x10
	ReasonNoSubscriptionExisted       ReasonCode = 0x11
	ReasonContinueAuthentication      ReasonCode = 0x18
	ReasonReAuthenticate              ReasonCode = 0x19
	ReasonUnspecifiedError            ReasonCode = 0x80
	ReasonMalformedPacket             ReasonCode = 0x81
	ReasonProtocolError               ReasonCode = 0x82
	ReasonImplementationSpecificError ReasonCode = 0x83
	ReasonUnsupportedProtocolVersion  ReasonCode = 0x84
	ReasonClientIDNotValid            ReasonCode = 0x85
	ReasonBadUsernameOrPassword       ReasonCode = 0x86
	ReasonNotAuthorized               ReasonCode = 0x87
	ReasonServerUnavailable           ReasonCode = 0x88
	ReasonServerBusy                  ReasonCode = 0x89
	ReasonBanned                      ReasonCode = 0x8A
	ReasonServerShuttingDown          ReasonCode = 0x8B
	ReasonBadAuthenticationMethod     ReasonCode = 0x8C
	ReasonKeepAliveTimeout            ReasonCode = 0x8D
	ReasonSessionTakenOver            ReasonCode = 0x8E
	ReasonTopicFilterInvalid          ReasonCode = 0x8F
	ReasonTopicNameInvalid            ReasonCode = 0x90
	ReasonPacketIDInUse               ReasonCode = 0x91
	ReasonPacketIDNotFound            ReasonCode = 0x92
	ReasonReceiveMaximumExceeded      ReasonCode = 0x93
	ReasonTopicAliasInvalid           ReasonCode = 0x94
	ReasonPacketTooLarge              ReasonCode = 0x95
	ReasonMessageRateTooHigh          ReasonCode = 0x96
	ReasonQuotaExceeded               ReasonCode = 0x97
	ReasonAdministrativeAction        ReasonCode = 0x98
	ReasonPayloadFormatInvalid        ReasonCode = 0x99
	ReasonRetainNotSupported          ReasonCode = 0x9A
	ReasonQoSNotSupported             ReasonCode = 0x9B
	ReasonUseAnotherServer            ReasonCode = 0x9C
	ReasonServerMoved                 ReasonCode = 0x9D
	ReasonSharedSubsNotSupported      ReasonCode = 0x9E
	ReasonConnectionRateExceeded      ReasonCode = 0x9F
	ReasonMaximumConnectTime          ReasonCode = 0xA0
	ReasonSubIDsNotSupported          ReasonCode = 0xA1
	ReasonWildcardSubsNotSupported    ReasonCode = 0xA2
)

// Error is a protocol violation found while decoding or validating a packet. Code
// is the reason code the server sends (in CONNACK before the session exists, in
// DISCONNECT after it), or the basis of the 3.1.1 reaction.
type Error struct {
	Code   ReasonCode
	Reason string // human-readable detail, safe to log and to send as a Reason String
}

func (e *Error) Error() string {
	return fmt.Sprintf("packet: %s (reason 0x%02X)", e.Reason, byte(e.Code))
}

// Errorf returns an *Error with the code and a formatted reason.
func Errorf(code ReasonCode, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// V3ConnackCode maps c to the CONNACK return code of MQTT 3.1 and 3.1.1:
//
//	0x00 Success                                      -> 0 accepted
//	0x84 Unsupported protocol version                 -> 1 unacceptable protocol version
//	0x85 Client identifier not valid                  -> 2 identifier rejected
//	0x88 Server unavailable, 0x89 Server busy,
//	0x8B Server shutting down, 0x9C Use another server,
//	0x9D Server moved, 0x9F Connection rate exceeded  -> 3 server unavailable
//	0x86 Bad user name or password                    -> 4 bad user name or password
//	0x87 Not authorized, 0x8A Banned,
//	0x8C Bad authentication method                    -> 5 not authorized
//
// Every other code maps to 3, the only refusal of 3.1.1 that blames neither
// the client nor its credentials. For 0x81 Malformed packet and 0x82 Protocol
// error a 3.1.1 server closes the connection instead of sending CONNACK
// [MQTT-3.1.4-1]; the mapping only gives them a value.
func (c ReasonCode) V3ConnackCode() byte {
	switch c {
	case ReasonSuccess:
		return 0
	case ReasonUnsupportedProtocolVersion:
		return 1
	case ReasonClientIDNotValid:
		return 2
	case ReasonBadUsernameOrPassword:
		return 4
	case ReasonNotAuthorized, ReasonBanned, ReasonBadAuthenticationMethod:
		return 5
	default:
		return 3
	}
}

// reasonFromV3Connack maps a 3.1.1 CONNACK return code to the reason code that
// V3ConnackCode maps back to it. It reports false for the reserved codes 6 to
// 255.
func reasonFromV3Connack(code byte) (ReasonCode, bool) {
	switch code {
	case 0:
		return ReasonSuccess, true
	case 1:
		return ReasonUnsupportedProtocolVersion, true
	case 2:
		return ReasonClientIDNotValid, true
	case 3:
		return ReasonServerUnavailable, true
	case 4:
		return ReasonBadUsernameOrPassword, true
	case 5:
		return ReasonNotAuthorized, true
	}
	return 0, false
}

// v3SubackCode maps c to a SUBACK return code of 3.1 and 3.1.1: the granted
// QoS 0, 1 or 2, or 0x80 for any failure. The failure code is sent to 3.1
// clients too, although 3.1 did not define it, because a 3.1 SUBACK has no
// other way to refuse a subscription.
func v3SubackCode(c ReasonCode) byte {
	if c <= ReasonGrantedQoS2 {
		return byte(c)
	}
	return 0x80
}

// reasonSet is a set of reason codes, one bit per code.
type reasonSet [4]uint64

func newReasonSet(codes ...ReasonCode) reasonSet {
	var s reasonSet
	for _, c := range codes {
		s[c/64] |= 1 << (c % 64)
	}
	return s
}

func (s *reasonSet) has(c ReasonCode) bool {
	return s[c/64]&(1<<(c%64)) != 0
}

// validReasons lists, per packet type, the reason codes that MQTT 5.0 allows
// in it (the tables of sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1,
// 3.9.3, 3.11.3, 3.14.2.1 and 3.15.2.1). A code outside its packet's set is
// a protocol error.
var validReasons = [16]reasonSet{
	TypeConnack: newReasonSet(ReasonSuccess, ReasonUnspecifiedError, ReasonMalformedPacket,
		ReasonProtocolError, ReasonImplementationSpecificError, ReasonUnsupportedProtocolVersion,
		ReasonClientIDNotValid, ReasonBadUsernameOrPassword, ReasonNotAuthorized,
		ReasonServerUnavailable, ReasonServerBusy, ReasonBanned, ReasonBadAuthenticationMethod,
		ReasonTopicNameInvalid, ReasonPacketTooLarge, ReasonQuotaExceeded,
		ReasonPayloadFormatInvalid, ReasonRetainNotSupported, ReasonQoSNotSupported,
		ReasonUseAnotherServer, ReasonServerMoved, ReasonConnectionRateExceeded),
	TypePuback:  pubackReasons,
	TypePubrec:  pubackReasons,
	TypePubrel:  pubrelReasons,
	TypePubcomp: pubrelReasons,
	TypeSuback: newReasonSet(ReasonSuccess, ReasonGrantedQoS1, ReasonGrantedQoS2,
		ReasonUnspecifiedError, ReasonImplementationSpecificError, ReasonNotAuthorized,
		ReasonTopicFilterInvalid, ReasonPacketIDInUse, ReasonQuotaExceeded,
		ReasonSharedSubsNotSupported, ReasonSubIDsNotSupported, ReasonWildcardSubsNotSupported),
	TypeUnsuback: newReasonSet(ReasonSuccess, ReasonNoSubscriptionExisted, ReasonUnspecifiedError,
		ReasonImplementationSpecificError, ReasonNotAuthorized, ReasonTopicFilterInvalid,
		ReasonPacketIDInUse),
	TypeDisconnect: newReasonSet(ReasonSuccess, ReasonDisconnectWithWill, ReasonUnspecifiedError,
		ReasonMalformedPacket, ReasonProtocolError, ReasonImplementationSpecificError,
		ReasonNotAuthorized, ReasonServerBusy, ReasonServerShuttingDown, ReasonKeepAliveTimeout,
		ReasonSessionTakenOver, ReasonTopicFilterInvalid, ReasonTopicNameInvalid,
		ReasonReceiveMaximumExceeded, ReasonTopicAliasInvalid, ReasonPacketTooLarge,
		ReasonMessageRateTooHigh, ReasonQuotaExceeded, ReasonAdministrativeAction,
		ReasonPayloadFormatInvalid, ReasonRetainNotSupported, ReasonQoSNotSupported,
		ReasonUseAnotherServer, ReasonServerMoved, ReasonSharedSubsNotSupported,
		ReasonConnectionRateExceeded, ReasonMaximumConnectTime, ReasonSubIDsNotSupported,
		ReasonWildcardSubsNotSupported),
	TypeAuth: newReasonSet(ReasonSuccess, ReasonContinueAuthentication, ReasonReAuthenticate),
}

var (
	pubackReasons = newReasonSet(ReasonSuccess, ReasonNoMatchingSubscribers, ReasonUnspecifiedError,
		ReasonImplementationSpecificError, ReasonNotAuthorized, ReasonTopicNameInvalid,
		ReasonPacketIDInUse, ReasonQuotaExceeded, ReasonPayloadFormatInvalid)
	pubrelReasons = newReasonSet(ReasonSuccess, ReasonPacketIDNotFound)
)

// validReason reports whether MQTT 5.0 allows code in a packet of type t.
func validReason(t Type, code ReasonCode) bool {
	return validReasons[t].has(code)
}
