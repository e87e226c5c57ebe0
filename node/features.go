package node

import (
	"fmt"

	"github.com/starling-mqtt/starling/node/packet"
)

// Features switches optional MQTT features. The zero value enables everything
// with the defaults below. The node announces each setting in the MQTT 5.0
// CONNACK and enforces it with the reason code the spec names.
type Features struct {
	// MaxQoS is the highest QoS the node accepts in PUBLISH (0, 1 or 2; default
	// 2). A QoS 1/2 subscription above it is granted at MaxQoS.
	MaxQoS *byte

	// DisableRetain rejects PUBLISH with RETAIN set (DISCONNECT 0x9A).
	DisableRetain bool

	// DisableWildcardSubscriptions rejects filters with + or # (SUBACK 0xA2).
	DisableWildcardSubscriptions bool

	// DisableSubscriptionIDs rejects SUBSCRIBE with a Subscription Identifier
	// (DISCONNECT 0xA1).
	DisableSubscriptionIDs bool

	// DisableSharedSubscriptions rejects $share filters (SUBACK 0x9E).
	DisableSharedSubscriptions bool

	// MaxKeepAlive caps the keep alive a client may ask for, in seconds; a
	// larger or zero value is replaced and announced as Server Keep Alive.
	// Default: 0, no cap.
	MaxKeepAlive uint16

	// MaxSessionExpiry caps the Session Expiry Interval, in seconds; a larger
	// value is replaced and announced in CONNACK. Default: 0, no cap.
	MaxSessionExpiry uint32

	// ResponseInformation is sent to MQTT 5.0 clients that set Request Response
	// Information, as the base for their response topics. Default: empty, none.
	ResponseInformation string

	// SharedStrategy chooses the member of a shared subscription group that
	// gets a message: "round_robin" (default), "random", "hash" (of the
	// publisher's client id, so one publisher's messages go to one member) or
	// "sticky" (the same member until it disconnects).
	SharedStrategy string

	// SharedRedelivery says when a QoS 1 message sent to a shared member whose
	// connection breaks before the PUBACK goes to another member: "immediate"
	// (default) or "on_session_end".
	SharedRedelivery string
}

// Shared subscription settings.
const (
	SharedRoundRobin = "round_robin"
	SharedRandom     = "random"
	SharedHash       = "hash"
	SharedSticky     = "sticky"

	SharedRedeliverImmediate    = "immediate"
	SharedRedeliverOnSessionEnd = "on_session_end"
)

func (f *Features) setDefaults() {
	if f.MaxQoS == nil {
		two := byte(2)
		f.MaxQoS = &two
	}
	setIfZero(&f.SharedStrategy, SharedRoundRobin)
	setIfZero(&f.SharedRedelivery, SharedRedeliverImmediate)
}

func (f *Features) validate() error {
	if *f.MaxQoS > 2 {
		return fmt.Errorf("features.max_qos: %d is invalid: use 0, 1 or 2", *f.MaxQoS)
	}
	switch f.SharedStrategy {
	case SharedRoundRobin, SharedRandom, SharedHash, SharedSticky:
	default:
		return fmt.Errorf("features.shared_strategy: %q is invalid: use round_robin, random, hash or sticky", f.SharedStrategy)
	}
	switch f.SharedRedelivery {
	case SharedRedeliverImmediate, SharedRedeliverOnSessionEnd:
	default:
		return fmt.Errorf("features.shared_redelivery: %q is invalid: use immediate or on_session_end", f.SharedRedelivery)
	}
	if err := packet.ValidUTF8(f.ResponseInformation); err != nil {
		return fmt.Errorf("features.response_information: %w", err)
	}
	return nil
}

// announce adds the feature properties to an MQTT 5.0 CONNACK. Properties
// whose value is the spec's default are left out.
func (f *Features) announce(p *packet.Properties) {
	if *f.MaxQoS < 2 {
		p.MaximumQoS, p.HasMaximumQoS = *f.MaxQoS, true
	}
	if f.DisableRetain {
		p.RetainAvailable, p.HasRetainAvailable = 0, true
	}
	if f.DisableWildcardSubscriptions {
		p.WildcardSubAvailable, p.HasWildcardSubAvail = 0, true
	}
	if f.DisableSubscriptionIDs {
		p.SubIDAvailable, p.HasSubIDAvailable = 0, true
	}
	if f.DisableSharedSubscriptions {
		p.SharedSubAvailable, p.HasSharedSubAvailable = 0, true
	}
}

// negotiateKeepAlive returns the keep alive the connection uses and whether
// the node must announce it as Server Keep Alive [MQTT-3.2.2-21].
func (f *Features) negotiateKeepAlive(requested uint16) (uint16, bool) {
	if f.MaxKeepAlive == 0 || (requested != 0 && requested <= f.MaxKeepAlive) {
		return requested, false
	}
	return f.MaxKeepAlive, true
}
