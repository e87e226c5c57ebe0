package conformance

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/starling-mqtt/starling/node"
	"github.com/starling-mqtt/starling/node/packet"
)

// wsPath is the path of the node's WebSocket listener.
const wsPath = "/mqtt"

// withWebSocketListener adds a ws:// listener on loopback as the node's
// second listener, after the TCP one that other clients of the test use.
func withWebSocketListener() brokerOption {
	return func(c *node.Config) {
		c.Listeners = append(c.Listeners, node.ListenerConfig{URL: "ws://127.0.0.1:0" + wsPath})
	}
}

// wsConn turns a WebSocket connection into the byte stream of a net.Conn.
// Each Write is sent as one binary message, and Read returns the payloads
// of the broker's messages in order, so MQTT framing is independent of
// WebSocket framing. Read fails on a text message. One goroutine may read
// while another writes, as gorilla/websocket allows.
type wsConn struct {
	*websocket.Conn
	r io.Reader // the current message, nil between messages
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			kind, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, fmt.Errorf("the broker sent a WebSocket message of type %d, want binary (2) [MQTT-6.0.0-1]", kind)
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// writeText sends p as one text message.
func (c *wsConn) writeText(p []byte) error { return c.WriteMessage(websocket.TextMessage, p) }

var _ net.Conn = (*wsConn)(nil)

// dialWS opens a WebSocket connection to the node's ws listener, offering
// the subprotocols, and returns a client on it. writeBuffer, when not 0,
// sets the dialer's write buffer size: a message longer than the buffer
// goes out as several frames.
func dialWS(t testing.TB, b *broker, version byte, subprotocols []string, writeBuffer int) (*client, *wsConn) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: ioTimeout, Subprotocols: subprotocols, WriteBufferSize: writeBuffer}
	url := "ws://" + b.addrOf(1) + wsPath
	ws, resp, err := d.Dial(url, nil)
	if err != nil {
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("WebSocket dial %s offering %q: %v (%s)", url, subprotocols, err, status)
	}
	conn := &wsConn{Conn: ws}
	return newConnClient(t, b, conn, version), conn
}

// [MQTT-6.0.0-4] v3
func TestV3_WebSocketSubprotocol(t *testing.T) {
	t.Parallel()
	testWebSocketSubprotocol(t, v3)
}

// [MQTT-6.0.0-4] v5
func TestV5_WebSocketSubprotocol(t *testing.T) {
	t.Parallel()
	testWebSocketSubprotocol(t, v5)
}

// testWebSocketSubprotocol checks that the broker selects "mqtt" from the
// subprotocols a client offers, also when it is not the first one, and
// that MQTT then works on the connection.
func testWebSocketSubprotocol(t *testing.T, version byte) {
	b := startBroker(t, withWebSocketListener())
	for _, offer := range [][]string{{"mqtt"}, {"x-conformance-chat", "mqtt"}} {
		t.Run(strings.Join(offer, ","), func(t *testing.T) {
			c, ws := dialWS(t, b, version, offer, 0)
			if got := ws.Subprotocol(); got != "mqtt" {
				t.Errorf("the broker selected subprotocol %q from %q, want \"mqtt\"", got, offer)
			}
			c.id = b.clientID("ws")
			c.connect()
			c.ping()
		})
	}
}

// [MQTT-6.0.0-1] v3
func TestV3_WebSocketTextMessageCloses(t *testing.T) {
	t.Parallel()
	testWebSocketTextMessageCloses(t, v3)
}

// [MQTT-6.0.0-1] v5
func TestV5_WebSocketTextMessageCloses(t *testing.T) {
	t.Parallel()
	testWebSocketTextMessageCloses(t, v5)
}

// testWebSocketTextMessageCloses sends a well-formed PINGREQ in a text
// message: the broker must close the connection, not send PINGRESP. The
// node closes with code 1003 (unsupported data), but the standard requires
// only the close.
func testWebSocketTextMessageCloses(t *testing.T, version byte) {
	b := startBroker(t, withWebSocketListener())
	c, ws := dialWS(t, b, version, []string{"mqtt"}, 0)
	c.id = b.clientID("ws")
	c.connect()
	if err := ws.writeText(encodeAs(t, version, &packet.Pingreq{})); err != nil {
		t.Fatalf("write text message: %v", err)
	}
	c.expectClosed()
	t.Logf("connection ended: %v", c.readErr)
}

// [MQTT-6.0.0-2] v3
func TestV3_WebSocketFraming(t *testing.T) {
	t.Parallel()
	testWebSocketFraming(t, v3)
}

// [MQTT-6.0.0-2] v5
func TestV5_WebSocketFraming(t *testing.T) {
	t.Parallel()
	testWebSocketFraming(t, v5)
}

// testWebSocketFraming checks that MQTT packets need not line up with
// WebSocket messages or frames: a CONNECT sent one byte per message, a
// PUBLISH in one message of many frames, and three packets in one message.
// A TCP subscriber checks that the messages arrived whole.
func testWebSocketFraming(t *testing.T, version byte) {
	b := startBroker(t, withWebSocketListener())
	topic := b.topic("t")
	sub := newClient(t, b, version, "sub")
	sub.mustSubscribe(topic, 1)

	// A 16-byte write buffer makes gorilla/websocket send a message longer
	// than that as a first frame and continuation frames.
	c, _ := dialWS(t, b, version, []string{"mqtt"}, 16)
	c.id = b.clientID("ws")
	for _, octet := range encodeAs(t, version, c.connectPacket()) {
		c.write([]byte{octet})
	}
	if ack := expectPacket[*packet.Connack](c); ack.ReasonCode != packet.ReasonSuccess {
		t.Fatalf("CONNACK code 0x%02X for a CONNECT split into one-byte messages", byte(ack.ReasonCode))
	}

	long := strings.Repeat("fragmented", 20)
	c.publish(topic, long, 1, false)
	sub.expectMessage(topic, long)

	// SUBSCRIBE, PUBLISH and PINGREQ in one message. The client receives its
	// own message back, because No Local is 0.
	var packed []byte
	packed = append(packed, encodeAs(t, version, &packet.Subscribe{PacketID: 100, Subscriptions: []packet.Subscription{{Filter: topic, QoS: 1}}})...)
	packed = append(packed, encodeAs(t, version, &packet.Publish{Topic: topic, QoS: 1, PacketID: 101, Payload: []byte("packed")})...)
	packed = append(packed, encodeAs(t, version, &packet.Pingreq{})...)
	c.write(packed)
	await(c, func(a *packet.Suback) bool { return a.PacketID == 100 })
	await(c, func(a *packet.Puback) bool { return a.PacketID == 101 })
	await[*packet.Pingresp](c, nil)
	if p := await[*packet.Publish](c, nil); string(p.Payload) != "packed" {
		t.Errorf("WebSocket client received %s, want its own message", describe(p))
	} else {
		c.ack(p)
	}
	sub.expectMessage(topic, "packed")
}
