package packet

import (
	"bufio"
	"bytes"
	"testing"
)

func benchPublish3() *Publish {
	return &Publish{Topic: "sensors/building-7/floor-3/temp", QoS: 1, PacketID: 42, Payload: bytes.Repeat([]byte{'x'}, 64)}
}

func benchPublish5() *Publish {
	p := benchPublish3()
	p.Properties = Properties{
		PayloadFormat: 1, MessageExpiry: 3600, HasMessageExpiry: true,
		ContentType: "application/json", ResponseTopic: "replies/7",
		CorrelationData: []byte("req-0001"),
		UserProperties:  []UserProperty{{"trace", "abc123"}},
	}
	return p
}

func benchConnect() *Connect {
	return &Connect{
		ProtocolName: "MQTT", ProtocolVersion: Version5, CleanStart: true, KeepAlive: 60,
		ClientID:     "bench-client-0001",
		Will:         &Will{Topic: "status/bench", Payload: []byte("offline"), QoS: 1},
		UsernameFlag: true, Username: "user", PasswordFlag: true, Password: []byte("password"),
		Properties: Properties{SessionExpiry: 3600, HasSessionExpiry: true, ReceiveMaximum: 100, HasReceiveMaximum: true},
	}
}

func benchSubscribe() *Subscribe {
	return &Subscribe{PacketID: 5, Subscriptions: []Subscription{
		{Filter: "sensors/+/temp", QoS: 1}, {Filter: "alerts/#", QoS: 2}, {Filter: "cmd/device-1", QoS: 0},
	}}
}

// benchRead decodes the encoding of p once per iteration from a reader that
// replays the same bytes, so that only Read is measured.
func benchRead(b *testing.B, p Packet, encodeVersion, readVersion byte) {
	data, err := p.Encode(nil, encodeVersion)
	if err != nil {
		b.Fatal(err)
	}
	src := bytes.NewReader(data)
	r := bufio.NewReader(src)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		src.Reset(data)
		r.Reset(src)
		if _, err := Read(r, readVersion, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncode(b *testing.B, p Packet, version byte) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = p.Encode(buf[:0], version); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkRead_PublishV311(b *testing.B) { benchRead(b, benchPublish3(), Version311, Version311) }
func BenchmarkRead_PublishV5(b *testing.B)   { benchRead(b, benchPublish3(), Version5, Version5) }
func BenchmarkRead_PublishV5Properties(b *testing.B) {
	benchRead(b, benchPublish5(), Version5, Version5)
}
func BenchmarkRead_ConnectV311(b *testing.B) { benchRead(b, benchConnect(), Version311, 0) }
func BenchmarkRead_ConnectV5(b *testing.B)   { benchRead(b, benchConnect(), Version5, 0) }
func BenchmarkRead_SubscribeV311(b *testing.B) {
	benchRead(b, benchSubscribe(), Version311, Version311)
}
func BenchmarkRead_SubscribeV5(b *testing.B) { benchRead(b, benchSubscribe(), Version5, Version5) }

func BenchmarkEncode_PublishV311(b *testing.B) { benchEncode(b, benchPublish3(), Version311) }
func BenchmarkEncode_PublishV5(b *testing.B)   { benchEncode(b, benchPublish3(), Version5) }
func BenchmarkEncode_PublishV5Properties(b *testing.B) {
	benchEncode(b, benchPublish5(), Version5)
}
func BenchmarkEncode_ConnectV311(b *testing.B)   { benchEncode(b, benchConnect(), Version311) }
func BenchmarkEncode_ConnectV5(b *testing.B)     { benchEncode(b, benchConnect(), Version5) }
func BenchmarkEncode_SubscribeV311(b *testing.B) { benchEncode(b, benchSubscribe(), Version311) }
func BenchmarkEncode_SubscribeV5(b *testing.B)   { benchEncode(b, benchSubscribe(), Version5) }
