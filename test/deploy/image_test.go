package deploy

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// imageConfig is the part of `docker image inspect` that the Dockerfile sets.
type imageConfig struct {
	User         string
	ExposedPorts map[string]struct{}
	Volumes      map[string]struct{}
	Entrypoint   []string
	Cmd          []string
	Labels       map[string]string
}

func TestImage_Config(t *testing.T) {
	t.Parallel()
	image := testImage(t)

	var config imageConfig
	if err := json.Unmarshal([]byte(docker(t, "image", "inspect", "--format", "{{json .Config}}", image)), &config); err != nil {
		t.Fatalf("parse image config: %v", err)
	}
	if config.User != "65532:65532" {
		t.Errorf("User = %q, expected 65532:65532", config.User)
	}
	for _, port := range []string{"1883/tcp", "8883/tcp", "8080/tcp"} {
		if _, ok := config.ExposedPorts[port]; !ok {
			t.Errorf("port %s is not exposed: %v", port, config.ExposedPorts)
		}
	}
	if _, ok := config.Volumes["/data"]; !ok {
		t.Errorf("/data is not a volume: %v", config.Volumes)
	}
	if !slices.Equal(config.Entrypoint, []string{"/starling"}) {
		t.Errorf("Entrypoint = %q, expected [/starling]", config.Entrypoint)
	}
	wantCmd := []string{"serve", "--listen", "tcp://0.0.0.0:1883", "--data-dir", "/data", "--http", "0.0.0.0:8080", "--log-format", "json"}
	if !slices.Equal(config.Cmd, wantCmd) {
		t.Errorf("Cmd = %q, expected %q", config.Cmd, wantCmd)
	}
	if got := config.Labels["org.opencontainers.image.version"]; got != "deploytest" {
		t.Errorf("version label = %q, expected deploytest", got)
	}

	out := docker(t, "run", "--rm", "--label", testLabel+"="+runID, image, "version")
	if out != "starling deploytest" {
		t.Errorf("starling version printed %q, expected \"starling deploytest\"", out)
	}
}

// TestImage_Files checks that the image contains only the binary and a /data
// directory that the runtime user owns, so that a new volume is writable.
func TestImage_Files(t *testing.T) {
	t.Parallel()
	image := testImage(t)

	name := uniqueName("files")
	docker(t, "create", "--name", name, "--label", testLabel+"="+runID, image)
	t.Cleanup(func() { dockerQuiet(t, "rm", "-f", "-v", name) })

	cmd := exec.Command("docker", "export", name)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	headers := map[string]*tar.Header{}
	archive := tar.NewReader(stdout)
	for {
		h, err := archive.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read docker export: %v", err)
		}
		headers[strings.TrimSuffix(h.Name, "/")] = h
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("docker export: %v", err)
	}

	bin, ok := headers["starling"]
	if !ok {
		t.Fatal("/starling is missing from the image")
	}
	if bin.Mode&0o111 == 0 {
		t.Errorf("/starling mode %o is not executable", bin.Mode)
	}
	data, ok := headers["data"]
	if !ok {
		t.Fatal("/data is missing from the image")
	}
	if data.Typeflag != tar.TypeDir || data.Uid != 65532 || data.Gid != 65532 {
		t.Errorf("/data: type %c, owner %d:%d, expected a directory owned by 65532:65532", data.Typeflag, data.Uid, data.Gid)
	}

	// Docker adds /.dockerenv, /dev, /etc (hosts, resolv.conf), /proc and
	// /sys to every container; the image itself adds nothing else.
	for path := range headers {
		top, _, _ := strings.Cut(path, "/")
		switch top {
		case "starling", "data", ".dockerenv", "dev", "etc", "proc", "sys":
		default:
			t.Errorf("unexpected file in the image: /%s", path)
		}
	}
}

// authConfig lets every user of group "clients" publish and subscribe to
// any topic, as the documentation's example configuration does.
const authConfig = `auth:
  groups:
    - {name: clients, roles: [client]}
  roles:
    - name: client
      rules:
        - {action: all, permission: allow, topic: "#"}
`

// adminToken is the bearer token of the tests' admin API.
const adminToken = "deploy-test-admin-token-0123456789"

