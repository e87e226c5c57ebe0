package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// fleetUsers are the users of the fleet configuration: two devices in group
// fleet, an operator and an administrator. Each password is pw-NAME.
var fleetUsers = []secUser{
	{name: "dev-1", password: "pw-dev-1", groups: []string{"fleet"}},
	{name: "dev-2", password: "pw-dev-2", groups: []string{"fleet"}},
	{name: "ops", password: "pw-ops", roles: []string{"operator"}},
	{name: "admin", password: "pw-admin", roles: []string{"admin"}},
}

// fleetConfig gives every listener of n the group, roles and global rules
// that the access tests check, and refuses anonymous clients on all of
// them. Listeners whose name starts with "m" require a client certificate
// whose name equals the client id.
func fleetConfig(n *secNode) string {
	var b strings.Builder
	b.WriteString("listeners:\n")
	names := make([]string, 0, len(n.addr))
	for name := range n.addr {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		scheme := n.scheme[name]
		path := ""
		if strings.HasPrefix(scheme, "ws") {
			path = "/mqtt"
		}
		fmt.Fprintf(&b, "  - name: %s\n    url: %s://%s%s\n    allow_anonymous: false\n", name, scheme, n.addr[name], path)
		if scheme == "tls" || scheme == "wss" {
			auth := "optional"
			if strings.HasPrefix(name, "m") {
				auth = "required"
				b.WriteString("    cert_require_client_id: true\n")
			}
			fmt.Fprintf(&b, "    tls: {cert_file: %[1]s/server.pem, key_file: %[1]s/server-key.pem, client_auth: %[2]s, client_ca_file: %[1]s/ca.pem, crl_files: [%[1]s/ca.crl], reload_every: 200ms}\n",
				n.certs, auth)
		}
	}
	b.WriteString(`auth:
  throttle: {free_failures: 100, ban_after: 1000}
  groups:
    - {name: fleet, roles: [device]}
  roles:
    - name: device
      rules:
        - {action: publish, permission: allow, topic: "devices/%u/telemetry", max_qos: 1}
        - {action: publish, permission: allow, topic: "devices/%u/state", retain: true}
        - {action: publish, permission: allow, topic: "devices/%u/will"}
        - {action: subscribe, permission: allow, topic: "devices/%u/cmd/#"}
    - name: operator
      rules:
        - {action: subscribe, permission: allow, topic: "devices/+/telemetry"}
        - {action: subscribe, permission: allow, topic: "devices/+/state"}
        - {action: subscribe, permission: allow, topic: "devices/+/will"}
        - {action: publish, permission: allow, topic: "devices/+/cmd/#", max_qos: 1}
    - name: admin
      rules:
        - {action: all, permission: allow, topic: "#"}
  rules:
    - {subject: all, action: all, permission: deny, topic: "restricted/#", priority: 100}
    - {subject: all, action: subscribe, permission: allow, topic: "inbox/%u/#"}
`)
	return b.String()
}

