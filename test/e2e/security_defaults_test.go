package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSecurity_OpenOnlyOnLoopbackWithoutRules checks the default decision.
// A loopback listener of a node without rules allows anonymous clients
// everything, a listener on every interface that admits anonymous clients
// allows them nothing, and the first rule ends the open loopback at once,
// also for a client already connected.
func TestSecurity_OpenOnlyOnLoopbackWithoutRules(t *testing.T) {
	n := startSecNode(t, secNodeSpec{listeners: map[string]string{"loop": "tcp", "wide": "tcp"}, config: func(n *secNode) string {
		probe, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(probe.Addr().(*net.TCPAddr).Port)
		probe.Close()
		n.addr["wide"] = "127.0.0.1:" + port
		return fmt.Sprintf(`listeners:
  - {name: loop, url: "tcp://%s"}
  - {name: wide, url: "tcp://0.0.0.0:%s", allow_anonymous: true}
`, n.addr["loop"], port)
	}})

	loop := n.mustLogin("loop", "anon-loop", "", "")
	if got := loop.publish("a/b", 1, false, "x"); got != 0 {
		t.Errorf("loopback, no rules: PUBLISH %#x, want 0", got)
	}
	if got := loop.subscribe("#", 1); got != 1 {
		t.Errorf("loopback, no rules: SUBSCRIBE # %#x, want 1", got)
	}
	wide := n.mustLogin("wide", "anon-wide", "", "")
	if got := wide.publish("a/b", 1, false, "x"); got != 0x87 {
		t.Errorf("every interface, no rules: PUBLISH %#x, want 0x87", got)
	}
	if got := wide.subscribe("#", 1); got != 0x87 {
		t.Errorf("every interface, no rules: SUBSCRIBE # %#x, want 0x87", got)
	}

	// A role with one rule, which no anonymous client holds: the loopback
	// listener falls back to the default decision, deny.
	n.ctl("role", "put", "device", "--rule", "allow:publish:devices/%u/#")
	if got := loop.publish("a/b", 1, false, "x"); got != 0x87 {
		t.Errorf("loopback after the first rule: PUBLISH %#x, want 0x87", got)
	}
	if got := loop.subscribe("a/#", 1); got != 0x87 {
		t.Errorf("loopback after the first rule: SUBSCRIBE %#x, want 0x87", got)
	}
}

