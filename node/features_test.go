package node

import (
	"testing"

	"github.com/starling-mqtt/starling/node/packet"
)

func TestFeatures_AnnouncedInConnack(t *testing.T) {
	one := byte(1)
	srv := testServer(t, "", func(c *Config) {
		c.Features = Features{MaxQoS: &one, DisableRetain: true, DisableWildcardSubscriptions: true,
			DisableSubscriptionIDs: true, DisableSharedSubscriptions: true, MaxKeepAlive: 30,
			MaxSessionExpiry: 100, ResponseInformation: "resp/"}
	})
	c := dialRaw(t, srv, packet.Version5)
	ack := c.connect(&packet.Connect{ClientID: "feat", KeepAlive: 600,
		Properties: packet.Properties{SessionExpiry: 1000, HasSessionExpiry: true, RequestResponseInfo: 1}})
	p := ack.Properties
	checks := []struct {
		name string
		ok   bool
	}{
		{"maximum QoS 1", p.HasMaximumQoS && p.MaximumQoS == 1},
		{"retain unavailable", p.HasRetainAvailable && p.RetainAvailable == 0},
		{"wildcards unavailable", p.HasWildcardSubAvail && p.WildcardSubAvailable == 0},
		{"subscription ids unavailable", p.HasSubIDAvailable && p.SubIDAvailable == 0},
		{"shared unavailable", p.HasSharedSubAvailable && p.SharedSubAvailable == 0},
		{"server keep alive 30", p.HasServerKeepAlive && p.ServerKeepAlive == 30},
		{"session expiry capped to 100", p.HasSessionExpiry && p.SessionExpiry == 100},
		{"response information", p.ResponseInfo == "resp/"},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("CONNACK lacks %s: %+v", ch.name, p)
		}
	}

	codes := c.subscribe(1,
		packet.Subscription{Filter: "a/+", QoS: 1},
		packet.Subscription{Filter: "$share/g/a", QoS: 1},
		packet.Subscription{Filter: "a/b", QoS: 2})
	want := []packet.ReasonCode{packet.ReasonWildcardSubsNotSupported, packet.ReasonSharedSubsNotSupported, packet.ReasonGrantedQoS1}
	for i := range want {
		if codes[i] != want[i] {
			t.Errorf("SUBACK code %d = 0x%02X, want 0x%02X", i, byte(codes[i]), byte(want[i]))
		}
	}
}

func TestFeatures_EnforcedWithReasonCodes(t *testing.T) {
	one := byte(1)
	cases := []struct {
		name string
		send packet.Packet
		want packet.ReasonCode
	}{
		{"qos-above-maximum", &packet.Publish{QoS: 2, PacketID: 1, Topic: "t"}, packet.ReasonQoSNotSupported},
		{"retain-disabled", &packet.Publish{Retain: true, Topic: "t"}, packet.ReasonRetainNotSupported},
		{"subscription-id-disabled", &packet.Subscribe{PacketID: 1, Properties: packet.Properties{SubscriptionIDs: []uint32{7}},
			Subscriptions: []packet.Subscription{{Filter: "t"}}}, packet.ReasonSubIDsNotSupported},
		{"payload-not-utf8", &packet.Publish{Topic: "t", Payload: []byte{0xff}, Properties: packet.Properties{PayloadFormat: 1}}, packet.ReasonPayloadFormatInvalid},
	}
	srv := testServer(t, "", func(c *Config) {
		c.Features = Features{MaxQoS: &one, DisableRetain: true, DisableSubscriptionIDs: true}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, srv, packet.Version5)
			c.connect(&packet.Connect{ClientID: "enf-" + tc.name, CleanStart: true})
			c.send(tc.send)
			got := c.expectClosed()
			if len(got) != 1 {
				t.Fatalf("got %d packets, want one DISCONNECT", len(got))
			}
			if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != tc.want {
				t.Fatalf("got %+v, want DISCONNECT 0x%02X", got[0], byte(tc.want))
			}
		})
	}
}
