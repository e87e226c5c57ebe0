package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/starling-mqtt/starling/node/packet"
)

// decodeWithBrokerCodec decodes b with the broker's codec, an independent
// implementation, to check that the load generator writes valid packets.
func decodeWithBrokerCodec(t *testing.T, b []byte, version byte) packet.Packet {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(b))
	p, err := packet.Read(r, version, packet.DefaultMaxPacketSize)
	if err != nil {
		t.Fatalf("broker codec rejected % X: %v", b, err)
	}
	if r.Buffered() != 0 {
		t.Fatalf("broker codec left %d bytes of % X unread", r.Buffered(), b)
	}
	return p
}

func TestWire_ConnectDecodes(t *testing.T) {
	tests := []struct {
		name string
		opts connectOptions
	}{
		{"v311-clean", connectOptions{version: Version311, clientID: "c1", cleanStart: true, keepAlive: 60}},
		{"v311-credentials", connectOptions{version: Version311, clientID: "c2", username: "u", password: "p"}},
		{"v5-session-expiry", connectOptions{version: Version5, clientID: "c3", sessionExpiry: 300, keepAlive: 30}},
		{"v5-clean", connectOptions{version: Version5, clientID: "c4", cleanStart: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decodeWithBrokerCodec(t, appendConnect(nil, tt.opts), 0)
			c, ok := p.(*packet.Connect)
			if !ok {
				t.Fatalf("decoded %T, expected *packet.Connect", p)
			}
			if c.ProtocolVersion != tt.opts.version {
				t.Errorf("protocol version %d, expected %d", c.ProtocolVersion, tt.opts.version)
			}
			if c.ClientID != tt.opts.clientID {
				t.Errorf("client id %q, expected %q", c.ClientID, tt.opts.clientID)
			}
			if c.CleanStart != tt.opts.cleanStart {
				t.Errorf("clean start %v, expected %v", c.CleanStart, tt.opts.cleanStart)
			}
			if c.KeepAlive != tt.opts.keepAlive {
				t.Errorf("keep alive %d, expected %d", c.KeepAlive, tt.opts.keepAlive)
			}
			if c.Username != tt.opts.username || string(c.Password) != tt.opts.password {
				t.Errorf("credentials %q/%q, expected %q/%q", c.Username, c.Password, tt.opts.username, tt.opts.password)
			}
			if got := c.Properties.SessionExpiry; got != tt.opts.sessionExpiry {
				t.Errorf("session expiry %d, expected %d", got, tt.opts.sessionExpiry)
			}
		})
	}
}

func TestWire_SubscribeDecodes(t *testing.T) {
	for _, version := range []byte{Version311, Version5} {
		p := decodeWithBrokerCodec(t, appendSubscribe(nil, version, 7, "bench/+", 2), version)
		s, ok := p.(*packet.Subscribe)
		if !ok {
			t.Fatalf("version %d: decoded %T, expected *packet.Subscribe", version, p)
		}
		if s.PacketID != 7 {
			t.Errorf("version %d: packet id %d, expected 7", version, s.PacketID)
		}
		if len(s.Subscriptions) != 1 || s.Subscriptions[0].Filter != "bench/+" || s.Subscriptions[0].QoS != 2 {
			t.Errorf("version %d: subscriptions %+v, expected bench/+ at QoS 2", version, s.Subscriptions)
		}
	}
}

func TestWire_PublishRoundTrip(t *testing.T) {
	payload := newPayload(300) // remaining length needs two bytes
	for _, version := range []byte{Version311, Version5} {
		for qos := byte(0); qos <= 2; qos++ {
			var id uint16
			if qos > 0 {
				id = 513
			}
			b := appendPublishHeader(nil, version, qos, "bench/12", id, len(payload))
			b = append(b, payload...)

			p := decodeWithBrokerCodec(t, b, version)
			pub, ok := p.(*packet.Publish)
			if !ok {
				t.Fatalf("v%d qos %d: decoded %T, expected *packet.Publish", version, qos, p)
			}
			if pub.Topic != "bench/12" || pub.QoS != qos || pub.PacketID != id || !bytes.Equal(pub.Payload, payload) {
				t.Errorf("v%d qos %d: broker codec decoded topic %q qos %d id %d", version, qos, pub.Topic, pub.QoS, pub.PacketID)
			}

			f := frame{header: b[0], body: b[1+varintSize(len(b)-3):]}
			got, err := parsePublish(f, version)
			if err != nil {
				t.Fatalf("v%d qos %d: parsePublish: %v", version, qos, err)
			}
			if got.qos != qos || got.packetID != id || !bytes.Equal(got.payload, payload) {
				t.Errorf("v%d qos %d: parsePublish returned qos %d id %d payload of %d bytes", version, qos, got.qos, got.packetID, len(got.payload))
			}
		}
	}
}