// TestSecurity_TLSAndWSSAccessMatrix runs one matrix of publishes,
// subscriptions, retained messages and wills over a tls and a wss listener
// of a node configured with a user, a group, roles and global rules. Each
// client gets exactly what the rules grant: every refusal is checked by its
// reason code, and an operator who may read every device's topics receives
// only the allowed messages.
func TestSecurity_TLSAndWSSAccessMatrix(t *testing.T) {
	for _, transport := range []string{"tls", "wss"} {
		t.Run(transport, func(t *testing.T) {
			n := startSecNode(t, secNodeSpec{listeners: map[string]string{"l": transport}, users: fleetUsers, config: fleetConfig})

			if _, code := n.login("l", "anon", "", "", nil); code != 0x87 {
				t.Errorf("anonymous client: CONNACK %#x, want 0x87", code)
			}
			if _, code := n.login("l", "dev-1", "dev-1", "wrong", nil); code != 0x86 {
				t.Errorf("wrong password: CONNACK %#x, want 0x86", code)
			}

			ops := n.mustLogin("l", "ops", "ops", "pw-ops")
			for _, f := range []string{"devices/+/telemetry", "devices/+/state", "devices/+/will"} {
				if code := ops.subscribe(f, 1); code != 1 {
					t.Fatalf("ops: SUBSCRIBE %q: %#x, want 1", f, code)
				}
			}

			dev := n.mustLogin("l", "dev-1", "dev-1", "pw-dev-1")
			for _, tc := range []struct {
				topic  string
				qos    byte
				retain bool
				want   byte
			}{
				{"devices/dev-1/telemetry", 1, false, 0},
				{"devices/dev-1/telemetry", 2, false, 0x87}, // above the rule's max_qos
				{"devices/dev-2/telemetry", 1, false, 0x87}, // another device
				{"devices/dev-1/state", 1, false, 0x87},     // the rule needs the retain flag
				{"devices/dev-1/state", 1, true, 0},
				{"devices/dev-2/state", 1, true, 0x87}, // a forged retained state
				{"devices/dev-1/cmd/x", 1, false, 0x87},
				{"$SYS/broker/uptime", 1, false, 0x87},
				{"restricted/a", 1, false, 0x87},
			} {
				payload := fmt.Sprintf("%s q%d r%v", tc.topic, tc.qos, tc.retain)
				if got := dev.publish(tc.topic, tc.qos, tc.retain, payload); got != tc.want {
					t.Errorf("dev-1: PUBLISH %q QoS %d retain %v: reason %#x, want %#x", tc.topic, tc.qos, tc.retain, got, tc.want)
				}
			}
			// Only the two allowed publishes reach the operator, who may
			// read every device's telemetry and state.
			got := []string{ops.receive(ioTimeout).Topic, ops.receive(ioTimeout).Topic}
			sort.Strings(got)
			if want := []string{"devices/dev-1/state", "devices/dev-1/telemetry"}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("ops received %v, want %v", got, want)
			}
			ops.expectNoPublish(quietPeriod)

			for _, tc := range []struct {
				filter string
				want   byte
			}{
				{"devices/dev-1/cmd/#", 1},
				{"devices/+/telemetry", 0x87},
				{"devices/#", 0x87},
				{"#", 0x87},
				{"+/+/cmd/#", 0x87},
				{"$share/g/devices/dev-2/cmd/#", 0x87},
				{"$share/g/devices/dev-1/cmd/#", 1},
				{"inbox/dev-1/#", 1},
				{"inbox/+/#", 0x87},
				{"$SYS/#", 0x87},
				{"restricted/#", 0x87},
			} {
				if got := dev.subscribe(tc.filter, 1); got != tc.want {
					t.Errorf("dev-1: SUBSCRIBE %q: %#x, want %#x", tc.filter, got, tc.want)
				}
			}
			// A command reaches dev-1 once per granted subscription: the
			// plain one and the shared one.
			if got := ops.publish("devices/dev-1/cmd/reboot", 1, false, "now"); got != 0 {
				t.Fatalf("ops: command to dev-1: reason %#x, want 0", got)
			}
			if got := ops.publish("devices/dev-1/cmd/wipe", 2, false, "q2"); got != 0x87 {
				t.Errorf("ops: QoS 2 command above max_qos 1: reason %#x, want 0x87", got)
			}
			for i := 0; i < 2; i++ {
				if m := dev.receive(ioTimeout); m.Topic != "devices/dev-1/cmd/reboot" {
					t.Errorf("dev-1 received %q, want devices/dev-1/cmd/reboot", m.Topic)
				}
			}
			dev.expectNoPublish(quietPeriod)

			// The administrator's rule allows "#", but the global deny on
			// restricted/# has a higher priority, and "#" never grants $SYS.
			admin := n.mustLogin("l", "admin", "admin", "pw-admin")
			for _, tc := range []struct {
				filter string
				want   byte
			}{{"#", 0x87}, {"data/#", 1}, {"restricted/#", 0x87}, {"$SYS/#", 0x87}} {
				if got := admin.subscribe(tc.filter, 1); got != tc.want {
					t.Errorf("admin: SUBSCRIBE %q: %#x, want %#x", tc.filter, got, tc.want)
				}
			}
			if got := admin.publish("$SYS/broker/clients/connected", 1, false, "0"); got != 0x87 {
				t.Errorf("admin: PUBLISH to $SYS: reason %#x, want 0x87", got)
			}

			// A new subscriber gets the retained state of dev-1 and not the
			// forged state of dev-2, which was never stored.
			ops2 := n.mustLogin("l", "ops-2", "ops", "pw-ops")
			if code := ops2.subscribe("devices/+/state", 1); code != 1 {
				t.Fatalf("ops-2: SUBSCRIBE: %#x", code)
			}
			if m := ops2.receive(ioTimeout); m.Topic != "devices/dev-1/state" || !m.Retain {
				t.Errorf("ops-2 received %q retain %v, want the retained devices/dev-1/state", m.Topic, m.Retain)
			}
			ops2.expectNoPublish(quietPeriod)

			// Wills are publishes: one on a topic the rules refuse, or
			// without the retain flag its rule needs, refuses the CONNECT.
			for _, w := range []willSpec{
				{Topic: "devices/dev-2/will", Payload: "forged", QoS: 1},
				{Topic: "devices/dev-1/state", Payload: "offline", QoS: 1},
			} {
				if _, code := n.login("l", "dev-1-w", "dev-1", "pw-dev-1", &w); code != 0x87 {
					t.Errorf("will on %q retain %v: CONNACK %#x, want 0x87", w.Topic, w.Retain, code)
				}
			}
			// An allowed will is published when the connection breaks.
			will, code := n.login("l", "dev-1-w", "dev-1", "pw-dev-1", &willSpec{Topic: "devices/dev-1/will", Payload: "lost", QoS: 1})
			if code != 0 {
				t.Fatalf("allowed will: CONNACK %#x, want 0", code)
			}
			will.close()
			if m := ops.receive(ioTimeout); m.Topic != "devices/dev-1/will" || string(m.Payload) != "lost" {
				t.Errorf("ops received %q %q, want the will devices/dev-1/will lost", m.Topic, m.Payload)
			}
			ops.expectNoPublish(quietPeriod)
		})
	}
}