// TestSecurity_UserCommandsAgainstRunningNode drives `starling user` against
// the admin endpoint of a running node: add, a refused second add, passwd,
// list and remove, each taking effect for the next login at once, and
// remove disconnecting the user's open connection.
func TestSecurity_UserCommandsAgainstRunningNode(t *testing.T) {
	n := startSecNode(t, secNodeSpec{listeners: map[string]string{"l": "tcp"}, config: fleetConfig})
	user := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(starlingBin, append(append([]string{"user"}, args...), "--http", n.http)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	if out, err := user("first-pw\n", "add", "dev-9", "--group", "fleet", "--password-stdin"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	if out, err := user("other-pw\n", "add", "dev-9", "--password-stdin"); err == nil {
		t.Errorf("second user add of dev-9 succeeded: %s", out)
	}
	c := n.mustLogin("l", "dev-9", "dev-9", "first-pw")
	if got := c.publish("devices/dev-9/telemetry", 1, false, "x"); got != 0 {
		t.Errorf("dev-9 publish through its group's role: %#x, want 0", got)
	}

	if out, err := user("second-pw\n", "passwd", "dev-9", "--password-stdin"); err != nil {
		t.Fatalf("user passwd: %v\n%s", err, out)
	}
	if _, code := n.login("l", "dev-9-old", "dev-9", "first-pw", nil); code != 0x86 {
		t.Errorf("old password after passwd: CONNACK %#x, want 0x86", code)
	}
	n.mustLogin("l", "dev-9-new", "dev-9", "second-pw").disconnect()

	if out, err := user("", "list", "-o", "json"); err != nil || !strings.Contains(out, `"dev-9"`) {
		t.Errorf("user list: %v\n%s", err, out)
	}

	if out, err := user("", "remove", "dev-9"); err != nil {
		t.Fatalf("user remove: %v\n%s", err, out)
	}
	got := c.expectClosed(ioTimeout)
	if len(got) != 1 || got[0].Type != typeDisconnect || disconnectReason(got[0]) != 0x98 {
		t.Errorf("connected dev-9 after remove: %v, want DISCONNECT 0x98", got)
	}
	if _, code := n.login("l", "dev-9", "dev-9", "second-pw", nil); code != 0x86 {
		t.Errorf("login after remove: CONNACK %#x, want 0x86", code)
	}
}

// TestSecurity_DenialsCountedAndLoggedRateLimited makes many refused
// requests and logins. /metrics counts each one, authentication failures by
// reason and ACL denials by action, while the log gets at most one warning
// per second and then says how many it left out.
func TestSecurity_DenialsCountedAndLoggedRateLimited(t *testing.T) {
	n := startSecNode(t, secNodeSpec{listeners: map[string]string{"l": "tcp"}, users: fleetUsers, config: fleetConfig})
	start := time.Now()
	dev := n.mustLogin("l", "dev-1", "dev-1", "pw-dev-1")
	for i := 0; i < 50; i++ {
		if got := dev.publish("devices/dev-2/telemetry", 1, false, "x"); got != 0x87 {
			t.Fatalf("denied publish %d: %#x", i, got)
		}
	}
	for i := 0; i < 20; i++ {
		if got := dev.subscribe("devices/#", 1); got != 0x87 {
			t.Fatalf("denied subscribe %d: %#x", i, got)
		}
	}
	for i := 0; i < 3; i++ {
		if _, code := n.login("l", "guess", "dev-1", "wrong", nil); code != 0x86 {
			t.Fatalf("wrong password %d: CONNACK %#x", i, code)
		}
	}
	if _, code := n.login("l", "anon", "", "", nil); code != 0x87 {
		t.Fatalf("anonymous: CONNACK %#x", code)
	}
	if _, code := n.login("l", "dev-1-w", "dev-1", "pw-dev-1", &willSpec{Topic: "devices/dev-2/will", Payload: "x"}); code != 0x87 {
		t.Fatalf("forbidden will: CONNACK %#x", code)
	}
	elapsed := time.Since(start)

	metrics := scrapeMetrics(t, n.http)
	for _, want := range []struct {
		name string
		min  float64
	}{
		{`starling_authorization_denied_total{action="publish"}`, 50},
		{`starling_authorization_denied_total{action="subscribe"}`, 20},
		{`starling_authorization_denied_total{action="will"}`, 1},
		{`starling_auth_failures_total{reason="bad_credentials"}`, 3},
		{`starling_auth_failures_total{reason="not_authorized"}`, 1},
	} {
		if got, ok := metrics[want.name]; !ok || got < want.min {
			t.Errorf("%s = %v (present %v), want at least %v", want.name, got, ok, want.min)
		}
	}

	// 75 refusals, and at most one warning per started second.
	warnings := regexp.MustCompile(`level=WARN msg="(publish not authorized|subscribe not authorized|authentication failed)`)
	if got, limit := len(warnings.FindAllString(n.log.String(), -1)), int(elapsed/time.Second)+2; got > limit {
		t.Errorf("%d warnings for 75 refusals in %v, want at most %d", got, elapsed.Round(time.Millisecond), limit)
	}
	time.Sleep(1100 * time.Millisecond)
	dev.publish("devices/dev-2/telemetry", 1, false, "x")
	waitFor(t, ioTimeout, func() error {
		if !regexp.MustCompile(`publish not authorized.* suppressed=[1-9]`).MatchString(n.log.String()) {
			return fmt.Errorf("no warning that counts the suppressed ones:\n%s", tail(n.log.String(), 5))
		}
		return nil
	})
}

// scrapeMetrics returns the samples of the node's /metrics, keyed by name
// with labels.
func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: ioTimeout}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
