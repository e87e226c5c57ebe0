package deploy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// composeNodes are the services of deploy/compose/compose.yaml that run a
// node, in ordinal order.
var composeNodes = []string{"starling-0", "starling-1", "starling-2"}

// clusterReadyTimeout bounds the wait for every node of a new Compose
// cluster to report ready: the three nodes must find each other, bootstrap
// Raft and commit their records.
const clusterReadyTimeout = 90 * time.Second

// composeCommand returns the command that runs Compose: `docker compose`
// (the v2 plugin) when it works, otherwise `docker-compose` (v1 in Debian
// 12), otherwise nil.
func composeCommand() []string {
	if _, err := runCommand("", nil, nil, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	return nil
}

// composeProject is one Compose project started from a copy of
// deploy/compose.
type composeProject struct {
	command []string
	dir     string
	name    string
	env     []string
}

// run runs a Compose command for the project, with stdin as standard input
// when it is not empty, and returns its output.
func (p *composeProject) run(stdin string, args ...string) (string, error) {
	full := append([]string{}, p.command[1:]...)
	full = append(full, "-f", "compose.yaml", "-p", p.name)
	full = append(full, args...)
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	return runCommand(p.dir, in, p.env, p.command[0], full...)
}

// mustRun is run that fails the test on error.
func (p *composeProject) mustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := p.run("", args...)
	if err != nil {
		t.Fatalf("compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// health runs `starling health` in the service's container, which queries
// the node's /readyz on the container's loopback.
func (p *composeProject) health(service string) error {
	out, err := p.run("", "exec", "-T", service, "/starling", "health")
	if err != nil {
		return fmt.Errorf("%s: %w", service, err)
	}
	if strings.TrimSpace(out) != "ready" {
		return fmt.Errorf("%s: starling health printed %q, expected \"ready\"", service, out)
	}
	return nil
}

// waitReady waits until the service's node reports ready.
func (p *composeProject) waitReady(t testing.TB, service string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() error { return p.health(service) })
}

// hostPort returns the 127.0.0.1 address that Compose published for the
// service's container port. Docker picks a new host port for an empty
// mapping at every container start, so call it again after a restart.
func (p *composeProject) hostPort(t testing.TB, service string, port int) string {
	t.Helper()
	return firstAddress(t, p.mustRun(t, "port", service, fmt.Sprint(port)))
}

// upComposeCluster follows deploy/compose's instructions on a copy of the
// directory: one `up` makes the certificates and starts the three nodes; it waits until
// each reports ready and adds the user alice through starling-1. Empty host
// ports let Docker pick free ones, so the test never collides with a broker
// on 1883 or 8883. At cleanup it runs `down -v`, after logging the nodes'
// output if the test failed.
func upComposeCluster(t *testing.T, kind string) *composeProject {
	t.Helper()
	image := testImage(t)
	command := composeCommand()
	requireTool(t, command != nil, "neither `docker compose` nor docker-compose is available")

	dir := filepath.Join(t.TempDir(), "compose")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"compose.yaml", "starling.yaml"} {
		// compose.yaml bind-mounts starling.yaml, which the image's user
		// (uid 65532) must read.
		if err := copyFile(filepath.Join(repoRoot, "deploy", "compose", name), filepath.Join(dir, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"STARLING_IMAGE=" + image}
	for i := range composeNodes {
		env = append(env, fmt.Sprintf("STARLING_MQTT_PORT_%d=", i), fmt.Sprintf("STARLING_MQTTS_PORT_%d=", i))
	}
	project := &composeProject{command: command, dir: dir, name: uniqueName(kind), env: env}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := project.run("", "logs", "--no-color", "--tail=150")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := project.run("", "down", "-v", "--timeout", "20"); err != nil {
			t.Logf("cleanup: compose down: %v\n%s", err, out)
		}
	})

	// One `up` makes the certificates and starts the nodes; a second run
	// of the certs service keeps the set (--if-missing).
	project.mustRun(t, "up", "-d")
	for _, service := range composeNodes {
		project.waitReady(t, service, clusterReadyTimeout)
	}
	if out := project.mustRun(t, "run", "--rm", "certs"); !strings.Contains(out, "nothing written") {
		t.Errorf("a second run of the certs service printed %q, expected it to keep the set", out)
	}

	// Users live in the Raft state, so a user added on one node reaches
	// the others.
	waitFor(t, readyTimeout, func() error {
		out, err := project.run("alice-password\n", "exec", "-T", "starling-1",
			"/starling", "user", "add", "alice", "--group", "clients", "--password-stdin")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "user alice saved") {
			return fmt.Errorf("starling user add printed %q, expected \"user alice saved\"", out)
		}
		return nil
	})
	return project
}