func TestWire_AckDecodes(t *testing.T) {
	types := map[byte]packet.Type{
		typePuback:  packet.TypePuback,
		typePubrec:  packet.TypePubrec,
		typePubrel:  packet.TypePubrel,
		typePubcomp: packet.TypePubcomp,
	}
	for ours, theirs := range types {
		for _, version := range []byte{Version311, Version5} {
			p := decodeWithBrokerCodec(t, appendAck(nil, ours, 65535), version)
			if p.Type() != theirs {
				t.Errorf("type %d v%d: decoded %v, expected %v", ours, version, p.Type(), theirs)
			}
		}
	}
}

func TestWire_ParsePublishV5SkipsProperties(t *testing.T) {
	// Topic "a/b", packet id 1, properties: subscription identifier 5 and a
	// user property, then the payload "hi".
	body := []byte{0, 3, 'a', '/', 'b', 0, 1}
	props := []byte{0x0B, 5, 0x26, 0, 1, 'k', 0, 1, 'v'}
	body = append(body, byte(len(props)))
	body = append(body, props...)
	body = append(body, 'h', 'i')

	got, err := parsePublish(frame{header: typePublish<<4 | 1<<1, body: body}, Version5)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.payload) != "hi" {
		t.Errorf("payload %q, expected \"hi\"", got.payload)
	}
	if got.packetID != 1 {
		t.Errorf("packet id %d, expected 1", got.packetID)
	}
}

func TestWire_ParsePublishRejectsTruncated(t *testing.T) {
	tests := []struct {
		name   string
		header byte
		body   []byte
	}{
		{"empty", typePublish << 4, nil},
		{"topic-too-long", typePublish << 4, []byte{0, 9, 'a'}},
		{"missing-packet-id", typePublish<<4 | 1<<1, []byte{0, 1, 'a', 0}},
		{"qos-3", typePublish<<4 | 3<<1, []byte{0, 1, 'a', 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parsePublish(frame{header: tt.header, body: tt.body}, Version311); !errors.Is(err, errMalformed) {
				t.Errorf("error %v, expected errMalformed", err)
			}
		})
	}
}

func TestWire_ParseConnackV5(t *testing.T) {
	var props []byte
	props = append(props, propReceiveMaximum, 0, 20)
	props = append(props, propMaximumPacket)
	props = binary.BigEndian.AppendUint32(props, 4096)
	props = append(props, propMaximumQoS, 1)
	props = append(props, propServerKeepAlive, 0, 15)
	props = append(props, 0x12, 0, 2, 'i', 'd') // assigned client identifier, ignored
	body := append([]byte{1, 0, byte(len(props))}, props...)

	c, err := parseConnack(frame{header: typeConnack << 4, body: body}, Version5)
	if err != nil {
		t.Fatal(err)
	}
	if !c.sessionPresent {
		t.Error("session present not set")
	}
	if c.receiveMaximum != 20 {
		t.Errorf("receive maximum %d, expected 20", c.receiveMaximum)
	}
	if c.maximumPacket != 4096 {
		t.Errorf("maximum packet size %d, expected 4096", c.maximumPacket)
	}
	if c.maximumQoS != 1 {
		t.Errorf("maximum QoS %d, expected 1", c.maximumQoS)
	}
	if c.serverKeepAlive != 15 {
		t.Errorf("server keep alive %d, expected 15", c.serverKeepAlive)
	}
}

func TestWire_ParseConnackUnknownProperty(t *testing.T) {
	body := []byte{0, 0, 2, 0x7F, 0}
	if _, err := parseConnack(frame{header: typeConnack << 4, body: body}, Version5); !errors.Is(err, errMalformed) {
		t.Errorf("error %v, expected errMalformed", err)
	}
}

func TestWire_Varint(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 2097151, 2097152, maxRemainingLength} {
		b := appendVarint(nil, n)
		if len(b) != varintSize(n) {
			t.Errorf("%d: encoded in %d bytes, varintSize says %d", n, len(b), varintSize(n))
		}
		got, size, err := readVarint(b)
		if err != nil || got != n || size != len(b) {
			t.Errorf("%d: decoded %d in %d bytes, err %v", n, got, size, err)
		}
	}
	if _, _, err := readVarint([]byte{0x80, 0x80, 0x80, 0x80, 0x01}); err == nil {
		t.Error("five-byte variable byte integer accepted")
	}
}
