package deploy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// chartDir is the chart under test.
var chartDir = filepath.Join(repoRoot, "deploy", "helm", "starling")

// tlsValues is the chart's example values file for MQTT over TLS.
var tlsValues = filepath.Join(chartDir, "ci", "tls-values.yaml")

// helmPath returns the helm binary: $HELM, helm on PATH, or helm in
// $(go env GOPATH)/bin, where `go install` puts it.
func helmPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
		requireTool(t, false, fmt.Sprintf("HELM=%s is not an executable file", p))
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if gopath, err := runCommand("", nil, nil, "go", "env", "GOPATH"); err == nil {
		p := filepath.Join(strings.TrimSpace(gopath), "bin", "helm")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	requireTool(t, false, "helm is not installed: go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	return ""
}

// helmTemplate renders the chart with args (such as -f FILE or --set K=V)
// and returns the manifests, or helm's error.
func helmTemplate(t testing.TB, args ...string) ([]manifest, error) {
	t.Helper()
	full := append([]string{"template", "rel", chartDir, "--namespace", "mqtt"}, args...)
	out, err := runCommand("", nil, nil, helmPath(t), full...)
	if err != nil {
		return nil, err
	}
	return parseManifests(t, out), nil
}

// manifest is one rendered Kubernetes object.
type manifest map[string]any

func (m manifest) kind() string { return str(m, "kind") }
func (m manifest) name() string { return str(m, "metadata", "name") }

// parseManifests splits helm's output into objects.
func parseManifests(t testing.TB, out string) []manifest {
	t.Helper()
	var objects []manifest
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var m manifest
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objects
		}
		if err != nil {
			t.Fatalf("parse helm template output: %v", err)
		}
		if m != nil {
			objects = append(objects, m)
		}
	}
}

// find returns the object of this kind and name, or fails the test.
func find(t testing.TB, objects []manifest, kind, name string) manifest {
	t.Helper()
	for _, m := range objects {
		if m.kind() == kind && m.name() == name {
			return m
		}
	}
	t.Fatalf("no %s %q in the rendered chart", kind, name)
	return nil
}

// lookup walks maps by key and lists by index (an int), and returns nil
// where the path does not exist.
func lookup(v any, path ...any) any {
	for _, p := range path {
		switch key := p.(type) {
		case string:
			// yaml.v3 decodes nested maps into the type of the outer one.
			switch m := v.(type) {
			case manifest:
				v = m[key]
			case map[string]any:
				v = m[key]
			default:
				return nil
			}
		case int:
			l, ok := v.([]any)
			if !ok || key >= len(l) {
				return nil
			}
			v = l[key]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := lookup(v, path...).(string)
	return s
}

// servicePorts returns the port numbers of a Service.
func servicePorts(svc manifest) []int {
	var ports []int
	list, _ := lookup(svc, "spec", "ports").([]any)
	for _, p := range list {
		if n, ok := lookup(p, "port").(int); ok {
			ports = append(ports, n)
		}
	}
	return ports
}

// starlingConfig parses starling.yaml out of the chart's ConfigMap.
func starlingConfig(t testing.TB, objects []manifest) (string, map[string]any) {
	t.Helper()
	text := str(find(t, objects, "ConfigMap", "rel-starling"), "data", "starling.yaml")
	var config map[string]any
	if err := yaml.Unmarshal([]byte(text), &config); err != nil {
		t.Fatalf("parse starling.yaml of the ConfigMap: %v\n%s", err, text)
	}
	return text, config
}

func TestHelm_Lint(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"defaults", nil},
		{"tls", []string{"-f", tlsValues}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", chartDir}, tc.args...)
			out, err := runCommand("", nil, nil, helmPath(t), args...)
			if err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
		})
	}
}

