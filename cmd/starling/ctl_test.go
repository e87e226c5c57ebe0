package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/starling-mqtt/starling/node"
)

// ctlResult is the outcome of one runCtlIO call.
type ctlResult struct {
	code           int
	stdout, stderr string
}

// runCtlAt runs ctl against the fixture's HTTP address with args, and
// ignores the environment's STARLING_HTTP and STARLING_ADMIN_TOKEN_FILE.
func runCtlAt(t *testing.T, f *adminFixture, args ...string) ctlResult {
	t.Helper()
	t.Setenv("STARLING_HTTP", "")
	t.Setenv("STARLING_ADMIN_TOKEN_FILE", "")
	var stdout, stderr bytes.Buffer
	// --http goes first, because arguments after a "--" are positional.
	full := append([]string{"--http", strings.TrimPrefix(f.baseURL, "http://")}, args...)
	code := runCtlIO(full, &stdout, &stderr)
	return ctlResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// mustCtl runs ctl and fails the test unless it exits 0.
func mustCtl(t *testing.T, f *adminFixture, args ...string) string {
	t.Helper()
	r := runCtlAt(t, f, args...)
	if r.code != 0 {
		t.Fatalf("ctl %q: exit %d, stderr %s", args, r.code, r.stderr)
	}
	return r.stdout
}

// tableRow returns the first output line that starts with prefix, split into
// its columns.
func tableRow(t *testing.T, out, prefix string) []string {
	t.Helper()
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, prefix) {
			return strings.Fields(line)
		}
	}
	t.Fatalf("no line starts with %q in:\n%s", prefix, out)
	return nil
}

func TestCtl_Status(t *testing.T) {
	f := startAdminFixture(t, "")
	out := mustCtl(t, f, "status")
	if row := tableRow(t, out, "ready:"); row[1] != "true" {
		t.Errorf("ready row %q, want true", row)
	}
	if row := tableRow(t, out, "version:"); row[1] != version {
		t.Errorf("version row %q, want %s", row, version)
	}

	var st statusResponse
	if err := json.Unmarshal([]byte(mustCtl(t, f, "status", "-o", "json")), &st); err != nil {
		t.Fatalf("status -o json is not JSON: %v", err)
	}
	if !st.Ready {
		t.Error("status -o json: ready false")
	}
}

func TestCtl_ClientsAndSessions(t *testing.T) {
	f := startAdminFixture(t, "")
	c := connectClient(t, f, "dev-1", "", "", false)
	connectClient(t, f, "dev-2", "", "", true)
	subscribe(t, c, "devices/dev-1/#", 1, nil)

	out := mustCtl(t, f, "clients")
	if !strings.HasPrefix(out, "CLIENT ID") {
		t.Errorf("clients table has no header:\n%s", out)
	}
	if row := tableRow(t, out, "dev-1"); row[1] != "true" || row[4] != "3.1.1" || row[5] != "1" {
		t.Errorf("dev-1 row %q, want connected, 3.1.1, 1 subscription", row)
	}
	out = mustCtl(t, f, "clients", "--match", "v-2")
	if strings.Contains(out, "dev-1") || !strings.Contains(out, "dev-2") {
		t.Errorf("clients --match v-2:\n%s", out)
	}
	out = mustCtl(t, f, "clients", "--limit", "1")
	if !strings.Contains(out, "only the first 1 shown") {
		t.Errorf("clients --limit 1 does not say the list is cut:\n%s", out)
	}

	var list clientsResponse
	if err := json.Unmarshal([]byte(mustCtl(t, f, "clients", "-o", "json")), &list); err != nil || len(list.Clients) != 2 {
		t.Errorf("clients -o json: %v, %+v", err, list)
	}

	out = mustCtl(t, f, "client", "dev-1")
	if row := tableRow(t, out, "persistent:"); row[1] != "true" {
		t.Errorf("client dev-1 persistent row %q", row)
	}
	out = mustCtl(t, f, "subscriptions", "dev-1")
	if row := tableRow(t, out, "devices/dev-1/#"); row[1] != "1" {
		t.Errorf("subscription row %q, want QoS 1", row)
	}

	out = mustCtl(t, f, "kick", "dev-1")
	if !strings.Contains(out, "client dev-1 disconnected") {
		t.Errorf("kick output %q", out)
	}
	var info node.ClientInfo
	if err := json.Unmarshal([]byte(mustCtl(t, f, "-o", "json", "client", "dev-1")), &info); err != nil || info.Connected {
		t.Errorf("after kick: %v, %+v", err, info)
	}
	r := runCtlAt(t, f, "kick", "dev-1")
	if r.code != 1 || !strings.Contains(r.stderr, "409") || !strings.Contains(r.stderr, "not connected") {
		t.Errorf("second kick: exit %d, stderr %q; want 1 and a 409 saying not connected", r.code, r.stderr)
	}

	out = mustCtl(t, f, "session", "delete", "dev-1")
	if !strings.Contains(out, "session of dev-1 deleted") {
		t.Errorf("session delete output %q", out)
	}
	r = runCtlAt(t, f, "client", "dev-1")
	if r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Errorf("client after session delete: exit %d, stderr %q; want 1 and 404", r.code, r.stderr)
	}
}