// clientTLS returns the TLS configuration that verifies the nodes'
// server.pem against the client CA of the certs volume, which `docker cp`
// reads through a node's container.
func (p *composeProject) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	id := strings.TrimSpace(p.mustRun(t, "ps", "-q", "starling-0"))
	caFile := filepath.Join(p.dir, "ca.pem")
	docker(t, "cp", id+":/etc/starling/certs/ca.pem", caFile)
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem of the certs volume contains no certificate")
	}
	return &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// TestCompose_ClusterRoundTrip brings the three-node cluster of
// deploy/compose up, checks the cluster status and the published ports,
// and sends a message over TLS from a client of starling-0 to a subscriber
// on starling-2.
func TestCompose_ClusterRoundTrip(t *testing.T) {
	t.Parallel()
	start := time.Now()
	project := upComposeCluster(t, "cluster")
	t.Logf("cluster up and ready in %v", time.Since(start).Round(time.Millisecond))

	status := project.mustRun(t, "exec", "-T", "starling-2", "/starling", "ctl", "cluster", "status")
	for _, service := range composeNodes {
		if !strings.Contains(status, service+":7947") {
			t.Errorf("cluster status lacks the peer address %s:7947:\n%s", service, status)
		}
	}
	if strings.Count(status, "Voter") != len(composeNodes) {
		t.Errorf("cluster status lists %d voters, expected %d:\n%s", strings.Count(status, "Voter"), len(composeNodes), status)
	}
	// Compose prints an empty address, or fails, for a port it does not
	// publish.
	for _, port := range []string{"7946", "7947", "8080"} {
		if out, err := project.run("", "port", "starling-0", port); err == nil && strings.Contains(out, ".") {
			t.Errorf("port %s is published on %q, expected it to stay on the Compose network", port, out)
		}
	}

	tlsConfig := project.clientTLS(t)
	publisherURL := "tls://" + project.hostPort(t, "starling-0", 8883)
	subscriberURL := "tls://" + project.hostPort(t, "starling-2", 8883)

	if _, err := connect(t, connectOptions{URL: publisherURL, ClientID: "anonymous", TLS: tlsConfig}); err == nil {
		t.Fatal("anonymous client connected over TLS, expected a rejection")
	}
	subscriber := connectEventually(t, connectOptions{URL: subscriberURL, ClientID: "sub", Username: "alice", Password: "alice-password", TLS: tlsConfig})
	deliveries := subscribe(t, subscriber, "compose/#")
	publisher := connectEventually(t, connectOptions{URL: publisherURL, ClientID: "pub", Username: "alice", Password: "alice-password", TLS: tlsConfig})
	publish(t, publisher, "compose/hello", "from starling-0", false)
	expectMessage(t, deliveries, received{Topic: "compose/hello", Payload: "from starling-0"})

	// The plain listener publishes on loopback too.
	plainURL := "tcp://" + project.hostPort(t, "starling-1", 1883)
	plain := connectEventually(t, connectOptions{URL: plainURL, ClientID: "plain", Username: "alice", Password: "alice-password"})
	publish(t, plain, "compose/plain", "from starling-1", false)
	expectMessage(t, deliveries, received{Topic: "compose/plain", Payload: "from starling-1"})

	t.Logf("compose up, round trips and setup took %v", time.Since(start).Round(time.Millisecond))
}

// connectEventually retries connect for readyTimeout. A user added on one
// node reaches the others once they apply the Raft entry, a moment later.
func connectEventually(t testing.TB, o connectOptions) mqtt.Client {
	t.Helper()
	var client mqtt.Client
	waitFor(t, readyTimeout, func() error {
		var err error
		client, err = connect(t, o)
		return err
	})
	return client
}