// TestSecurity_RevokedRuleStopsWillAndDelivery revokes the operator's rules
// through the admin API while its subscription and a device's will are in
// place: the will is not published to the operator and live messages stop
// at once.
func TestSecurity_RevokedRuleStopsWillAndDelivery(t *testing.T) {
	n := startSecNode(t, secNodeSpec{listeners: map[string]string{"l": "wss"}, users: fleetUsers, config: fleetConfig})
	ops := n.mustLogin("l", "ops", "ops", "pw-ops")
	if code := ops.subscribe("devices/+/telemetry", 1); code != 1 {
		t.Fatalf("ops: SUBSCRIBE: %#x", code)
	}
	if code := ops.subscribe("devices/+/will", 1); code != 1 {
		t.Fatalf("ops: SUBSCRIBE: %#x", code)
	}
	dev, code := n.login("l", "dev-1", "dev-1", "pw-dev-1", &willSpec{Topic: "devices/dev-1/will", Payload: "lost", QoS: 1})
	if code != 0 {
		t.Fatalf("dev-1: CONNACK %#x", code)
	}
	if got := dev.publish("devices/dev-1/telemetry", 1, false, "before"); got != 0 {
		t.Fatalf("dev-1: PUBLISH: %#x", got)
	}
	if m := ops.receive(ioTimeout); string(m.Payload) != "before" {
		t.Fatalf("ops received %q, want before", m.Payload)
	}

	// The operator may no longer read telemetry, and the device may no
	// longer publish its will; the operator may still read wills.
	n.ctl("role", "put", "operator", "--rule", "allow:subscribe:devices/+/will", "--rule", "allow:publish:devices/+/cmd/#")
	n.ctl("role", "put", "device", "--rule", "allow:publish:devices/%u/telemetry")
	if got := dev.publish("devices/dev-1/telemetry", 1, false, "after"); got != 0 {
		t.Fatalf("dev-1: PUBLISH after the change: %#x", got)
	}
	dev.close()
	ops.expectNoPublish(2 * quietPeriod)
}

