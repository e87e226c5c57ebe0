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
)

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
	full = append(full, "-p", p.name)
	full = append(full, args...)
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	return runCommand(p.dir, in, p.env, p.command[0], full...)
}

// TestCompose_TLSUpDown follows deploy/compose's instructions on a copy of
// the directory: it makes the certificates with init-certs.sh, starts the
// project, adds a user with `exec`, publishes and subscribes over TLS, and
// removes the project with its volume.
func TestCompose_TLSUpDown(t *testing.T) {
	t.Parallel()
	image := testImage(t)
	command := composeCommand()
	requireTool(t, command != nil, "neither `docker compose` nor docker-compose is available")
	start := time.Now()

	dir := filepath.Join(t.TempDir(), "compose")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"docker-compose.yml", "starling.yaml", "init-certs.sh"} {
		if err := copyFile(filepath.Join(repoRoot, "deploy", "compose", name), filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runCommand(dir, nil, []string{"STARLING_BIN=" + binaryPath}, "./init-certs.sh"); err != nil {
		t.Fatalf("init-certs.sh: %v\n%s", err, out)
	}
	// The compose file bind-mounts starling.yaml, which copyFile made 0755.
	if err := os.Chmod(filepath.Join(dir, "starling.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}

	project := &composeProject{
		command: command,
		dir:     dir,
		name:    uniqueName("compose"),
		// Empty host ports let Docker pick free ones, so the test never
		// collides with a broker on 1883 or 8883.
		env: []string{"STARLING_IMAGE=" + image, "STARLING_BIND=127.0.0.1", "STARLING_MQTT_PORT=", "STARLING_MQTTS_PORT="},
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := project.run("", "logs", "--no-color")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := project.run("", "down", "-v", "--timeout", "20"); err != nil {
			t.Logf("cleanup: compose down: %v\n%s", err, out)
		}
	})
	if out, err := project.run("", "up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}

	// The admin API serves requests only once the node has started, so
	// exec fails to connect until then.
	waitFor(t, readyTimeout, func() error {
		out, err := project.run("alice-password\n", "exec", "-T", "starling",
			"/starling", "user", "add", "alice", "--group", "clients", "--password-stdin")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "user alice saved") {
			return fmt.Errorf("starling user add printed %q, expected \"user alice saved\"", out)
		}
		return nil
	})

	out, err := project.run("", "port", "starling", "8883")
	if err != nil {
		t.Fatalf("compose port: %v", err)
	}
	tlsAddr := firstAddress(t, out)
	// Compose prints an empty address, or fails, for a port it does not
	// publish.
	if out, err := project.run("", "port", "starling", "8080"); err == nil && strings.Contains(out, ".") {
		t.Errorf("the HTTP port is published on %q, expected it to stay inside the container", out)
	}

	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(dir, "certs", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("certs/ca.pem contains no certificate")
	}
	tlsConfig := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	mqttURL := "tls://" + tlsAddr

	if _, err := connect(t, connectOptions{URL: mqttURL, ClientID: "anonymous", TLS: tlsConfig}); err == nil {
		t.Fatal("anonymous client connected over TLS, expected a rejection")
	}
	client := mustConnect(t, connectOptions{URL: mqttURL, ClientID: "compose", Username: "alice", Password: "alice-password", TLS: tlsConfig})
	deliveries := subscribe(t, client, "compose/#")
	publish(t, client, "compose/hello", "over tls", false)
	expectMessage(t, deliveries, received{Topic: "compose/hello", Payload: "over tls"})
	client.Disconnect(0)

	t.Logf("compose up, TLS round trip and setup took %v", time.Since(start).Round(time.Millisecond))
}
