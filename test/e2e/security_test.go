package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// securedNode runs the starling binary with a TLS listener and a TCP
// listener that both refuse anonymous clients, certificates from
// `starling certs init`, one user in a group whose role grants
// devices/%u/# and the subscription to cmd/%u.
type securedNode struct {
	dir, tlsAddr, tcpAddr, mtlsAddr string
	cmd                             *exec.Cmd
	log                             *syncBuffer
}

func startSecuredNode(t *testing.T) *securedNode {
	t.Helper()
	if !isStarling() {
		t.Skip("Starling-only: configuration of users, roles and TLS listeners")
	}
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(starlingBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("starling %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	n := &securedNode{dir: dir, tlsAddr: freeLoopbackAddr(t), tcpAddr: freeLoopbackAddr(t), mtlsAddr: freeLoopbackAddr(t), log: new(syncBuffer)}
	tlsHost, _, _ := strings.Cut(n.tlsAddr, ":")
	mtlsHost, _, _ := strings.Cut(n.mtlsAddr, ":")
	run("certs", "init", filepath.Join(dir, "certs"), "--hosts", tlsHost+","+mtlsHost+",localhost", "--clients", "dev-1")
	data := filepath.Join(dir, "data")
	cmd := exec.Command(starlingBin, "user", "add", "dev-1", "--group", "fleet", "--data-dir", data, "--password-stdin")
	cmd.Stdin = strings.NewReader("s3cret-pw\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}

	certs := filepath.Join(dir, "certs")
	cfg := fmt.Sprintf(`
listeners:
  - name: tls
    url: tls://%s
    allow_anonymous: false
    tls: {cert_file: %s/server.pem, key_file: %s/server-key.pem}
  - name: tcp
    url: tcp://%s
    allow_anonymous: false
  - name: mtls
    url: tls://%s
    allow_anonymous: false
    cert_require_client_id: true
    tls: {cert_file: %s/server.pem, key_file: %s/server-key.pem, client_auth: required, client_ca_file: %s/ca.pem}
auth:
  groups:
    - {name: fleet, roles: [device]}
  roles:
    - name: device
      rules:
        - {action: publish, permission: allow, topic: "devices/%%u/#"}
        - {action: subscribe, permission: allow, topic: "devices/%%u/#"}
        - {action: subscribe, permission: allow, topic: "cmd/%%u"}
`, n.tlsAddr, certs, certs, n.tcpAddr, n.mtlsAddr, certs, certs, certs)
	path := filepath.Join(dir, "starling.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(starlingBin, "serve", "--config", path, "--data-dir", data)
	n.cmd.Stderr = n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		n.cmd.Wait()
		if t.Failed() {
			t.Logf("broker log:\n%s", n.log.String())
		}
	})
	waitFor(t, 10*time.Second, func() error {
		if !strings.Contains(n.log.String(), "starling started") {
			return fmt.Errorf("not started yet")
		}
		return nil
	})
	return n
}

// mosquittoTLS returns the TLS and credential flags of the Debian clients.
func (n *securedNode) mosquittoTLS(user, password string) []string {
	host, port, _ := strings.Cut(n.tlsAddr, ":")
	args := []string{"-h", host, "-p", port, "--cafile", filepath.Join(n.dir, "certs", "ca.pem"), "--tls-version", "tlsv1.2"}
	if user != "" {
		args = append(args, "-u", user, "-P", password)
	}
	return args
}

func TestSecurity_MosquittoClientsOverTLSGetExactlyTheirRules(t *testing.T) {
	requireTool(t, "mosquitto_sub")
	pubBin := requireTool(t, "mosquitto_pub")
	subBin := requireTool(t, "mosquitto_sub")
	n := startSecuredNode(t)

	// The subscriber asks for a wide filter: the rules grant only its own
	// subtree, so the wide subscription is refused and the narrow one works.
	sub := exec.Command(subBin, append(n.mosquittoTLS("dev-1", "s3cret-pw"),
		"-V", "mqttv5", "-i", "dev-1-sub", "-t", "devices/dev-1/#", "-C", "1", "-W", "10", "-v")...)
	var subOut bytes.Buffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)

	// pub publishes at QoS 1 and returns mosquitto_pub's debug output, which
	// shows the CONNACK and PUBACK reason codes.
	pub := func(user, password, topic string) string {
		out, _ := exec.Command(pubBin, append(n.mosquittoTLS(user, password),
			"-V", "mqttv5", "-d", "-q", "1", "-t", topic, "-m", "v")...).CombinedOutput()
		return string(out)
	}
	// A denied publish is acknowledged with 0x87 (135) and reaches no one.
	if out := pub("dev-1", "s3cret-pw", "devices/dev-2/state"); !strings.Contains(out, "RC:135") {
		t.Errorf("publish to another device's topic was not refused with 0x87:\n%s", out)
	}
	if out := pub("dev-1", "wrong", "devices/dev-1/state"); strings.Contains(out, "sending PUBLISH") {
		t.Errorf("publish with a wrong password got through:\n%s", out)
	}
	if out := pub("", "", "devices/dev-1/state"); strings.Contains(out, "sending PUBLISH") {
		t.Errorf("anonymous publish over TLS got through:\n%s", out)
	}
	if out := pub("dev-1", "s3cret-pw", "devices/dev-1/state"); !strings.Contains(out, "received PUBACK") || strings.Contains(out, "RC:135") {
		t.Fatalf("allowed publish failed:\n%s", out)
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v: %s", err, subOut.String())
	}
	if got := strings.TrimSpace(subOut.String()); got != "devices/dev-1/state v" {
		t.Fatalf("subscriber got %q, want only the allowed message", got)
	}

	wide := exec.Command(subBin, append(n.mosquittoTLS("dev-1", "s3cret-pw"),
		"-V", "mqttv5", "-i", "dev-1-wide", "-t", "devices/#", "-C", "1", "-W", "3")...)
	if out, _ := wide.CombinedOutput(); !strings.Contains(string(out), "denied") {
		t.Fatalf("wide subscription not denied: %s", out)
	}
}

func TestSecurity_NonLoopbackWithoutUsersRefusesAndSaysHow(t *testing.T) {
	if !isStarling() {
		t.Skip("Starling-only: the secure default of a non-loopback listener")
	}
	dir := t.TempDir()
	// 0.0.0.0 binds every interface; the test itself connects only through
	// 127.0.0.1. The port must be free on every address, so ask for one on
	// 0.0.0.0 rather than on one loopback address.
	probe, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(probe.Addr().(*net.TCPAddr).Port)
	probe.Close()
	log := new(syncBuffer)
	cmd := exec.Command(starlingBin, "serve", "--listen", "tcp://0.0.0.0:"+port, "--data-dir", filepath.Join(dir, "data"))
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("broker log:\n%s", log.String())
		}
	}()
	waitFor(t, 20*time.Second, func() error {
		if !strings.Contains(log.String(), "starling started") {
			return fmt.Errorf("not started yet")
		}
		return nil
	})
	if !strings.Contains(log.String(), "starling user add") {
		t.Errorf("log does not say how to add a user:\n%s", log.String())
	}
	c := dialRaw(t, &broker{addr: "127.0.0.1:" + port}, "anon-1", 5)
	if ca := c.connect(v5("anon-1", true)); ca.Code != 0x87 {
		t.Fatalf("anonymous client: CONNACK 0x%02X, want 0x87", ca.Code)
	}
}