// TestSecurity_PahoOverWSSGetsOnlyItsRules connects paho.mqtt.golang (MQTT
// 3.1.1) over wss: a wide subscription fails, the device's own command
// topic works, and the operator reads the retained state of dev-1 only.
func TestSecurity_PahoOverWSSGetsOnlyItsRules(t *testing.T) {
	n := startSecNode(t, secNodeSpec{listeners: map[string]string{"l": "wss"}, users: fleetUsers, config: fleetConfig})
	dial := func(clientID, user, password string) mqtt.Client {
		t.Helper()
		opts := mqtt.NewClientOptions().AddBroker("wss://" + n.addr["l"] + "/mqtt").
			SetClientID(clientID).SetUsername(user).SetPassword(password).
			SetTLSConfig(n.tlsConfig(nil)).SetAutoReconnect(false).SetConnectRetry(false).
			SetConnectTimeout(ioTimeout)
		c := mqtt.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
			t.Fatalf("%s: connect over wss: %v", clientID, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	subscribe := func(c mqtt.Client, filter string, in *inbox) byte {
		t.Helper()
		tok := c.Subscribe(filter, 1, in.handle)
		if !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
			t.Fatalf("SUBSCRIBE %q: %v", filter, tok.Error())
		}
		return tok.(*mqtt.SubscribeToken).Result()[filter]
	}

	dev := dial("dev-1", "dev-1", "pw-dev-1")
	// paho hands a message to the handler of every filter that matches,
	// refused or not, so the refused filter gets an inbox of its own.
	var devIn, wideIn inbox
	if code := subscribe(dev, "devices/#", &wideIn); code != 0x80 {
		t.Errorf("dev-1: SUBSCRIBE devices/#: %#x, want 0x80", code)
	}
	if code := subscribe(dev, "devices/dev-1/cmd/#", &devIn); code != 1 {
		t.Errorf("dev-1: SUBSCRIBE devices/dev-1/cmd/#: %#x, want 1", code)
	}
	for _, p := range []struct {
		topic  string
		retain bool
	}{{"devices/dev-1/state", true}, {"devices/dev-2/state", true}, {"devices/dev-1/state", false}} {
		// MQTT 3.1.1 cannot report a refusal: the PUBACK comes either way.
		if tok := dev.Publish(p.topic, 1, p.retain, fmt.Sprintf("%s retain %v", p.topic, p.retain)); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
			t.Fatalf("dev-1: PUBLISH %q: %v", p.topic, tok.Error())
		}
	}

	ops := dial("ops", "ops", "pw-ops")
	var opsIn inbox
	if code := subscribe(ops, "devices/+/state", &opsIn); code != 1 {
		t.Fatalf("ops: SUBSCRIBE devices/+/state: %#x, want 1", code)
	}
	if tok := ops.Publish("devices/dev-1/cmd/reboot", 1, false, "now"); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("ops: PUBLISH: %v", tok.Error())
	}
	got := devIn.waitCount(t, 1, ioTimeout)
	if got[0].Topic != "devices/dev-1/cmd/reboot" {
		t.Errorf("dev-1 received %+v, want devices/dev-1/cmd/reboot", got[0])
	}
	state := opsIn.waitCount(t, 1, ioTimeout)
	time.Sleep(quietPeriod)
	if all := opsIn.all(); len(all) != 1 || state[0].Topic != "devices/dev-1/state" || state[0].Payload != "devices/dev-1/state retain true" || !state[0].Retained {
		t.Errorf("ops received %+v, want only the retained devices/dev-1/state", all)
	}
	if all := devIn.all(); len(all) != 1 {
		t.Errorf("dev-1 received %+v, want only its command", all)
	}
	if all := wideIn.all(); len(all) > 1 {
		t.Errorf("dev-1 received %+v through the refused filter devices/#", all)
	}
}

