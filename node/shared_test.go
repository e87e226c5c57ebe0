package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
)

// sharedMembers connects n v5 members to $share/g/jobs with the given QoS.
func sharedMembers(t *testing.T, srv *Server, prefix string, n int, qos byte, persistent bool) []*rawClient {
	t.Helper()
	var out []*rawClient
	for i := 0; i < n; i++ {
		c := dialRaw(t, srv, packet.Version5)
		cp := &packet.Connect{ClientID: fmt.Sprintf("%s-%d", prefix, i), CleanStart: true}
		if persistent {
			cp.Properties.SessionExpiry, cp.Properties.HasSessionExpiry = 300, true
		}
		c.connect(cp)
		c.subscribe(1, packet.Subscription{Filter: "$share/g/jobs", QoS: qos})
		out = append(out, c)
	}
	return out
}

func TestShared_EachMessageToOneMember(t *testing.T) {
	for _, strategy := range []string{SharedRoundRobin, SharedRandom, SharedHash, SharedSticky} {
		t.Run(strategy, func(t *testing.T) {
			srv := testServer(t, "", func(c *Config) { c.Features.SharedStrategy = strategy })
			members := sharedMembers(t, srv, "m-"+strategy, 3, 1, false)
			plain := dialRaw(t, srv, packet.Version5)
			plain.connect(&packet.Connect{ClientID: "plain-" + strategy, CleanStart: true})
			plain.subscribe(1, packet.Subscription{Filter: "jobs", QoS: 1})

			pub := dialRaw(t, srv, packet.Version5)
			pub.connect(&packet.Connect{ClientID: "pub-" + strategy, CleanStart: true})
			const n = 30
			for i := 0; i < n; i++ {
				pub.publish(uint16(i+1), 1, "jobs", fmt.Sprint(i), false)
			}

			seen := map[string]int{}
			perMember := make([]int, len(members))
			for i, m := range members {
				for {
					p, err := m.readTimeout(300 * time.Millisecond)
					if err != nil {
						break
					}
					pub := p.(*packet.Publish)
					seen[string(pub.Payload)]++
					perMember[i]++
					m.ack(pub)
				}
			}
			// Each message reaches exactly one member of the group.
			if len(seen) != n {
				t.Fatalf("group received %d distinct messages, want %d", len(seen), n)
			}
			for payload, count := range seen {
				if count != 1 {
					t.Errorf("message %s delivered %d times to the group", payload, count)
				}
			}
			if strategy == SharedRoundRobin {
				for i, got := range perMember {
					if got != n/len(members) {
						t.Errorf("round robin: member %d got %d, want %d", i, got, n/len(members))
					}
				}
			}
			for i := 0; i < n; i++ {
				plain.ack(plain.expectPublish())
			}
		})
	}
}

func TestShared_QoS1RedeliveredWhenMemberBreaks(t *testing.T) {
	srv := testServer(t, "", nil)
	members := sharedMembers(t, srv, "rd", 2, 1, false)
	pub := dialRaw(t, srv, packet.Version5)
	pub.connect(&packet.Connect{ClientID: "rd-pub", CleanStart: true})
	pub.publish(1, 1, "jobs", "work", false)

	// Whichever member got it breaks its connection before the PUBACK.
	var holder, other *rawClient
	if p, err := members[0].readTimeout(time.Second); err == nil {
		if _, ok := p.(*packet.Publish); ok {
			holder, other = members[0], members[1]
		}
	}
	if holder == nil {
		holder, other = members[1], members[0]
		holder.expectPublish()
	}
	holder.nc.Close()

	// The QoS 1 message goes to the remaining member (MQTT 5.0 section 4.8.2).
	got := other.expectPublish()
	if string(got.Payload) != "work" {
		t.Fatalf("redelivered %q, want work", got.Payload)
	}
	other.ack(got)
	waitFor(t, 2*time.Second, "redelivery counter", func() bool { return srv.Stats().SharedRedelivered == 1 })
}

func TestShared_QoS2StaysWithMember(t *testing.T) {
	srv := testServer(t, "", nil)
	members := sharedMembers(t, srv, "q2s", 2, 2, true)
	pub := dialRaw(t, srv, packet.Version5)
	pub.connect(&packet.Connect{ClientID: "q2s-pub", CleanStart: true})
	pub.publish(1, 2, "jobs", "exact", false)

	holderIdx := -1
	for i, m := range members {
		if p, err := m.readTimeout(500 * time.Millisecond); err == nil {
			if _, ok := p.(*packet.Publish); ok {
				holderIdx = i
			}
		}
	}
	if holderIdx < 0 {
		t.Fatal("no member received the QoS 2 message")
	}
	members[holderIdx].nc.Close()
	other := members[1-holderIdx]

	// [MQTT-4.8.2-4] Never sent to another member.
	other.expectNothing(500 * time.Millisecond)

	// Completed to the same client when it reconnects.
	back := dialRaw(t, srv, packet.Version5)
	back.connect(&packet.Connect{ClientID: fmt.Sprintf("q2s-%d", holderIdx),
		Properties: packet.Properties{SessionExpiry: 300, HasSessionExpiry: true}})
	got := back.expectPublish()
	if !got.Dup || string(got.Payload) != "exact" {
		t.Fatalf("resend dup=%v payload=%q", got.Dup, got.Payload)
	}
}

func TestShared_NoRetainedAndNoLocalRejected(t *testing.T) {
	srv := testServer(t, "", nil)
	pub := dialRaw(t, srv, packet.Version5)
	pub.connect(&packet.Connect{ClientID: "sr-pub", CleanStart: true})
	pub.publish(1, 1, "jobs", "retained", true)

	c := dialRaw(t, srv, packet.Version5)
	c.connect(&packet.Connect{ClientID: "sr", CleanStart: true})
	c.subscribe(1, packet.Subscription{Filter: "$share/g/jobs", QoS: 1})
	// No retained message for a shared subscription (MQTT 5.0 section 4.8.2).
	c.expectNothing(300 * time.Millisecond)

	// [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
	c.send(&packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{{Filter: "$share/g/x", NoLocal: true}}})
	got := c.expectClosed()
	if len(got) != 1 {
		t.Fatalf("got %d packets, want DISCONNECT", len(got))
	}
	if d, ok := got[0].(*packet.Disconnect); !ok || d.ReasonCode != packet.ReasonProtocolError {
		t.Fatalf("got %+v, want DISCONNECT 0x82", got[0])
	}
}