func TestHelm_TemplateDefaults(t *testing.T) {
	objects, err := helmTemplate(t)
	if err != nil {
		t.Fatal(err)
	}

	sts := find(t, objects, "StatefulSet", "rel-starling")
	if got := lookup(sts, "spec", "replicas"); got != 3 {
		t.Errorf("replicas = %v, expected 3", got)
	}
	if got := str(sts, "spec", "podManagementPolicy"); got != "Parallel" {
		t.Errorf("podManagementPolicy = %q, expected Parallel", got)
	}
	if got := str(sts, "spec", "serviceName"); got != "rel-starling-headless" {
		t.Errorf("serviceName = %q, expected rel-starling-headless", got)
	}
	if got := str(sts, "spec", "volumeClaimTemplates", 0, "metadata", "name"); got != "data" {
		t.Errorf("volume claim template %q, expected data", got)
	}

	pod := lookup(sts, "spec", "template", "spec")
	if got := lookup(pod, "securityContext", "runAsNonRoot"); got != true {
		t.Errorf("pod runAsNonRoot = %v, expected true", got)
	}
	if got := lookup(pod, "securityContext", "runAsUser"); got != 65532 {
		t.Errorf("pod runAsUser = %v, expected 65532", got)
	}
	if got := lookup(pod, "enableServiceLinks"); got != false {
		t.Errorf("enableServiceLinks = %v, expected false: service links add STARLING_* variables", got)
	}
	grace, _ := lookup(pod, "terminationGracePeriodSeconds").(int)

	container := lookup(pod, "containers", 0)
	if got := lookup(container, "securityContext", "readOnlyRootFilesystem"); got != true {
		t.Errorf("readOnlyRootFilesystem = %v, expected true", got)
	}
	if got := lookup(container, "securityContext", "allowPrivilegeEscalation"); got != false {
		t.Errorf("allowPrivilegeEscalation = %v, expected false", got)
	}
	if got := str(container, "securityContext", "capabilities", "drop", 0); got != "ALL" {
		t.Errorf("capabilities dropped: %q, expected ALL", got)
	}
	for probe, path := range map[string]string{"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := str(container, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path = %q, expected %s", probe, got, path)
		}
		if got := str(container, probe, "httpGet", "port"); got != "http" {
			t.Errorf("%s port = %q, expected http", probe, got)
		}
	}
	args := containerArgs(container)
	if !slices.Contains(args, "--http=0.0.0.0:8080") {
		t.Errorf("args %q lack --http=0.0.0.0:8080, which the kubelet's probes need", args)
	}
	if !slices.Contains(args, "--shutdown-timeout=30s") {
		t.Errorf("args %q lack --shutdown-timeout=30s", args)
	}
	if grace <= 30 {
		t.Errorf("terminationGracePeriodSeconds = %d, expected more than the 30 s shutdown timeout", grace)
	}
	if env := containerEnv(container); env["STARLING_ADMIN_TOKEN_FILE"] != "/etc/starling/admin/token" {
		t.Errorf("STARLING_ADMIN_TOKEN_FILE = %q, expected /etc/starling/admin/token", env["STARLING_ADMIN_TOKEN_FILE"])
	}

	headless := find(t, objects, "Service", "rel-starling-headless")
	if got := str(headless, "spec", "clusterIP"); got != "None" {
		t.Errorf("headless Service clusterIP = %q, expected None", got)
	}
	if got := servicePorts(headless); !slices.Equal(got, []int{1883, 8080, 7946, 7946, 7947}) {
		t.Errorf("headless Service ports = %v, expected [1883 8080 7946 7946 7947]", got)
	}
	if got := servicePorts(find(t, objects, "Service", "rel-starling")); !slices.Equal(got, []int{1883}) {
		t.Errorf("client Service ports = %v, expected [1883]: the HTTP port serves the admin API", got)
	}

	token := str(find(t, objects, "Secret", "rel-starling-admin-token"), "data", "token")
	if len(token) < 16 {
		t.Errorf("admin token %q is shorter than the 16 characters Starling requires", token)
	}
	find(t, objects, "PodDisruptionBudget", "rel-starling")
	find(t, objects, "ServiceAccount", "rel-starling")
	for _, m := range objects {
		if m.kind() == "ServiceMonitor" {
			t.Error("a ServiceMonitor is rendered although serviceMonitor.enabled is false")
		}
	}

	_, config := starlingConfig(t, objects)
	if got := str(config, "data_dir"); got != "/data" {
		t.Errorf("data_dir = %q, expected /data", got)
	}
	if got := str(config, "listeners", 0, "url"); got != "tcp://0.0.0.0:1883" {
		t.Errorf("first listener %q, expected tcp://0.0.0.0:1883", got)
	}
	if got := lookup(config, "listeners", 0, "allow_anonymous"); got != false {
		t.Errorf("allow_anonymous = %v, expected false", got)
	}
}

