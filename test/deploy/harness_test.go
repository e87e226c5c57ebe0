// Package deploy tests the deployment files of the repository: the container
// image built from Dockerfile, the Compose file in deploy/compose and the
// Helm chart in deploy/helm/starling.
//
// The image tests build ./cmd/starling and the image once per run, then
// start containers on their own Docker networks and volumes, with ports
// published on 127.0.0.1 only. Every container, network and volume carries
// the label starling-deploy-test=RUN so that leftovers of a killed run can
// be found with `docker ps -a --filter label=starling-deploy-test`; the
// tests remove what they create.
//
// A test whose tool (docker, docker compose or docker-compose, helm) is
// missing skips with the reason, and fails instead when CI=true.
//
// Environment:
//
//	STARLING_BIN  copy this static binary into the image instead of building one
//	HELM          the helm binary (default: helm on PATH, then $(go env GOPATH)/bin/helm)
//	CI=true       a test whose tool is missing fails instead of skipping
package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Time bounds of single steps, sized for a loaded 2-core machine.
const (
	// commandTimeout bounds one docker, compose or helm command.
	commandTimeout = 60 * time.Second
	// buildTimeout bounds the Go build of the binary and the image build.
	buildTimeout = 5 * time.Minute
	// readyTimeout bounds the wait for a started container to respond to
	// /readyz or accept a command.
	readyTimeout = 30 * time.Second
	// stopTimeout is what `docker stop` gives a container before SIGKILL. It
	// is shorter than the broker's 30 s shutdown bound, but a node with no
	// connected clients shuts down in well under a second.
	stopTimeout = 20 * time.Second
	// testLabel marks every container, network and volume the tests create.
	testLabel = "starling-deploy-test"
)

var (
	// repoRoot is the repository's top directory, two levels above this
	// package.
	repoRoot = mustAbs(filepath.Join("..", ".."))
	// runID names this run's Docker objects and is the value of testLabel.
	runID = newRunID()
	// workDir holds the build context and other files shared by the tests.
	workDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "starling-deploy-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy: create temp dir: %v\n", err)
		os.Exit(1)
	}
	workDir = dir

	code := m.Run()
	removeImage()
	os.RemoveAll(workDir)

	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "deploy: goroutines leaked by the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func mustAbs(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		panic(err)
	}
	return abs
}

func newRunID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// uniqueName returns a Docker object name for this run: lower case letters
// and digits, which every Compose version accepts as a project name too.
func uniqueName(kind string) string {
	return "starlingdeploytest" + kind + runID
}

// requireTool skips the test when ok is false, or fails it when CI=true,
// because CI must run every test.
func requireTool(t testing.TB, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true)", reason)
	}
	t.Skip(reason)
}

// runCommand runs name with args in dir (the current directory when empty),
// bounded by commandTimeout, with stdin when it is not nil and extra
// environment variables. It returns standard output, and an error that
// includes standard error.
func runCommand(dir string, stdin io.Reader, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	return runCommandContext(ctx, dir, stdin, env, name, args...)
}