// TestImage_RetainedSurvivesKill runs the image with its default command as
// documented: a configuration file for the auth rules, an admin token, a
// user added with `docker exec`. It then kills the container with SIGKILL,
// starts a new one on the same volume and checks that the retained message
// and the user are still there, and that `docker stop` shuts down cleanly.
func TestImage_RetainedSurvivesKill(t *testing.T) {
	t.Parallel()
	image := testImage(t)
	start := time.Now()

	network := newNetwork(t)
	volume := newVolume(t)
	dir := t.TempDir()
	configFile := writeFile(t, filepath.Join(dir, "starling.yaml"), authConfig)
	tokenFile := writeFile(t, filepath.Join(dir, "admin-token"), adminToken+"\n")
	args := []string{
		"--network", network,
		"-v", volume + ":/data",
		"-v", configFile + ":/etc/starling/starling.yaml:ro",
		"-v", tokenFile + ":/etc/starling/admin-token:ro",
		"-e", "STARLING_CONFIG=/etc/starling/starling.yaml",
		"-e", "STARLING_ADMIN_TOKEN_FILE=/etc/starling/admin-token",
		"-p", "127.0.0.1::1883",
		"-p", "127.0.0.1::8080",
		"--read-only", "--cap-drop", "ALL",
		image,
	}

	first := runContainer(t, uniqueName("first"), args...)
	httpAddr := first.hostPort(t, "8080/tcp")
	waitReady(t, httpAddr)
	code, body, err := httpGet("http://" + httpAddr + "/healthz")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /healthz: status %d, body %q, err %v", code, body, err)
	}
	code, body, err = httpGet("http://" + httpAddr + "/metrics")
	if err != nil || code != http.StatusOK || !strings.Contains(body, "starling_") {
		t.Fatalf("GET /metrics: status %d, err %v, no starling_ metrics in %d bytes", code, err, len(body))
	}

	out, err := runCommand("", strings.NewReader("alice-password\n"), nil,
		"docker", "exec", "-i", first.name, "/starling", "user", "add", "alice", "--group", "clients", "--password-stdin")
	if err != nil {
		t.Fatalf("add user through the admin API: %v", err)
	}
	if !strings.Contains(out, "user alice saved") {
		t.Fatalf("starling user add printed %q, expected \"user alice saved\"", out)
	}

	mqttURL := "tcp://" + first.hostPort(t, "1883/tcp")
	if _, err := connect(t, connectOptions{URL: mqttURL, ClientID: "anonymous"}); err == nil {
		t.Fatal("anonymous client connected to the 0.0.0.0 listener, expected a rejection")
	}
	client := mustConnect(t, connectOptions{URL: mqttURL, ClientID: "first", Username: "alice", Password: "alice-password"})
	deliveries := subscribe(t, client, "deploy/#")
	publish(t, client, "deploy/retained", "kept", true)
	expectMessage(t, deliveries, received{Topic: "deploy/retained", Payload: "kept"})
	client.Disconnect(0)

	docker(t, "kill", "--signal", "KILL", first.name)
	if code := first.waitExited(t); code != 137 {
		t.Errorf("exit code after SIGKILL = %d, expected 137", code)
	}
	docker(t, "rm", "-v", first.name)

	second := runContainer(t, uniqueName("second"), args...)
	waitReady(t, second.hostPort(t, "8080/tcp"))
	mqttURL = "tcp://" + second.hostPort(t, "1883/tcp")
	client = mustConnect(t, connectOptions{URL: mqttURL, ClientID: "second", Username: "alice", Password: "alice-password"})
	deliveries = subscribe(t, client, "deploy/retained")
	expectMessage(t, deliveries, received{Topic: "deploy/retained", Payload: "kept", Retained: true})
	client.Disconnect(0)

	docker(t, "stop", "--time", strconv.Itoa(int(stopTimeout.Seconds())), second.name)
	if code := second.waitExited(t); code != 0 {
		t.Errorf("exit code after docker stop = %d, expected 0 (graceful shutdown)", code)
	}
	logs := second.logs(t)
	for _, want := range []string{`"msg":"signal received; shutting down"`, `"msg":"shut down"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("container log lacks %s", want)
		}
	}
	t.Logf("image run, kill, restart and stop took %v", time.Since(start).Round(time.Millisecond))
}