func TestSecurity_MosquittoClientCertificateIsTheIdentity(t *testing.T) {
	pubBin := requireTool(t, "mosquitto_pub")
	n := startSecuredNode(t)
	host, port, _ := strings.Cut(n.mtlsAddr, ":")
	certs := filepath.Join(n.dir, "certs")
	pub := func(clientID, topic string, withCert bool) string {
		args := []string{"-h", host, "-p", port, "--cafile", filepath.Join(certs, "ca.pem"),
			"-V", "mqttv5", "-d", "-q", "1", "-i", clientID, "-t", topic, "-m", "v"}
		if withCert {
			args = append(args, "--cert", filepath.Join(certs, "clients", "dev-1.pem"), "--key", filepath.Join(certs, "clients", "dev-1-key.pem"))
		}
		out, _ := exec.Command(pubBin, args...).CombinedOutput()
		return string(out)
	}
	// The certificate's name dev-1 is the user, with the rules of its group.
	if out := pub("dev-1", "devices/dev-1/state", true); !strings.Contains(out, "received PUBACK") || strings.Contains(out, "RC:135") {
		t.Fatalf("publish with the client certificate failed:\n%s", out)
	}
	if out := pub("dev-1", "devices/dev-2/state", true); !strings.Contains(out, "RC:135") {
		t.Errorf("publish outside the certificate user's rules was not refused:\n%s", out)
	}
	// The client id must equal the certificate's name.
	if out := pub("dev-2", "devices/dev-1/state", true); strings.Contains(out, "sending PUBLISH") {
		t.Errorf("client id other than the certificate's name got through:\n%s", out)
	}
	// Without a certificate the TLS handshake fails.
	if out := pub("dev-1", "devices/dev-1/state", false); strings.Contains(out, "received CONNACK") {
		t.Errorf("connection without a client certificate was accepted:\n%s", out)
	}
}