func TestHelm_TemplateTLS(t *testing.T) {
	objects, err := helmTemplate(t, "-f", tlsValues)
	if err != nil {
		t.Fatal(err)
	}

	_, config := starlingConfig(t, objects)
	if got := lookup(config, "listeners"); len(got.([]any)) != 1 {
		t.Fatalf("listeners = %v, expected the tls listener only", got)
	}
	want := map[string]string{
		"url":                "tls://0.0.0.0:8883",
		"tls.cert_file":      "/etc/starling/tls/tls.crt",
		"tls.key_file":       "/etc/starling/tls/tls.key",
		"tls.client_auth":    "required",
		"tls.client_ca_file": "/etc/starling/tls/ca.crt",
		"name":               "mqtts",
	}
	listener := lookup(config, "listeners", 0)
	for key, value := range want {
		path := []any{}
		for _, part := range strings.Split(key, ".") {
			path = append(path, part)
		}
		if got := str(listener, path...); got != value {
			t.Errorf("listener %s = %q, expected %q", key, got, value)
		}
	}

	if got := servicePorts(find(t, objects, "Service", "rel-starling")); !slices.Equal(got, []int{8883}) {
		t.Errorf("client Service ports = %v, expected [8883]", got)
	}
	sts := find(t, objects, "StatefulSet", "rel-starling")
	volumes, _ := lookup(sts, "spec", "template", "spec", "volumes").([]any)
	var secretName string
	for _, v := range volumes {
		if str(v, "name") == "tls" {
			secretName = str(v, "secret", "secretName")
		}
	}
	if secretName != "starling-tls" {
		t.Errorf("tls volume mounts Secret %q, expected starling-tls", secretName)
	}

	monitor := find(t, objects, "ServiceMonitor", "rel-starling")
	if got := str(monitor, "spec", "endpoints", 0, "port"); got != "http" {
		t.Errorf("ServiceMonitor port = %q, expected http", got)
	}
	if got := str(monitor, "spec", "selector", "matchLabels", "app.kubernetes.io/component"); got != "headless" {
		t.Errorf("ServiceMonitor selects component %q, expected headless", got)
	}
}

func TestHelm_TemplateNetworkPolicy(t *testing.T) {
	objects, err := helmTemplate(t, "--set", "networkPolicy.enabled=true",
		"--set", "networkPolicy.httpFrom[0].namespaceSelector.matchLabels.team=monitoring")
	if err != nil {
		t.Fatal(err)
	}

	policy := find(t, objects, "NetworkPolicy", "rel-starling")
	rules, _ := lookup(policy, "spec", "ingress").([]any)
	if len(rules) != 3 {
		t.Fatalf("ingress rules = %v, expected one for MQTT, one for the cluster ports and one for HTTP", rules)
	}
	if lookup(rules[0], "from") != nil {
		t.Errorf("MQTT rule restricts sources: %v, expected none", rules[0])
	}
	if got := lookup(rules[0], "ports", 0, "port"); got != 1883 {
		t.Errorf("MQTT rule port = %v, expected 1883", got)
	}
	if got := str(rules[1], "from", 0, "podSelector", "matchLabels", "app.kubernetes.io/instance"); got != "rel" {
		t.Errorf("cluster rule admits pods of instance %q, expected rel", got)
	}
	for i, want := range []int{7946, 7946, 7947} {
		if got := lookup(rules[1], "ports", i, "port"); got != want {
			t.Errorf("cluster rule port %d = %v, expected %d", i, got, want)
		}
	}
	if got := str(rules[2], "from", 0, "namespaceSelector", "matchLabels", "team"); got != "monitoring" {
		t.Errorf("HTTP rule admits namespace team=%q, expected monitoring", got)
	}
	if got := lookup(rules[2], "ports", 0, "port"); got != 8080 {
		t.Errorf("HTTP rule port = %v, expected 8080", got)
	}
}

