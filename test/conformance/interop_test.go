package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// The interoperability tests run a short round trip through the broker with
// three client stacks written by others: a retained QoS 1 message that a
// later subscriber receives with RETAIN set, then a live QoS 2 message.

// needTool returns the path of an external program, or skips the test when
// it is missing; with CI=true a missing program fails the test instead.
func needTool(t *testing.T, path string) string {
	t.Helper()
	if filepath.IsAbs(path) {
		if _, err := os.Stat(path); err == nil {
			return path
		}
	} else if p, err := exec.LookPath(path); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing; CI must install it (Debian packages mosquitto-clients, python3-paho-mqtt)", path)
	}
	t.Skipf("%s is missing; install it to run this test", path)
	return ""
}

// interopTimeout bounds each external client run.
const interopTimeout = 30 * time.Second

// [MQTT-7.0.0-2] v3
func TestInterop_PahoGo(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := b.topic("paho")
	connect := func(role string) paho.Client {
		opts := paho.NewClientOptions().
			AddBroker("tcp://" + b.addr).
			SetClientID(b.clientID(role)).
			SetProtocolVersion(4).
			SetCleanSession(true).
			SetAutoReconnect(false).
			SetConnectTimeout(ioTimeout)
		c := paho.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
			t.Fatalf("paho connect: %v", tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}

	pub := connect("pub")
	if tok := pub.Publish(topic, 1, true, "retained"); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("paho publish retained: %v", tok.Error())
	}

	type received struct {
		payload string
		qos     byte
		retain  bool
	}
	got := make(chan received, 4)
	sub := connect("sub")
	tok := sub.Subscribe(topic, 2, func(_ paho.Client, m paho.Message) {
		got <- received{string(m.Payload()), m.Qos(), m.Retained()}
	})
	if !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("paho subscribe: %v", tok.Error())
	}
	if tok := pub.Publish(topic, 2, false, "live"); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("paho publish QoS 2: %v", tok.Error())
	}

	want := []received{{"retained", 1, true}, {"live", 2, false}}
	for _, w := range want {
		select {
		case r := <-got:
			if r != w {
				t.Errorf("paho received %+v, want %+v", r, w)
			}
		case <-time.After(ioTimeout):
			t.Fatalf("paho subscriber received nothing; want %+v", w)
		}
	}
}

// [MQTT-7.0.0-2] v3
func TestInterop_MosquittoClientsV3(t *testing.T) {
	t.Parallel()
	testMosquittoClients(t, "mqttv311")
}

// [MQTT-4.2.0-1] v5
func TestInterop_MosquittoClientsV5(t *testing.T) {
	t.Parallel()
	testMosquittoClients(t, "mqttv5")
}

// testMosquittoClients publishes a retained message with mosquitto_pub,
// subscribes with mosquitto_sub, and once the retained message is printed,
// publishes a QoS 2 message that must follow it.
func testMosquittoClients(t *testing.T, version string) {
	pubPath := needTool(t, "mosquitto_pub")
	subPath := needTool(t, "mosquitto_sub")
	b := startBroker(t)
	host, port, _ := net.SplitHostPort(b.addr)
	topic := b.topic("mosquitto")
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()

	pub := func(payload string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, pubPath, append([]string{"-h", host, "-p", port, "-V", version,
			"-i", b.clientID("pub"), "-t", topic, "-m", payload}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub %s: %v\n%s", payload, err, out)
		}
	}
	pub("retained", "-q", "1", "-r")

	sub := exec.CommandContext(ctx, subPath, "-h", host, "-p", port, "-V", version, "-i", b.clientID("sub"),
		"-t", topic, "-q", "2", "-C", "2", "-W", "20", "-F", "%r %q %p")
	stdout, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	sub.Stderr = &stderr
	if err := sub.Start(); err != nil {
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	lines := bufio.NewScanner(stdout)
	var got []string
	if lines.Scan() {
		got = append(got, lines.Text())
		pub("live", "-q", "2")
	}
	for lines.Scan() {
		got = append(got, lines.Text())
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v (output %q, stderr %q)", err, got, stderr.String())
	}
	want := []string{"1 1 retained", "0 2 live"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("mosquitto_sub printed %q, want %q (RETAIN, QoS, payload)", got, want)
	}
}

// pythonScript runs the round trip with Debian's python3-paho-mqtt (1.6 API)
// and prints the messages the subscriber received as JSON.
const pythonScript = `
import json, sys, threading
import paho.mqtt.client as mqtt

host, port, topic, prefix, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
version = mqtt.MQTTv5 if proto == "5" else mqtt.MQTTv311
got, done = [], threading.Event()

def start(cid, on_message=None):
    connected, subscribed = threading.Event(), threading.Event()
    c = mqtt.Client(client_id=cid, protocol=version)
    c.on_connect = lambda *a: connected.set()
    c.on_subscribe = lambda *a: subscribed.set()
    if on_message:
        c.on_message = on_message
    c.connect(host, port, 30)
    c.loop_start()
    if not connected.wait(5):
        sys.exit("connect timed out")
    return c, subscribed

def on_message(client, userdata, msg):
    got.append({"payload": msg.payload.decode(), "qos": msg.qos, "retain": bool(msg.retain)})
    if len(got) == 2:
        done.set()

pub, _ = start(prefix + "p")
pub.publish(topic, "retained", qos=1, retain=True).wait_for_publish(5)
sub, subscribed = start(prefix + "s", on_message)
sub.subscribe(topic, qos=2)
if not subscribed.wait(5):
    sys.exit("subscribe timed out")
pub.publish(topic, "live", qos=2).wait_for_publish(5)
done.wait(5)
for c in (pub, sub):
    c.disconnect()
    c.loop_stop()
print(json.dumps(got))
`

// [MQTT-7.0.0-2] v3
func TestInterop_PythonPahoV3(t *testing.T) {
	t.Parallel()
	testPythonPaho(t, "4")
}

// [MQTT-4.2.0-1] v5
func TestInterop_PythonPahoV5(t *testing.T) {
	t.Parallel()
	testPythonPaho(t, "5")
}

// testPythonPaho runs pythonScript with /usr/bin/python3, which is where
// Debian installs python3-paho-mqtt; the python3 first on PATH may be
// another installation without it.
func testPythonPaho(t *testing.T, proto string) {
	python := needTool(t, "/usr/bin/python3")
	if err := exec.Command(python, "-c", "import paho.mqtt.client").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3-paho-mqtt is missing for %s: %v", python, err)
		}
		t.Skipf("python3-paho-mqtt is missing for %s", python)
	}
	b := startBroker(t)
	host, port, _ := net.SplitHostPort(b.addr)
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", pythonScript, host, port, b.topic("python"), b.clientID("py"), proto)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("python paho: %v\n%s%s", err, out, stderr)
	}
	type message struct {
		Payload string `json:"payload"`
		QoS     int    `json:"qos"`
		Retain  bool   `json:"retain"`
	}
	var got []message
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python paho output %q: %v", out, err)
	}
	want := []message{{"retained", 1, true}, {"live", 2, false}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("python paho received %+v, want %+v", got, want)
	}
}