func TestCtl_PublishAndRetained(t *testing.T) {
	f := startAdminFixture(t, "")
	mustCtl(t, f, "publish", "a/text", "hello world", "--qos", "1", "--retain")
	mustCtl(t, f, "publish", "--retain", "--base64", "a/bin", "AAH/")
	mustCtl(t, f, "publish", "a/neg", "--retain", "--", "-5")

	out := mustCtl(t, f, "retained")
	if !strings.Contains(out, `a/text  1    11    "hello world"`) {
		t.Errorf("retained table lacks the text row:\n%s", out)
	}
	if !strings.Contains(out, "<3 bytes of binary") {
		t.Errorf("retained table does not mark the binary payload:\n%s", out)
	}
	if !strings.Contains(out, `"-5"`) {
		t.Errorf("payload after -- was not published as -5:\n%s", out)
	}

	var resp retainedResponse
	if err := json.Unmarshal([]byte(mustCtl(t, f, "retained", "--filter", "a/bin", "-o", "json")), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Messages) != 1 || !bytes.Equal(resp.Messages[0].Payload, []byte{0, 1, 0xff}) {
		t.Errorf("retained --filter a/bin -o json: %+v", resp)
	}

	mustCtl(t, f, "retained", "delete", "a/text")
	if out := mustCtl(t, f, "retained"); strings.Contains(out, "a/text") {
		t.Errorf("a/text still retained after delete:\n%s", out)
	}
	if r := runCtlAt(t, f, "retained", "delete", "a/text"); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Errorf("second delete: exit %d, stderr %q; want 1 and 404", r.code, r.stderr)
	}
	if r := runCtlAt(t, f, "publish", "a/+", "x"); r.code != 1 || !strings.Contains(r.stderr, "400") {
		t.Errorf("publish to a wildcard: exit %d, stderr %q; want 1 and 400", r.code, r.stderr)
	}
	if r := runCtlAt(t, f, "publish", "--base64", "a", "not base64!"); r.code != 1 || !strings.Contains(r.stderr, "not valid base64") {
		t.Errorf("bad --base64 payload: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestCtl_GroupsRolesAndAuthz(t *testing.T) {
	f := startAdminFixture(t, "")
	mustCtl(t, f, "role", "put", "device", "--rule", "allow:publish:devices/%c/#", "--rule", "deny:all:#")
	out := mustCtl(t, f, "role", "get", "device")
	first, second := tableRow(t, out, "device  1"), tableRow(t, out, "device  2")
	if first[2] != "allow" || first[4] != "devices/%c/#" || second[2] != "deny" || second[3] != "all" {
		t.Errorf("role rules out of order or wrong:\n%s", out)
	}
	var role roleJSON
	if err := json.Unmarshal([]byte(mustCtl(t, f, "role", "get", "device", "-o", "json")), &role); err != nil || len(role.Rules) != 2 {
		t.Errorf("role get -o json: %v, %+v", err, role)
	}

	mustCtl(t, f, "group", "put", "fleet", "--role", "device")
	if row := tableRow(t, mustCtl(t, f, "group", "list"), "fleet"); row[1] != "device" {
		t.Errorf("group list row %q", row)
	}
	putTestUser(t, f, "dev-1", "pw", "fleet")

	out = mustCtl(t, f, "authz", "check", "--user", "dev-1", "--client", "dev-1", "--publish", "devices/dev-1/t")
	if !strings.HasPrefix(out, "allowed:") {
		t.Errorf("own topic: %q, want allowed", out)
	}
	r := runCtlAt(t, f, "authz", "check", "--user", "dev-1", "--client", "dev-1", "--subscribe", "devices/dev-1/t")
	if r.code != 3 || !strings.HasPrefix(r.stdout, "denied:") {
		t.Errorf("subscribe under a publish-only allow and deny-all: exit %d, %q, want 3 and denied", r.code, r.stdout)
	}
	r = runCtlAt(t, f, "authz", "check", "--user", "dev-1", "--client", "dev-1", "--publish", "devices/dev-1/t", "--qos", "2", "--retain")
	if !strings.Contains(r.stdout, "at QoS 2, retained") {
		t.Errorf("check with --qos 2 --retain printed %q", r.stdout)
	}
	var resp authzResponse
	r = runCtlAt(t, f, "authz", "check", "--user", "dev-1", "--client", "dev-2", "--publish", "devices/dev-1/t", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil || resp.Allowed || r.code != 3 {
		t.Errorf("other client's topic -o json: exit %d, %v, %+v, want 3 and allowed false", r.code, err, resp)
	}
	if r := runCtlAt(t, f, "authz", "check", "--user", "dev-1"); r.code != 1 || !strings.Contains(r.stderr, "missing --publish") {
		t.Errorf("check without topic: exit %d, stderr %q", r.code, r.stderr)
	}

	if r := runCtlAt(t, f, "role", "put", "bad", "--rule", "allow:read:#"); r.code != 1 || !strings.Contains(r.stderr, `rule "allow:read:#" is invalid`) {
		t.Errorf("invalid rule: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCtlAt(t, f, "role", "put", "bad", "--rule", "allow-publish"); r.code != 1 || !strings.Contains(r.stderr, "PERMISSION:ACTION:TOPIC") {
		t.Errorf("rule without colons: exit %d, stderr %q", r.code, r.stderr)
	}

	mustCtl(t, f, "group", "delete", "fleet")
	mustCtl(t, f, "role", "delete", "device")
	if out := mustCtl(t, f, "role", "list"); strings.Contains(out, "device") {
		t.Errorf("role list after delete:\n%s", out)
	}
	if r := runCtlAt(t, f, "group", "get", "fleet"); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Errorf("group get after delete: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestCtl_TokenFile(t *testing.T) {
	f := startAdminFixture(t, testAdminToken)
	if r := runCtlAt(t, f, "status"); r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Errorf("without token: exit %d, stderr %q; want 1 and 401", r.code, r.stderr)
	}

	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(testAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, f, "status", "--token-file", path)

	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCtlAt(t, f, "status", "--token-file", empty); r.code != 1 || !strings.Contains(r.stderr, "is empty") {
		t.Errorf("empty token file: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestCtl_UsageErrors(t *testing.T) {
	f := startAdminFixture(t, "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown-command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"missing-id", []string{"client"}, "client takes 1 argument(s), got 0"},
		{"extra-argument", []string{"status", "now"}, "status takes 0 argument(s), got 1"},
		{"flag-of-other-command", []string{"clients", "--retain"}, `flag --retain does not apply to "clients"`},
		{"unknown-flag", []string{"clients", "--colour", "red"}, "flag provided but not defined: -colour"},
		{"bad-output", []string{"status", "-o", "yaml"}, `output format "yaml" is invalid`},
		{"group-without-verb", []string{"group"}, `unknown command "group": use one of group list, group get, group put, group delete`},
		{"only-flags", []string{"-o", "json"}, `unknown command ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtlAt(t, f, tt.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2", r.code)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q lacks %q", r.stderr, tt.want)
			}
		})
	}

}

func TestCtl_NodeNotRunning(t *testing.T) {
	t.Setenv("STARLING_ADMIN_TOKEN_FILE", "")

	// A port that was just free and is closed again has no listener.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	var stderr bytes.Buffer
	code := runCtlIO([]string{"status", "--http", addr}, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "is it running with --http?") {
		t.Errorf("exit %d, stderr %q; want 1 and a hint to start the node", code, stderr.String())
	}
}

func TestCtl_Help(t *testing.T) {
	for _, args := range [][]string{nil, {"-h"}, {"status", "--help"}} {
		var stderr bytes.Buffer
		if code := runCtlIO(args, io.Discard, &stderr); code != 2 || !strings.HasPrefix(stderr.String(), "Inspect and operate") {
			t.Errorf("args %q: exit %d, stderr %q; want 2 and the usage", args, code, stderr.String())
		}
	}
}

func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		words []string
		qos   int
	}{
		{"flags-first", []string{"--qos", "1", "publish", "t", "p"}, []string{"publish", "t", "p"}, 1},
		{"flags-between", []string{"publish", "--qos", "2", "t", "p"}, []string{"publish", "t", "p"}, 2},
		{"flags-last", []string{"publish", "t", "p", "--qos=1"}, []string{"publish", "t", "p"}, 1},
		{"dash-dash", []string{"publish", "t", "--", "--qos"}, []string{"publish", "t", "--qos"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			qos := fs.Int("qos", 0, "")
			words, err := parseInterleaved(fs, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(words, tt.words) {
				t.Errorf("words %q, want %q", words, tt.words)
			}
			if *qos != tt.qos {
				t.Errorf("qos %d, want %d", *qos, tt.qos)
			}
		})
	}
}

func TestPayloadPreview(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"text", []byte("21.5 C"), `"21.5 C"`},
		{"empty", nil, `""`},
		{"binary", []byte{0, 1, 2}, "<3 bytes of binary; see -o json>"},
		{"invalid-utf8", []byte{0xff, 'a'}, "<2 bytes of binary; see -o json>"},
		{"newline", []byte("a\nb"), "<3 bytes of binary; see -o json>"},
		{"long", []byte(strings.Repeat("é", maxPreview+5)), `"` + strings.Repeat("é", maxPreview) + `"…`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := payloadPreview(tt.payload); got != tt.want {
				t.Errorf("payloadPreview(%q) = %s, want %s", tt.payload, got, tt.want)
			}
		})
	}
}

// TestCtl_KickWaitsForDisconnect checks that kick returns only after the
// node closed the connection, so a script may rely on it.
func TestCtl_KickWaitsForDisconnect(t *testing.T) {
	f := startAdminFixture(t, "")
	connectClient(t, f, "dev-1", "", "", true)
	mustCtl(t, f, "kick", "dev-1")
	if info, err := f.node.Client("dev-1"); err == nil && info.Connected {
		t.Error("client still connected when kick returned")
	}
}
