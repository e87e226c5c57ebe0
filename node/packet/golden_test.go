package packet

import (
	"bytes"
	"reflect"
	"testing"
)

// golden holds the decoded form of every capture in testdata/*.hex.
var golden = map[string]Packet{
	// MQTT 3.1
	"v31-connect-full": &Connect{
		ProtocolName: "MQIsdp", ProtocolVersion: Version31, CleanStart: true, KeepAlive: 60,
		ClientID:     "client-31",
		Will:         &Will{Topic: "status/client-31", Payload: []byte("gone"), QoS: 1, Retain: true},
		UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("secret"),
	},
	"v31-connect-minimal":         &Connect{ProtocolName: "MQIsdp", ProtocolVersion: Version31, ClientID: "c"},
	"v31-connack-accepted":        &Connack{},
	"v31-connack-not-authorized":  &Connack{ReasonCode: ReasonNotAuthorized},
	"v31-publish-qos0":            &Publish{Topic: "a/b", Payload: []byte("hello")},
	"v31-publish-qos2-dup-retain": &Publish{Dup: true, QoS: 2, Retain: true, Topic: "a/b", PacketID: 7, Payload: []byte{1, 2}},
	"v31-puback":                  &Puback{PacketID: 7},
	"v31-pubrec":                  &Pubrec{PacketID: 8},
	"v31-pubrel":                  &Pubrel{PacketID: 8},
	"v31-pubcomp":                 &Pubcomp{PacketID: 8},
	"v31-subscribe": &Subscribe{PacketID: 10, Subscriptions: []Subscription{
		{Filter: "a/+", QoS: 1}, {Filter: "b/#", QoS: 2},
	}},
	"v31-suback":      &Suback{PacketID: 10, ReasonCodes: []ReasonCode{ReasonGrantedQoS1, ReasonGrantedQoS2}},
	"v31-unsubscribe": &Unsubscribe{PacketID: 11, Filters: []string{"a/+"}},
	"v31-unsuback":    &Unsuback{PacketID: 11},
	"v31-pingreq":     &Pingreq{},
	"v31-pingresp":    &Pingresp{},
	"v31-disconnect":  &Disconnect{},

	// MQTT 3.1.1
	"v311-connect-minimal": &Connect{ProtocolName: "MQTT", ProtocolVersion: Version311, CleanStart: true, KeepAlive: 30},
	"v311-connect-will-qos2-credentials": &Connect{
		ProtocolName: "MQTT", ProtocolVersion: Version311, KeepAlive: 65535, ClientID: "dev-1",
		Will:         &Will{Topic: "dev/1/status", Payload: []byte{0x00, 0xFF}, QoS: 2, Retain: true},
		UsernameFlag: true, Username: "bob", PasswordFlag: true, Password: []byte{1, 2, 3},
	},
	"v311-connect-username-only": &Connect{
		ProtocolName: "MQTT", ProtocolVersion: Version311, KeepAlive: 10, ClientID: "x",
		UsernameFlag: true, Username: "été",
	},
	"v311-connack-session-present":     &Connack{SessionPresent: true},
	"v311-connack-unsupported-version": &Connack{ReasonCode: ReasonUnsupportedProtocolVersion},
	"v311-connack-identifier-rejected": &Connack{ReasonCode: ReasonClientIDNotValid},
	"v311-connack-server-unavailable":  &Connack{ReasonCode: ReasonServerUnavailable},
	"v311-connack-bad-credentials":     &Connack{ReasonCode: ReasonBadUsernameOrPassword},
	"v311-connack-not-authorized":      &Connack{ReasonCode: ReasonNotAuthorized},
	"v311-publish-qos0-empty-payload":  &Publish{Topic: "t"},
	"v311-publish-qos1-retain":         &Publish{QoS: 1, Retain: true, Topic: "sensors/temp", PacketID: 1, Payload: []byte("21.5")},
	"v311-publish-qos2-dup":            &Publish{Dup: true, QoS: 2, Topic: "a", PacketID: 65535, Payload: []byte{0}},
	"v311-puback":                      &Puback{PacketID: 1},
	"v311-pubrec":                      &Pubrec{PacketID: 2},
	"v311-pubrel":                      &Pubrel{PacketID: 2},
	"v311-pubcomp":                     &Pubcomp{PacketID: 2},
	"v311-subscribe": &Subscribe{PacketID: 3, Subscriptions: []Subscription{
		{Filter: "a/b", QoS: 0}, {Filter: "c/+/d", QoS: 1}, {Filter: "#", QoS: 2},
	}},
	"v311-suback": &Suback{PacketID: 3, ReasonCodes: []ReasonCode{
		ReasonSuccess, ReasonGrantedQoS1, ReasonGrantedQoS2, ReasonUnspecifiedError,
	}},
	"v311-unsubscribe":             &Unsubscribe{PacketID: 4, Filters: []string{"a/b", "#"}},
	"v311-unsuback":                &Unsuback{PacketID: 4},
	"v311-pingreq":                 &Pingreq{},
	"v311-pingresp":                &Pingresp{},
	"v311-disconnect":              &Disconnect{},
	"v311-publish-two-byte-length": &Publish{Topic: "big", Payload: make([]byte, 200)},

	// MQTT 5.0
	"v5-connect-minimal": &Connect{ProtocolName: "MQTT", ProtocolVersion: Version5, CleanStart: true, KeepAlive: 60, ClientID: "v5-client"},
	"v5-connect-all-properties": &Connect{
		ProtocolName: "MQTT", ProtocolVersion: Version5, CleanStart: true, KeepAlive: 120,
		ClientID: "full",
		Will: &Will{
			Topic: "status/full", Payload: []byte("offline"), QoS: 1,
			Properties: Properties{
				PayloadFormat: 1, MessageExpiry: 300, HasMessageExpiry: true,
				ContentType: "text/plain", ResponseTopic: "replies/full",
				CorrelationData: []byte{0xCA, 0xFE}, WillDelay: 5,
				UserProperties: []UserProperty{{"k", "v"}},
			},
		},
		UsernameFlag: true, Username: "carol", PasswordFlag: true, Password: []byte("pw"),
		Properties: Properties{
			SessionExpiry: 3600, HasSessionExpiry: true,
			AuthMethod: "SCRAM-SHA-256", AuthData: []byte{1, 2, 3, 4},
			RequestProblemInfo: 0, HasRequestProblemInfo: true,
			RequestResponseInfo: 1,
			ReceiveMaximum:      20, HasReceiveMaximum: true,
			TopicAliasMaximum: 10,
			UserProperties:    []UserProperty{{"region", "eu"}, {"region", "us"}},
			MaximumPacketSize: 1048576, HasMaximumPacketSize: true,
		},
	},
	"v5-connect-password-only": &Connect{
		ProtocolName: "MQTT", ProtocolVersion: Version5, ClientID: "p",
		PasswordFlag: true, Password: []byte("token"),
	},
	"v5-connack-minimal": &Connack{},
	"v5-connack-all-properties": &Connack{SessionPresent: true, Properties: Properties{
		SessionExpiry: 7200, HasSessionExpiry: true,
		AssignedClientID: "auto-1",
		ServerKeepAlive:  45, HasServerKeepAlive: true,
		AuthMethod: "SCRAM-SHA-256", AuthData: []byte{0xAA, 0xBB},
		ResponseInfo: "resp/", ServerReference: "other:1883", ReasonString: "welcome",
		ReceiveMaximum: 100, HasReceiveMaximum: true,
		TopicAliasMaximum: 5,
		MaximumQoS:        1, HasMaximumQoS: true,
		RetainAvailable: 0, HasRetainAvailable: true,
		UserProperties:    []UserProperty{{"node", "n1"}},
		MaximumPacketSize: 65536, HasMaximumPacketSize: true,
		WildcardSubAvailable: 0, HasWildcardSubAvail: true,
		SubIDAvailable: 0, HasSubIDAvailable: true,
		SharedSubAvailable: 1, HasSharedSubAvailable: true,
	}},
	"v5-connack-not-authorized":     &Connack{ReasonCode: ReasonNotAuthorized, Properties: Properties{ReasonString: "denied"}},
	"v5-publish-qos0-no-properties": &Publish{Topic: "a/b", Payload: []byte("hi")},
	"v5-publish-qos1-all-properties": &Publish{
		QoS: 1, Topic: "req/1", PacketID: 9, Payload: []byte(`{"x":1}`),
		Properties: Properties{
			PayloadFormat: 1, MessageExpiry: 60, HasMessageExpiry: true,
			ContentType: "application/json", ResponseTopic: "resp/1",
			CorrelationData: []byte{0, 1},
			SubscriptionIDs: []uint32{1, 268435455},
			TopicAlias:      3, HasTopicAlias: true,
			UserProperties: []UserProperty{{"a", "1"}, {"a", "2"}},
		},
	},
	"v5-publish-alias-only": &Publish{QoS: 2, PacketID: 10, Payload: []byte("x"),
		Properties: Properties{TopicAlias: 3, HasTopicAlias: true}},
	"v5-puback-short":       &Puback{PacketID: 9},
	"v5-puback-reason-only": &Puback{PacketID: 9, ReasonCode: ReasonNoMatchingSubscribers},
	"v5-puback-properties": &Puback{PacketID: 9, Properties: Properties{
		ReasonString: "ok", UserProperties: []UserProperty{{"k", "v"}},
	}},
	"v5-pubrec-error":     &Pubrec{PacketID: 12, ReasonCode: ReasonQuotaExceeded, Properties: Properties{ReasonString: "quota"}},
	"v5-pubrel-short":     &Pubrel{PacketID: 12},
	"v5-pubrel-not-found": &Pubrel{PacketID: 12, ReasonCode: ReasonPacketIDNotFound},
	"v5-pubcomp-short":    &Pubcomp{PacketID: 12},
	"v5-pubcomp-properties": &Pubcomp{PacketID: 12, ReasonCode: ReasonPacketIDNotFound,
		Properties: Properties{UserProperties: []UserProperty{{"trace", "t1"}}}},
	"v5-subscribe-options": &Subscribe{
		PacketID: 20,
		Properties: Properties{
			SubscriptionIDs: []uint32{300}, UserProperties: []UserProperty{{"k", "v"}},
		},
		Subscriptions: []Subscription{
			{Filter: "a/#", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
			{Filter: "$share/g/b", QoS: 1, RetainHandling: 1},
			{Filter: "c"},
		},
	},
	"v5-suback": &Suback{PacketID: 20, Properties: Properties{ReasonString: "partial"}, ReasonCodes: []ReasonCode{
		ReasonGrantedQoS2, ReasonGrantedQoS1, ReasonSuccess, ReasonUnspecifiedError,
		ReasonNotAuthorized, ReasonTopicFilterInvalid, ReasonPacketIDInUse, ReasonQuotaExceeded,
		ReasonSharedSubsNotSupported, ReasonSubIDsNotSupported, ReasonWildcardSubsNotSupported,
		ReasonImplementationSpecificError,
	}},
	"v5-unsubscribe": &Unsubscribe{PacketID: 21, Properties: Properties{UserProperties: []UserProperty{{"k", "v"}}},
		Filters: []string{"a/#", "c"}},
	"v5-unsuback": &Unsuback{PacketID: 21, ReasonCodes: []ReasonCode{
		ReasonSuccess, ReasonNoSubscriptionExisted, ReasonUnspecifiedError,
		ReasonImplementationSpecificError, ReasonNotAuthorized, ReasonTopicFilterInvalid,
		ReasonPacketIDInUse,
	}},
	"v5-pingreq":              &Pingreq{},
	"v5-pingresp":             &Pingresp{},
	"v5-disconnect-short":     &Disconnect{},
	"v5-disconnect-with-will": &Disconnect{ReasonCode: ReasonDisconnectWithWill},
	"v5-disconnect-properties": &Disconnect{ReasonCode: ReasonUseAnotherServer, Properties: Properties{
		SessionExpiry: 0, HasSessionExpiry: true, ServerReference: "backup:1883",
		ReasonString: "moving", UserProperties: []UserProperty{{"k", "v"}},
	}},
	"v5-auth-short": &Auth{},
	"v5-auth-continue": &Auth{ReasonCode: ReasonContinueAuthentication, Properties: Properties{
		AuthMethod: "SCRAM-SHA-256", AuthData: []byte{0x10, 0x20, 0x30},
		ReasonString: "step 2", UserProperties: []UserProperty{{"k", "v"}},
	}},
	"v5-auth-reauthenticate": &Auth{ReasonCode: ReasonReAuthenticate, Properties: Properties{AuthMethod: "SCRAM-SHA-256"}},
}

// TestGolden_Decode decodes every capture and compares it with its entry in
// golden.
func TestGolden_Decode(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range loadCaptures(t) {
		t.Run(c.name, func(t *testing.T) {
			if seen[c.name] {
				t.Fatalf("%s:%d: capture name used twice", c.file, c.line)
			}
			seen[c.name] = true
			want, ok := golden[c.name]
			if !ok {
				t.Fatalf("%s:%d: no golden entry for the capture", c.file, c.line)
			}

			got, err := readAll(t, c.data, c.version)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded\n%#v\nwant\n%#v", got, want)
			}
		})
	}
	for name := range golden {
		if !seen[name] {
			t.Errorf("golden entry %s has no capture", name)
		}
	}
}

// TestGolden_Encode encodes every golden packet and compares the bytes with
// its capture, which also checks the short forms and the property order.
func TestGolden_Encode(t *testing.T) {
	for _, c := range loadCaptures(t) {
		t.Run(c.name, func(t *testing.T) {
			want, ok := golden[c.name]
			if !ok {
				t.Skip("no golden entry; TestGolden_Decode reports it")
			}
			got, err := want.Encode(nil, encodeVersion(want, c.version))
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(got, c.data) {
				t.Errorf("encoded\n% x\nwant\n% x", got, c.data)
			}

			// Appending to a prefix must keep the prefix and add the same bytes.
			prefix := []byte("prefix")
			got, err = want.Encode(prefix, encodeVersion(want, c.version))
			if err != nil || !bytes.Equal(got, append([]byte("prefix"), c.data...)) {
				t.Errorf("Encode after a prefix: % x, %v", got, err)
			}
		})
	}
}