func TestHelm_TemplateRejectsValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no-replicas", []string{"--set", "replicaCount=0"}, "replicaCount"},
		{"bootstrap-beyond-replicas", []string{"--set", "cluster.bootstrapExpect=5"}, "cluster.bootstrapExpect (5) exceeds replicaCount (3)"},
		{"grace-without-prestop-time", []string{"--set", "terminationGracePeriodSeconds=80"}, "must exceed shutdownTimeoutSeconds plus preStop.timeoutSeconds"},
		{"port-clash", []string{"--set", "cluster.peerPort=8080"}, "must differ"},
		{"bad-anti-affinity", []string{"--set", "podAntiAffinity=always"}, "podAntiAffinity"},
		{"tls-without-secret", []string{"--set", "tls.enabled=true"}, "tls.secretName is empty"},
		{"bad-client-auth", []string{"--set", "tls.clientAuth=always"}, "/tls/clientAuth"},
		{"no-listener", []string{"--set", "mqtt.enabled=false"}, "enable at least one"},
		{"short-grace", []string{"--set", "terminationGracePeriodSeconds=30"}, "must exceed shutdownTimeoutSeconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helmTemplate(t, tc.args...)
			if err == nil {
				t.Fatalf("helm template %q succeeded, expected an error with %q", tc.args, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("helm template %q failed with %v, expected %q", tc.args, err, tc.want)
			}
		})
	}
}

// containerArgs returns a container's args.
func containerArgs(container any) []string {
	var args []string
	list, _ := lookup(container, "args").([]any)
	for _, a := range list {
		if s, ok := a.(string); ok {
			args = append(args, s)
		}
	}
	return args
}

// containerEnv returns a container's variables that have a literal value.
func containerEnv(container any) map[string]string {
	env := map[string]string{}
	list, _ := lookup(container, "env").([]any)
	for _, e := range list {
		if value, ok := lookup(e, "value").(string); ok {
			env[str(e, "name")] = value
		}
	}
	return env
}

