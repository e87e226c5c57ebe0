package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests that drive the broker with other programs: Debian's mosquitto_sub
// and mosquitto_pub, and the python3-paho-mqtt library.

// syncBuffer is a bytes.Buffer that a child process may write to while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// runTool runs a command to completion within timeout and returns its
// combined output, failing the test if it exits with an error.
func runTool(t testing.TB, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestCLI_ReadmeFlow runs the first commands of the README: a persistent
// QoS 1 subscriber on "a/#" and a QoS 1 publish to "a/b", live and while the
// subscriber is offline, for MQTT 3.1.1 and 5.0.
func TestCLI_ReadmeFlow(t *testing.T) {
	t.Parallel()
	subBin := requireTool(t, "mosquitto_sub")
	pubBin := requireTool(t, "mosquitto_pub")
	b := startBroker(t, brokerOptions{})

	for _, version := range []string{"mqttv311", "mqttv5"} {
		t.Run(version, func(t *testing.T) {
			id := "s1-" + version
			subArgs := []string{"-h", b.Host(), "-p", b.Port(), "-V", version, "-q", "1", "-c", "-i", id, "-t", "a/#", "-v"}
			pubArgs := []string{"-h", b.Host(), "-p", b.Port(), "-V", version, "-q", "1", "-t", "a/b"}

			// Create the persistent session and its subscription (-E exits
			// after the SUBACK), so the next run is subscribed from its
			// first moment. Its stdout is block-buffered in a pipe, so the
			// test cannot watch for a SUBACK line instead.
			runTool(t, ioTimeout, subBin, append(subArgs, "-E")...)

			// Start the subscriber, publish, and let -C 1 end it after one message.
			var out syncBuffer
			sub := exec.Command(subBin, append(subArgs, "-C", "1", "-W", "30")...)
			sub.Stdout, sub.Stderr = &out, &out
			if err := sub.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- sub.Wait() }()
			t.Cleanup(func() {
				sub.Process.Kill()
				<-exited
			})
			runTool(t, ioTimeout, pubBin, append(pubArgs, "-m", "hi")...)
			select {
			case err := <-exited:
				exited <- err // for the cleanup
				if err != nil {
					t.Fatalf("mosquitto_sub: %v\n%s", err, out.String())
				}
			case <-time.After(ioTimeout):
				t.Fatalf("mosquitto_sub did not exit after one message:\n%s", out.String())
			}
			if !strings.Contains(out.String(), "a/b hi") {
				t.Fatalf("mosquitto_sub output lacks %q:\n%s", "a/b hi", out.String())
			}

			// Offline: the persistent session queues the next message.
			runTool(t, ioTimeout, pubBin, append(pubArgs, "-m", "while away")...)
			got := runTool(t, 2*ioTimeout, subBin, append(subArgs, "-C", "1", "-W", "15")...)
			if strings.TrimSpace(got) != "a/b while away" {
				t.Fatalf("resumed mosquitto_sub printed %q, expected %q", got, "a/b while away")
			}
		})
	}
}

// pythonPaho is a small python3-paho-mqtt 1.6 client: it connects with MQTT
// 5.0, subscribes at QoS 2, publishes to itself at QoS 2 with a user
// property and prints what it receives.
const pythonPaho = `
import sys
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

host, port = sys.argv[1], int(sys.argv[2])
result = {}

def on_connect(client, userdata, flags, rc, properties=None):
    if rc != 0:
        print("connect failed", rc); sys.exit(2)
    client.subscribe("py/#", qos=2)

def on_subscribe(client, userdata, mid, granted, properties=None):
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("from", "python")]
    client.publish("py/t", b"hello", qos=2, properties=props)

def on_message(client, userdata, msg):
    user = dict(msg.properties.UserProperty) if hasattr(msg.properties, "UserProperty") else {}
    print("got", msg.topic, msg.payload.decode(), msg.qos, user.get("from"))
    client.disconnect()

c = mqtt.Client(client_id="py-client", protocol=mqtt.MQTTv5)
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect(host, port, keepalive=30)
c.loop_forever(timeout=1.0)
`

// TestCLI_PythonPahoV5 exchanges a QoS 2 message with the python3-paho-mqtt
// library. Debian installs it for /usr/bin/python3 only.
func TestCLI_PythonPahoV5(t *testing.T) {
	t.Parallel()
	python := requireTool(t, "/usr/bin/python3")
	if err := exec.Command(python, "-c", "import paho.mqtt.client").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3-paho-mqtt is not installed for %s (CI=true): %v", python, err)
		}
		t.Skipf("python3-paho-mqtt is not installed for %s: %v", python, err)
	}
	b := startBroker(t, brokerOptions{})

	script := filepath.Join(t.TempDir(), "client.py")
	if err := os.WriteFile(script, []byte(pythonPaho), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runTool(t, 2*ioTimeout, python, script, b.Host(), b.Port())
	if strings.TrimSpace(out) != "got py/t hello 2 python" {
		t.Fatalf("python client printed %q, expected %q", out, "got py/t hello 2 python")
	}
}