// TestSecurity_MosquittoRetainedAndWillOverTLS drives Debian's mosquitto
// clients over tls: the operator's mosquitto_sub receives the retained
// state of dev-1 and the will of a killed mosquitto_sub of dev-1, and
// nothing that dev-1 may not publish.
func TestSecurity_MosquittoRetainedAndWillOverTLS(t *testing.T) {
	pubBin := requireTool(t, "mosquitto_pub")
	subBin := requireTool(t, "mosquitto_sub")
	n := startSecNode(t, secNodeSpec{listeners: map[string]string{"l": "tls"}, users: fleetUsers, config: fleetConfig})
	host, port, _ := strings.Cut(n.addr["l"], ":")
	base := func(user string) []string {
		return []string{"-h", host, "-p", port, "--cafile", filepath.Join(n.certs, "ca.pem"), "-V", "mqttv5", "-u", user, "-P", "pw-" + user}
	}
	pub := func(user string, args ...string) string {
		out, _ := exec.Command(pubBin, append(append(base(user), "-d", "-q", "1"), args...)...).CombinedOutput()
		return string(out)
	}
	if out := pub("dev-1", "-r", "-t", "devices/dev-1/state", "-m", "online"); !strings.Contains(out, "RC:0") {
		t.Fatalf("retained state of dev-1 refused:\n%s", out)
	}
	if out := pub("dev-1", "-r", "-t", "devices/dev-2/state", "-m", "forged"); !strings.Contains(out, "RC:135") {
		t.Errorf("forged retained state of dev-2 not refused with 0x87:\n%s", out)
	}

	// The operator's subscriber stops after three messages or 15 s.
	sub := exec.Command(subBin, append(base("ops"), "-i", "ops", "-t", "devices/+/state", "-t", "devices/+/will", "-v", "-C", "3", "-W", "15")...)
	var subOut syncBuffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ioTimeout, func() error {
		if !strings.Contains(subOut.String(), "devices/dev-1/state online") {
			return fmt.Errorf("no retained state yet: %q", subOut.String())
		}
		return nil
	})

	// A forbidden will refuses the connection; an allowed one is published
	// when the client is killed without DISCONNECT.
	forbidden := exec.Command(subBin, append(base("dev-1"), "-i", "dev-1-w", "-t", "devices/dev-1/cmd/#", "-W", "3",
		"--will-topic", "devices/dev-2/will", "--will-payload", "forged")...)
	if out, _ := forbidden.CombinedOutput(); !strings.Contains(string(out), "Not authorized") {
		t.Errorf("will on another device's topic was not refused:\n%s", out)
	}
	victim := exec.Command(subBin, append(base("dev-1"), "-i", "dev-1-w", "-t", "devices/dev-1/cmd/#",
		"--will-topic", "devices/dev-1/will", "--will-payload", "lost", "--will-qos", "1")...)
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ioTimeout, func() error {
		if out := n.ctl("clients"); !strings.Contains(out, "dev-1-w") {
			return fmt.Errorf("dev-1-w not connected yet:\n%s", out)
		}
		return nil
	})
	victim.Process.Kill()
	victim.Wait()
	waitFor(t, ioTimeout, func() error {
		if !strings.Contains(subOut.String(), "devices/dev-1/will lost") {
			return fmt.Errorf("no will yet: %q", subOut.String())
		}
		return nil
	})
	if out := pub("dev-1", "-r", "-t", "devices/dev-1/state", "-m", "offline"); !strings.Contains(out, "RC:0") {
		t.Fatalf("second retained state refused:\n%s", out)
	}

	if err := sub.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v\n%s", err, subOut.String())
	}
	lines := strings.Split(strings.TrimSpace(subOut.String()), "\n")
	want := []string{"devices/dev-1/state online", "devices/dev-1/will lost", "devices/dev-1/state offline"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("ops received\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