// TestHelm_ConfigStartsImage runs the image the way the chart's pods do,
// as a three-node cluster on a Docker network: the rendered starling.yaml,
// the container's args (with $(POD_NAME) expanded as Kubernetes does) and
// variables, the files of the TLS Secret, of the generated cluster Secret
// and of the admin token at the chart's paths, and the pod's security
// settings. Network aliases stand in for the headless Service: each
// container answers to its pod's stable DNS name, and all three to the
// Service's name. It checks the probes' endpoints, that the nodes form one
// cluster with the generated certificates and gossip key, the user command
// of NOTES.txt and a TLS handshake with a client certificate.
func TestHelm_ConfigStartsImage(t *testing.T) {
	t.Parallel()
	image := testImage(t)
	objects, err := helmTemplate(t, "-f", tlsValues)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()

	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if out, err := runCommand("", nil, nil, binaryPath, "certs", "init", certs, "--hosts", "localhost,127.0.0.1", "--clients", "device-1"); err != nil {
		t.Fatalf("starling certs init: %v\n%s", err, out)
	}
	secretDir := filepath.Join(dir, "tls")
	if err := os.Mkdir(secretDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for key, file := range map[string]string{"tls.crt": "server.pem", "tls.key": "server-key.pem", "ca.crt": "ca.pem"} {
		if err := copyFile(filepath.Join(certs, file), filepath.Join(secretDir, key), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clusterDir := filepath.Join(dir, "cluster")
	if err := os.Mkdir(clusterDir, 0o755); err != nil {
		t.Fatal(err)
	}
	clusterData, _ := lookup(find(t, objects, "Secret", "rel-starling-cluster"), "data").(manifest)
	if len(clusterData) == 0 {
		t.Fatal("the Secret rel-starling-cluster has no data")
	}
	for key, value := range clusterData {
		content, err := base64.StdEncoding.DecodeString(value.(string))
		if err != nil {
			t.Fatalf("cluster Secret key %s: %v", key, err)
		}
		writeFile(t, filepath.Join(clusterDir, key), string(content))
	}
	configText, _ := starlingConfig(t, objects)
	configFile := writeFile(t, filepath.Join(dir, "starling.yaml"), configText)
	tokenFile := writeFile(t, filepath.Join(dir, "token"), adminToken)

	sts := find(t, objects, "StatefulSet", "rel-starling")
	podContainer := lookup(sts, "spec", "template", "spec", "containers", 0)
	network := newNetwork(t)
	const headless = "rel-starling-headless.mqtt.svc.cluster.local"
	var pods []*container
	for i := range 3 {
		podName := fmt.Sprintf("rel-starling-%d", i)
		runArgs := []string{
			"--user", "65532:65532", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
			"--network", network,
			"--network-alias", podName + "." + headless,
			"--network-alias", headless,
			"-v", configFile + ":/etc/starling/starling.yaml:ro",
			"-v", secretDir + ":/etc/starling/tls:ro",
			"-v", clusterDir + ":/etc/starling/cluster:ro",
			"-v", tokenFile + ":/etc/starling/admin/token:ro",
			// The chart sets POD_NAME from metadata.name.
			"-e", "POD_NAME=" + podName,
			"-p", "127.0.0.1::8883", "-p", "127.0.0.1::8080",
		}
		for name, value := range containerEnv(podContainer) {
			runArgs = append(runArgs, "-e", name+"="+value)
		}
		runArgs = append(runArgs, image)
		for _, arg := range containerArgs(podContainer) {
			runArgs = append(runArgs, strings.ReplaceAll(arg, "$(POD_NAME)", podName))
		}
		pods = append(pods, runContainer(t, uniqueName(fmt.Sprintf("helmpod%d", i)), runArgs...))
	}

	for _, pod := range pods {
		httpAddr := pod.hostPort(t, "8080/tcp")
		waitFor(t, clusterReadyTimeout, func() error {
			code, body, err := httpGet("http://" + httpAddr + "/readyz")
			if err != nil {
				return err
			}
			if code != 200 {
				return fmt.Errorf("GET /readyz on %s: status %d, body %q", pod.name, code, body)
			}
			return nil
		})
		if code, body, err := httpGet("http://" + httpAddr + "/healthz"); err != nil || code != 200 {
			t.Fatalf("GET /healthz: status %d, body %q, err %v", code, body, err)
		}
	}
	t.Logf("three pods of the chart ready in %v", time.Since(start).Round(time.Millisecond))

	status, err := runCommand("", nil, nil, "docker", "exec", pods[0].name,
		"/starling", "ctl", "cluster", "status", "--http", "127.0.0.1:8080")
	if err != nil {
		t.Fatalf("ctl cluster status: %v", err)
	}
	for i := range 3 {
		peer := fmt.Sprintf("rel-starling-%d.%s:7947", i, headless)
		if !strings.Contains(status, peer) {
			t.Errorf("cluster status lacks the peer address %s:\n%s", peer, status)
		}
	}
	if got := strings.Count(status, "Voter"); got != 3 {
		t.Errorf("cluster status lists %d voters, expected 3:\n%s", got, status)
	}

	out, err := runCommand("", strings.NewReader("alice-password\n"), nil, "docker", "exec", "-i", pods[0].name,
		"/starling", "user", "add", "alice", "--group", "clients", "--http", "127.0.0.1:8080", "--password-stdin")
	if err != nil {
		t.Fatalf("user add as NOTES.txt shows it: %v", err)
	}
	if !strings.Contains(out, "user alice saved") {
		t.Fatalf("starling user add printed %q, expected \"user alice saved\"", out)
	}

	tlsAddr := pods[2].hostPort(t, "8883/tcp")
	if err := tlsHandshake(tlsAddr, certs, "device-1"); err != nil {
		t.Errorf("TLS handshake with client certificate device-1: %v", err)
	}
	if err := tlsHandshake(tlsAddr, certs, ""); err == nil {
		t.Error("TLS handshake without a client certificate succeeded, expected a rejection (client_auth: required)")
	}
	t.Logf("chart configuration started and checked in %v", time.Since(start).Round(time.Millisecond))
}

// tlsHandshake connects to addr, verifies the server against certs/ca.pem
// and presents the client certificate of client, or none when it is empty.
// With TLS 1.3 the server reports a rejected client certificate only after
// the handshake, so it also reads one byte: the server must keep the
// connection open (MQTT waits for the client's CONNECT) and not close it.
func tlsHandshake(addr, certs, client string) error {
	caPEM, err := os.ReadFile(filepath.Join(certs, "ca.pem"))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	config := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if client != "" {
		cert, err := tls.LoadX509KeyPair(filepath.Join(certs, "clients", client+".pem"), filepath.Join(certs, "clients", client+"-key.pem"))
		if err != nil {
			return err
		}
		config.Certificates = []tls.Certificate{cert}
	}

	dialer := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(dialer, "tcp", addr, config)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err = conn.Read(make([]byte, 1))
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return nil
	}
	if err == nil {
		return errors.New("the server sent data before CONNECT")
	}
	return fmt.Errorf("read after handshake: %w", err)
}