func runCommandContext(ctx context.Context, dir string, stdin io.Reader, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\nstderr: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// docker runs a docker command and fails the test when it fails.
func docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := runCommand("", nil, nil, "docker", args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// dockerQuiet runs a cleanup command, logging a failure instead of failing.
func dockerQuiet(t testing.TB, args ...string) {
	t.Helper()
	if _, err := runCommand("", nil, nil, "docker", args...); err != nil {
		t.Logf("cleanup: %v", err)
	}
}

var (
	dockerOnce sync.Once
	dockerErr  error
)

// requireDocker skips the test when no Docker engine responds, or fails it
// when CI=true.
func requireDocker(t testing.TB) {
	t.Helper()
	dockerOnce.Do(func() {
		if _, err := exec.LookPath("docker"); err != nil {
			dockerErr = err
			return
		}
		_, dockerErr = runCommand("", nil, nil, "docker", "info", "--format", "{{.ServerVersion}}")
	})
	requireTool(t, dockerErr == nil, fmt.Sprintf("docker is not available: %v", dockerErr))
}

var (
	imageOnce sync.Once
	imageTag  string
	// imageLayers lists the image IDs that the image build created: the
	// legacy builder leaves the stage that makes /data as an untagged image.
	imageLayers []string
	imageErr    error
	// binaryPath is the static starling binary inside the build context.
	binaryPath string
)

// testImage builds the binary and the image once per run and returns the
// image's tag.
func testImage(t testing.TB) string {
	t.Helper()
	requireDocker(t)
	imageOnce.Do(func() {
		start := time.Now()
		imageErr = buildImage()
		t.Logf("built binary and image %s in %v", imageTag, time.Since(start).Round(time.Millisecond))
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imageTag
}

// layerID matches the lines in which the legacy builder reports the image
// of a finished step.
var layerID = regexp.MustCompile(`(?m)^ ---> ([0-9a-f]{12})$`)

// buildImage writes a build context of Dockerfile, .dockerignore and a fresh
// bin/starling into workDir and builds it. It never writes into the
// repository, so a concurrent `make build` there is not disturbed.
func buildImage() error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()

	buildDir := filepath.Join(workDir, "image")
	binaryPath = filepath.Join(buildDir, "bin", "starling")
	if err := os.MkdirAll(filepath.Dir(binaryPath), 0o755); err != nil {
		return err
	}
	for _, name := range []string{"Dockerfile", ".dockerignore"} {
		if err := copyFile(filepath.Join(repoRoot, name), filepath.Join(buildDir, name), 0o644); err != nil {
			return err
		}
	}
	if bin := os.Getenv("STARLING_BIN"); bin != "" {
		if err := copyFile(bin, binaryPath, 0o755); err != nil {
			return err
		}
	} else {
		env := []string{"CGO_ENABLED=0"}
		_, err := runCommandContext(ctx, repoRoot, nil, env, "go", "build", "-trimpath",
			"-ldflags", "-s -w -X main.version=deploytest", "-o", binaryPath, "./cmd/starling")
		if err != nil {
			return fmt.Errorf("build starling: %w", err)
		}
	}

	// --no-cache makes every layer in the output new, so removing them all
	// afterwards cannot delete a layer that another build shares.
	tag := "starling:deploytest-" + runID
	out, err := runCommandContext(ctx, buildDir, nil, nil, "docker", "build", "--no-cache", "--force-rm",
		"--label", testLabel+"="+runID, "--build-arg", "VERSION=deploytest", "-t", tag, ".")
	for _, m := range layerID.FindAllStringSubmatch(out, -1) {
		imageLayers = append(imageLayers, m[1])
	}
	if err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	imageTag = tag
	return nil
}

// removeImage removes the image and the untagged images its build left.
func removeImage() {
	if imageTag != "" {
		runCommand("", nil, nil, "docker", "rmi", imageTag)
	}
	for _, id := range imageLayers {
		// Layers of the final image went with the tag, so most of these
		// fail as not found.
		runCommand("", nil, nil, "docker", "rmi", id)
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}

// writeFile writes a file that a container reads through a bind mount. Mode
// 0644 lets the image's user (uid 65532) read it.
func writeFile(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// newNetwork creates a labelled Docker network removed at cleanup.
func newNetwork(t testing.TB) string {
	t.Helper()
	name := uniqueName("net" + strings.ToLower(sanitize(t.Name())))
	docker(t, "network", "create", "--label", testLabel+"="+runID, name)
	t.Cleanup(func() { dockerQuiet(t, "network", "rm", name) })
	return name
}

// newVolume creates a labelled Docker volume removed at cleanup.
func newVolume(t testing.TB) string {
	t.Helper()
	name := uniqueName("vol" + strings.ToLower(sanitize(t.Name())))
	docker(t, "volume", "create", "--label", testLabel+"="+runID, name)
	t.Cleanup(func() { dockerQuiet(t, "volume", "rm", name) })
	return name
}

// sanitize keeps the letters and digits of a test name.
func sanitize(s string) string {
	return regexp.MustCompile(`[^A-Za-z0-9]`).ReplaceAllString(s, "")
}

// container is one container started by runContainer.
type container struct {
	name string
}

// runContainer starts a detached container from args (options, the image
// and its command) and registers its removal, with its anonymous volumes,
// at cleanup. On failure the cleanup logs the container's output first.
func runContainer(t testing.TB, name string, args ...string) *container {
	t.Helper()
	full := append([]string{"run", "-d", "--name", name, "--label", testLabel + "=" + runID}, args...)
	docker(t, full...)
	c := &container{name: name}
	t.Cleanup(func() {
		if t.Failed() {
			c.logLogs(t)
		}
		dockerQuiet(t, "rm", "-f", "-v", name)
	})
	return c
}

// logs returns the container's output. Starling logs to standard error,
// which `docker logs` replays on its own standard error.
func (c *container) logs(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "logs", c.name).CombinedOutput()
	if err != nil {
		t.Logf("docker logs %s: %v", c.name, err)
	}
	return string(out)
}

// logLogs writes the container's output to the test log.
func (c *container) logLogs(t testing.TB) {
	t.Helper()
	t.Logf("output of container %s:\n%s", c.name, c.logs(t))
}

// hostPort returns the 127.0.0.1 address that Docker mapped to the
// container's port (such as "1883/tcp").
func (c *container) hostPort(t testing.TB, port string) string {
	t.Helper()
	return firstAddress(t, docker(t, "port", c.name, port))
}

// firstAddress returns the first address of `docker port` output, which
// lists one mapping per line.
func firstAddress(t testing.TB, out string) string {
	t.Helper()
	addr, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("port mapping %q is not on 127.0.0.1", out)
	}
	return addr
}

// waitFor calls cond every 100 ms until it returns nil, and fails the test
// with the last error if that does not happen within timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// httpGet fetches url and returns the status code and body.
func httpGet(url string) (int, string, error) {
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// waitReady waits until GET /readyz on addr returns 200.
func waitReady(t testing.TB, addr string) {
	t.Helper()
	waitFor(t, readyTimeout, func() error {
		code, body, err := httpGet("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("GET /readyz: status %d, body %q", code, body)
		}
		return nil
	})
}

// waitExited waits until the container has stopped and returns its exit
// code.
func (c *container) waitExited(t testing.TB) int {
	t.Helper()
	var code int
	waitFor(t, readyTimeout, func() error {
		out := docker(t, "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", c.name)
		var running bool
		if _, err := fmt.Sscan(out, &running, &code); err != nil {
			return fmt.Errorf("parse %q: %w", out, err)
		}
		if running {
			return fmt.Errorf("%s still running", c.name)
		}
		return nil
	})
	return code
}
