package transport

import (
	"bufio"
	"io"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/starling-mqtt/starling/internal/tlsutil"
)

// readPacket reads one MQTT packet and returns its first byte and body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	length, shift := 0, 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		length |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		shift += 7
	}
	body := make([]byte, length)
	_, err = io.ReadFull(r, body)
	return first, body, err
}

// TestPaho_WSS connects a real MQTT client library over wss with a client
// certificate, the way the docs suggest testing a wss listener.
func TestPaho_WSS(t *testing.T) {
	pki := newTestPKI(t)
	l := startListener(t, Config{URL: "wss://127.0.0.1:0/mqtt", TLS: pki.serverOptions(tlsutil.ClientAuthRequired)})

	// A minimal broker: CONNACK, then record packet types until DISCONNECT.
	got := make(chan byte, 8)
	go func() {
		defer close(got)
		c, err := l.AcceptConn()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		r := bufio.NewReader(c)
		for {
			typ, _, err := readPacket(r)
			if err != nil {
				return
			}
			got <- typ >> 4
			switch typ >> 4 {
			case 1: // CONNECT
				if _, err := c.Write([]byte{0x20, 0x02, 0x00, 0x00}); err != nil {
					return
				}
			case 14: // DISCONNECT
				return
			}
		}
	}()

	opts := mqtt.NewClientOptions().
		AddBroker("wss://" + l.Addr().String() + "/mqtt").
		SetClientID("paho-wss").
		SetTLSConfig(pki.clientConfig(&pki.client)).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(waitTimeout).
		SetProtocolVersion(4)
	client := mqtt.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("paho connect over wss: %v", tok.Error())
	}
	if tok := client.Publish("a/b", 0, false, "hello"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("paho publish: %v", tok.Error())
	}
	client.Disconnect(250)

	var types []byte
	for typ := range got {
		types = append(types, typ)
	}
	want := []byte{1, 3, 14} // CONNECT, PUBLISH, DISCONNECT
	if string(types) != string(want) {
		t.Fatalf("server saw packet types %v, want %v", types, want)
	}
}
