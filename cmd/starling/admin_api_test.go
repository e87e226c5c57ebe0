package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/starling-mqtt/starling/node"
	"github.com/starling-mqtt/starling/node/auth"
)

// testAdminToken is a bearer token long enough for readAdminToken's check.
const testAdminToken = "test-token-0123456789abcdef"

// adminFixture is a started node with its HTTP endpoints on loopback.
type adminFixture struct {
	node    *node.Server
	baseURL string // http://127.0.0.1:PORT
	mqtt    string // tcp://127.0.0.1:PORT of the client listener
}

// startAdminFixture starts a node with one loopback TCP listener and its
// HTTP endpoints through startHTTP, as `starling serve --http` does. Both
// stop when the test ends.
func startAdminFixture(t *testing.T, token string) *adminFixture {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	n, err := node.New(node.Config{
		Listeners:   []node.ListenerConfig{{URL: "tcp://127.0.0.1:0"}},
		DataDir:     t.TempDir(),
		SysInterval: -1,
		Logger:      logger,
	})
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	web, err := startHTTP("127.0.0.1:0", httpTLSFiles{}, n, nil, false, token, logger, nil)
	if err != nil {
		n.Shutdown(context.Background())
		t.Fatalf("startHTTP: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		web.shutdown(ctx)
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("node.Shutdown: %v", err)
		}
	})
	return &adminFixture{node: n, baseURL: "http://" + web.ln.Addr().String(), mqtt: "tcp://" + n.Addrs()[0].String()}
}

// request sends a request with an optional JSON body and the fixture's token
// (when token is not empty), and returns the status and body.
func (f *adminFixture) request(t *testing.T, method, path, body, token string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.baseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// expect sends a request without a token, checks its status and decodes a
// JSON response into out when out is not nil.
func (f *adminFixture) expect(t *testing.T, method, path, body string, status int, out any) []byte {
	t.Helper()
	got, b := f.request(t, method, path, body, "")
	if got != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, got, status, b)
	}
	if status >= 400 {
		var e struct{ Error string }
		if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
			t.Fatalf("%s %s: error body %q is not {\"error\": \"...\"}", method, path, b)
		}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return b
}

// inbox collects the messages a paho client receives; paho's router
// goroutine and the test use it concurrently.
type inbox struct {
	mu   sync.Mutex
	msgs []mqtt.Message
}

func (in *inbox) handle(_ mqtt.Client, m mqtt.Message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
}

func (in *inbox) all() []mqtt.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]mqtt.Message(nil), in.msgs...)
}

// connectClient connects an MQTT 3.1.1 client that does not reconnect, so a
// kick stays visible. It disconnects when the test ends.
func connectClient(t *testing.T, f *adminFixture, clientID, username, password string, clean bool) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(f.mqtt).SetClientID(clientID).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).SetConnectTimeout(5 * time.Second)
	if username != "" {
		opts.SetUsername(username).SetPassword(password)
	}
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// subscribe subscribes and returns the granted QoS, 0x80 for a failure.
func subscribe(t *testing.T, c mqtt.Client, filter string, qos byte, cb mqtt.MessageHandler) byte {
	t.Helper()
	tok := c.Subscribe(filter, qos, cb)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*mqtt.SubscribeToken).Result()[filter]
}

// waitFor polls check until it returns "" or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAdminAPI_Status(t *testing.T) {
	f := startAdminFixture(t, "")
	var st statusResponse
	f.expect(t, "GET", "/api/v1/status", "", http.StatusOK, &st)

	host, _ := os.Hostname()
	if st.Node != host {
		t.Errorf("node = %q, want the host name %q", st.Node, host)
	}
	if st.Version != version {
		t.Errorf("version = %q, want %q", st.Version, version)
	}
	if !st.Ready {
		t.Error("ready = false for a started node")
	}
	if st.StartedAt.IsZero() || st.UptimeSeconds < 0 {
		t.Errorf("started_at %v, uptime %d", st.StartedAt, st.UptimeSeconds)
	}
	if st.Stats.AuthFailuresTotal == nil || st.Stats.DeniedTotal == nil {
		t.Errorf("stats maps missing: %+v", st.Stats)
	}

	connectClient(t, f, "dev-1", "", "", true)
	f.expect(t, "GET", "/api/v1/status", "", http.StatusOK, &st)
	if st.Stats.Connected != 1 || st.Stats.ConnectsTotal != 1 {
		t.Errorf("connected %d, connects_total %d after one connect, want 1 and 1", st.Stats.Connected, st.Stats.ConnectsTotal)
	}
}

func TestAdminAPI_Clients(t *testing.T) {
	f := startAdminFixture(t, "")
	c1 := connectClient(t, f, "dev-1", "", "", false)
	connectClient(t, f, "dev-2", "", "", true)
	subscribe(t, c1, "devices/dev-1/#", 1, nil)

	var all clientsResponse
	f.expect(t, "GET", "/api/v1/clients", "", http.StatusOK, &all)
	if len(all.Clients) != 2 || all.Truncated {
		t.Fatalf("clients %+v, want dev-1 and dev-2 untruncated", all)
	}
	if all.Clients[0].ClientID != "dev-1" || all.Clients[1].ClientID != "dev-2" {
		t.Errorf("clients not sorted by id: %+v", all.Clients)
	}

	var matched clientsResponse
	f.expect(t, "GET", "/api/v1/clients?match=v-2", "", http.StatusOK, &matched)
	if len(matched.Clients) != 1 || matched.Clients[0].ClientID != "dev-2" {
		t.Errorf("match=v-2: %+v", matched)
	}

	var limited clientsResponse
	f.expect(t, "GET", "/api/v1/clients?limit=1", "", http.StatusOK, &limited)
	if len(limited.Clients) != 1 || !limited.Truncated {
		t.Errorf("limit=1: %+v, want one client and truncated", limited)
	}

	var none clientsResponse
	body := f.expect(t, "GET", "/api/v1/clients?match=nobody", "", http.StatusOK, &none)
	if !bytes.Contains(body, []byte(`"clients": []`)) {
		t.Errorf("empty list is not an empty JSON array: %s", body)
	}
	for _, limit := range []string{"0", "-1", "abc", "100001"} {
		f.expect(t, "GET", "/api/v1/clients?limit="+limit, "", http.StatusBadRequest, nil)
	}

	var info node.ClientInfo
	f.expect(t, "GET", "/api/v1/clients/dev-1", "", http.StatusOK, &info)
	if !info.Connected || !info.Persistent || info.Subscriptions != 1 || info.Version != 4 {
		t.Errorf("client dev-1: %+v", info)
	}
	f.expect(t, "GET", "/api/v1/clients/nobody", "", http.StatusNotFound, nil)

	var subs []node.SubscriptionInfo
	f.expect(t, "GET", "/api/v1/clients/dev-1/subscriptions", "", http.StatusOK, &subs)
	if len(subs) != 1 || subs[0].Filter != "devices/dev-1/#" || subs[0].QoS != 1 {
		t.Errorf("subscriptions of dev-1: %+v", subs)
	}
	f.expect(t, "GET", "/api/v1/clients/nobody/subscriptions", "", http.StatusNotFound, nil)
}

func TestAdminAPI_ClientIDNeedsEscaping(t *testing.T) {
	f := startAdminFixture(t, "")
	connectClient(t, f, "site/a b", "", "", true)

	var info node.ClientInfo
	f.expect(t, "GET", "/api/v1/clients/"+url.PathEscape("site/a b"), "", http.StatusOK, &info)
	if info.ClientID != "site/a b" {
		t.Errorf("client id %q, want %q", info.ClientID, "site/a b")
	}
}

func TestAdminAPI_KickAndDeleteSession(t *testing.T) {
	f := startAdminFixture(t, "")
	c := connectClient(t, f, "dev-1", "", "", false)
	subscribe(t, c, "a/#", 1, nil)

	f.expect(t, "POST", "/api/v1/clients/dev-1/kick", "", http.StatusNoContent, nil)
	var info node.ClientInfo
	f.expect(t, "GET", "/api/v1/clients/dev-1", "", http.StatusOK, &info)
	if info.Connected {
		t.Error("dev-1 still connected after kick")
	}
	if info.Subscriptions != 1 {
		t.Errorf("kick dropped the session's subscriptions: %+v", info)
	}
	waitFor(t, 5*time.Second, func() string {
		if c.IsConnectionOpen() {
			return "paho client still sees an open connection"
		}
		return ""
	})

	f.expect(t, "POST", "/api/v1/clients/dev-1/kick", "", http.StatusConflict, nil)
	f.expect(t, "POST", "/api/v1/clients/nobody/kick", "", http.StatusNotFound, nil)

	f.expect(t, "DELETE", "/api/v1/sessions/dev-1", "", http.StatusNoContent, nil)
	f.expect(t, "GET", "/api/v1/clients/dev-1", "", http.StatusNotFound, nil)
	f.expect(t, "DELETE", "/api/v1/sessions/dev-1", "", http.StatusNotFound, nil)
}

func TestAdminAPI_DeleteSessionOfConnectedClient(t *testing.T) {
	f := startAdminFixture(t, "")
	c := connectClient(t, f, "dev-1", "", "", false)

	f.expect(t, "DELETE", "/api/v1/sessions/dev-1", "", http.StatusNoContent, nil)
	f.expect(t, "GET", "/api/v1/clients/dev-1", "", http.StatusNotFound, nil)
	waitFor(t, 5*time.Second, func() string {
		if c.IsConnectionOpen() {
			return "connection stays open after its session was deleted"
		}
		return ""
	})
}

func TestAdminAPI_PublishAndRetained(t *testing.T) {
	f := startAdminFixture(t, "")
	sub := connectClient(t, f, "watcher", "", "", true)
	in := &inbox{}
	subscribe(t, sub, "a/#", 1, in.handle)

	f.expect(t, "POST", "/api/v1/publish", `{"topic": "a/text", "payload": "hello", "qos": 1, "retain": true}`, http.StatusNoContent, nil)
	f.expect(t, "POST", "/api/v1/publish", `{"topic": "a/bin", "payload_base64": "AAH/", "retain": true}`, http.StatusNoContent, nil)
	f.expect(t, "POST", "/api/v1/publish", `{"topic": "a/live", "payload": "not kept"}`, http.StatusNoContent, nil)
	waitFor(t, 5*time.Second, func() string {
		if n := len(in.all()); n != 3 {
			return "subscriber received " + strings.Repeat("*", n) + " of 3 messages"
		}
		return ""
	})
	first := in.all()[0]
	if first.Topic() != "a/text" || string(first.Payload()) != "hello" || first.Qos() != 1 {
		t.Errorf("first message: topic %q payload %q QoS %d", first.Topic(), first.Payload(), first.Qos())
	}

	var all retainedResponse
	f.expect(t, "GET", "/api/v1/retained", "", http.StatusOK, &all)
	if len(all.Messages) != 2 || all.Truncated {
		t.Fatalf("retained %+v, want a/bin and a/text", all)
	}
	if all.Messages[0].Topic != "a/bin" || !bytes.Equal(all.Messages[0].Payload, []byte{0, 1, 0xff}) {
		t.Errorf("binary retained message: %+v", all.Messages[0])
	}
	if all.Messages[1].Topic != "a/text" || string(all.Messages[1].Payload) != "hello" || all.Messages[1].QoS != 1 {
		t.Errorf("text retained message: %+v", all.Messages[1])
	}

	var filtered retainedResponse
	f.expect(t, "GET", "/api/v1/retained?filter=a/text", "", http.StatusOK, &filtered)
	if len(filtered.Messages) != 1 || filtered.Messages[0].Topic != "a/text" {
		t.Errorf("filter=a/text: %+v", filtered)
	}
	var limited retainedResponse
	f.expect(t, "GET", "/api/v1/retained?limit=1", "", http.StatusOK, &limited)
	if len(limited.Messages) != 1 || !limited.Truncated {
		t.Errorf("limit=1: %+v, want one message and truncated", limited)
	}
	f.expect(t, "GET", "/api/v1/retained?filter="+url.QueryEscape("a/#/b"), "", http.StatusBadRequest, nil)

	f.expect(t, "DELETE", "/api/v1/retained?topic=a/text", "", http.StatusNoContent, nil)
	f.expect(t, "DELETE", "/api/v1/retained?topic=a/text", "", http.StatusNotFound, nil)
	f.expect(t, "DELETE", "/api/v1/retained", "", http.StatusBadRequest, nil)
	f.expect(t, "DELETE", "/api/v1/retained?topic="+url.QueryEscape("a/+"), "", http.StatusBadRequest, nil)
	f.expect(t, "GET", "/api/v1/retained", "", http.StatusOK, &all)
	if len(all.Messages) != 1 || all.Messages[0].Topic != "a/bin" {
		t.Errorf("after delete: %+v, want only a/bin", all)
	}
}

func TestAdminAPI_PublishRejects(t *testing.T) {
	f := startAdminFixture(t, "")
	tests := []struct {
		name   string
		body   string
		status int
	}{
		{"both-payloads", `{"topic": "a", "payload": "x", "payload_base64": "eA=="}`, http.StatusBadRequest},
		{"qos-3", `{"topic": "a", "qos": 3}`, http.StatusBadRequest},
		{"negative-qos", `{"topic": "a", "qos": -1}`, http.StatusBadRequest},
		{"wildcard-topic", `{"topic": "a/+"}`, http.StatusBadRequest},
		{"empty-topic", `{"payload": "x"}`, http.StatusBadRequest},
		{"unknown-field", `{"topic": "a", "colour": "red"}`, http.StatusBadRequest},
		{"bad-base64", `{"topic": "a", "payload_base64": "%%%"}`, http.StatusBadRequest},
		{"empty-body", ``, http.StatusBadRequest},
		{"trailing-data", `{"topic": "a"} {}`, http.StatusBadRequest},
		{"too-large", `{"topic": "a", "payload": "` + strings.Repeat("x", maxPublishBody) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.expect(t, "POST", "/api/v1/publish", tt.body, tt.status, nil)
		})
	}
}

func TestAdminAPI_GroupsAndRoles(t *testing.T) {
	f := startAdminFixture(t, "")

	var role roleJSON
	f.expect(t, "PUT", "/api/v1/roles/device", `{"rules": [
		{"action": "publish", "permission": "allow", "topic": "devices/%c/#"},
		{"action": "all", "permission": "deny", "topic": "#"}]}`, http.StatusOK, &role)
	if role.Name != "device" || len(role.Rules) != 2 || role.Rules[0].Topic != "devices/%c/#" || role.Rules[1].Permission != "deny" {
		t.Errorf("saved role: %+v", role)
	}
	f.expect(t, "GET", "/api/v1/roles/device", "", http.StatusOK, &role)
	if len(role.Rules) != 2 || role.Rules[0].Action != "publish" {
		t.Errorf("stored role: %+v", role)
	}
	f.expect(t, "PUT", "/api/v1/roles/bad", `{"rules": [{"action": "read", "permission": "allow", "topic": "#"}]}`, http.StatusBadRequest, nil)
	f.expect(t, "PUT", "/api/v1/roles/bad", `{"rules": [{"action": "publish", "permission": "maybe", "topic": "#"}]}`, http.StatusBadRequest, nil)
	f.expect(t, "PUT", "/api/v1/roles/bad", `{"name": "other", "rules": []}`, http.StatusBadRequest, nil)
	f.expect(t, "GET", "/api/v1/roles/bad", "", http.StatusNotFound, nil)

	var group groupJSON
	f.expect(t, "PUT", "/api/v1/groups/fleet", `{"roles": ["device", "not-yet"]}`, http.StatusOK, &group)
	if group.Name != "fleet" || len(group.Roles) != 2 {
		t.Errorf("saved group: %+v", group)
	}
	f.expect(t, "PUT", "/api/v1/groups/empty", `{}`, http.StatusOK, &group)
	if group.Roles == nil {
		t.Error("group without roles has roles null, want []")
	}
	f.expect(t, "PUT", "/api/v1/groups/bad", `{"roles": [""]}`, http.StatusBadRequest, nil)

	var groups []groupJSON
	f.expect(t, "GET", "/api/v1/groups", "", http.StatusOK, &groups)
	if len(groups) != 2 || groups[0].Name != "empty" || groups[1].Name != "fleet" {
		t.Errorf("groups: %+v", groups)
	}
	var roles []roleJSON
	f.expect(t, "GET", "/api/v1/roles", "", http.StatusOK, &roles)
	if len(roles) != 1 || roles[0].Name != "device" {
		t.Errorf("roles: %+v", roles)
	}

	f.expect(t, "DELETE", "/api/v1/groups/fleet", "", http.StatusNoContent, nil)
	f.expect(t, "DELETE", "/api/v1/groups/fleet", "", http.StatusNotFound, nil)
	f.expect(t, "GET", "/api/v1/groups/fleet", "", http.StatusNotFound, nil)
	f.expect(t, "DELETE", "/api/v1/roles/device", "", http.StatusNoContent, nil)
	f.expect(t, "DELETE", "/api/v1/roles/device", "", http.StatusNotFound, nil)
}

// putTestUser stores a user with a cheap password hash, so the test does not
// spend seconds in argon2id.
func putTestUser(t *testing.T, f *adminFixture, name, password string, groups ...string) {
	t.Helper()
	u := auth.User{Name: name, Groups: groups}
	if err := u.SetPassword([]byte(password), cheapParams(), auth.DefaultScramIterations); err != nil {
		t.Fatal(err)
	}
	if _, err := f.node.AuthStore().PutUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
}

func TestAdminAPI_AuthzCheck(t *testing.T) {
	f := startAdminFixture(t, "")
	f.expect(t, "PUT", "/api/v1/roles/device", `{"rules": [
		{"action": "publish", "permission": "allow", "topic": "devices/%c/state", "retain": true},
		{"action": "publish", "permission": "allow", "topic": "devices/%c/#", "max_qos": 1, "retain": false},
		{"action": "subscribe", "permission": "allow", "topic": "devices/%c/#", "max_qos": 1},
		{"action": "subscribe", "permission": "allow", "topic": "public/#"}]}`, http.StatusOK, nil)
	f.expect(t, "PUT", "/api/v1/groups/fleet", `{"roles": ["device"]}`, http.StatusOK, nil)
	putTestUser(t, f, "dev-1", "pw", "fleet")
	putTestUser(t, f, "loner", "pw")

	tests := []struct {
		name    string
		body    string
		allowed bool
	}{
		{"own-topic", `{"username": "dev-1", "client_id": "dev-1", "action": "publish", "topic": "devices/dev-1/temp"}`, true},
		{"other-client-topic", `{"username": "dev-1", "client_id": "dev-1", "action": "publish", "topic": "devices/dev-2/temp"}`, false},
		{"subscribe-own", `{"username": "dev-1", "client_id": "dev-1", "action": "subscribe", "topic": "devices/dev-1/+"}`, true},
		{"subscribe-wide", `{"username": "dev-1", "client_id": "dev-1", "action": "subscribe", "topic": "devices/+/temp"}`, false},
		{"subscribe-only-rule", `{"username": "dev-1", "client_id": "dev-1", "action": "publish", "topic": "public/news"}`, false},
		{"user-without-group", `{"username": "loner", "client_id": "dev-1", "action": "publish", "topic": "devices/dev-1/temp"}`, false},
		{"anonymous", `{"client_id": "dev-1", "action": "publish", "topic": "devices/dev-1/temp"}`, false},
		{"qos-within-limit", `{"username": "dev-1", "client_id": "dev-1", "action": "publish", "topic": "devices/dev-1/temp", "qos": 1}`, true},
		{"qos-above-limit", `{"username": "dev-1", "client_id": "dev-1", "action": "publish", "topic": "devices/dev-1/temp", "qos": 2}`, false},
		{"retained-not-allowed", `{"username": "dev-1", "client_id": "dev-1", "action": "publish", "topic": "devices/dev-1/temp", "retain": true}`, false},
		{"retained-allowed", `{"username": "dev-1", "client_id": "dev-1", "action": "publish", "topic": "devices/dev-1/state", "retain": true}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp authzResponse
			f.expect(t, "POST", "/api/v1/authz/check", tt.body, http.StatusOK, &resp)
			if resp.Allowed != tt.allowed {
				t.Errorf("allowed = %v, want %v", resp.Allowed, tt.allowed)
			}
		})
	}

	f.expect(t, "POST", "/api/v1/authz/check", `{"username": "nobody", "action": "publish", "topic": "a"}`, http.StatusNotFound, nil)
	f.expect(t, "POST", "/api/v1/authz/check", `{"username": "dev-1", "action": "publish", "topic": "a", "qos": 3}`, http.StatusBadRequest, nil)
	f.expect(t, "POST", "/api/v1/authz/check", `{"username": "dev-1", "action": "subscribe", "topic": "a", "retain": true}`, http.StatusBadRequest, nil)
	f.expect(t, "POST", "/api/v1/authz/check", `{"username": "dev-1", "action": "read", "topic": "a"}`, http.StatusBadRequest, nil)
	f.expect(t, "POST", "/api/v1/authz/check", `{"username": "dev-1", "action": "publish", "topic": "a/#"}`, http.StatusBadRequest, nil)
	f.expect(t, "POST", "/api/v1/authz/check", `{"username": "dev-1", "action": "subscribe", "topic": "a/#/b"}`, http.StatusBadRequest, nil)
	f.expect(t, "POST", "/api/v1/authz/check", `{"user": "dev-1", "action": "publish", "topic": "a"}`, http.StatusBadRequest, nil)
}

func TestAdminAPI_RoleChangeReachesConnectedClient(t *testing.T) {
	f := startAdminFixture(t, "")
	f.expect(t, "PUT", "/api/v1/roles/device", `{"rules": [{"action": "all", "permission": "allow", "topic": "devices/%c/#"}]}`, http.StatusOK, nil)
	f.expect(t, "PUT", "/api/v1/groups/fleet", `{"roles": ["device"]}`, http.StatusOK, nil)
	putTestUser(t, f, "dev-1", "secret", "fleet")
	c := connectClient(t, f, "dev-1", "dev-1", "secret", true)

	if got := subscribe(t, c, "devices/dev-1/a", 1, nil); got != 1 {
		t.Fatalf("subscribe under the allow rule: granted 0x%02x, want QoS 1", got)
	}
	f.expect(t, "PUT", "/api/v1/roles/device", `{"rules": [{"action": "all", "permission": "deny", "topic": "devices/%c/#"}]}`, http.StatusOK, nil)
	if got := subscribe(t, c, "devices/dev-1/b", 1, nil); got != 0x80 {
		t.Errorf("subscribe after the role turned to deny: granted 0x%02x, want 0x80 (failure)", got)
	}
	f.expect(t, "DELETE", "/api/v1/groups/fleet", "", http.StatusNoContent, nil)
	if got := subscribe(t, c, "devices/dev-1/c", 1, nil); got != 0x80 {
		t.Errorf("subscribe after the group was deleted: granted 0x%02x, want 0x80 (failure)", got)
	}
}

func TestAdminAPI_TokenRequired(t *testing.T) {
	f := startAdminFixture(t, testAdminToken)
	paths := []struct{ method, path, body string }{
		{"GET", "/api/v1/status", ""},
		{"GET", "/api/v1/clients", ""},
		{"GET", "/api/v1/retained", ""},
		{"POST", "/api/v1/publish", `{"topic": "a", "payload": "x"}`},
		{"PUT", "/api/v1/roles/r", `{"rules": []}`},
		{"POST", "/api/v1/authz/check", `{"action": "publish", "topic": "a"}`},
		{"GET", "/api/v1/users", ""},
	}
	for _, p := range paths {
		t.Run(p.method+p.path, func(t *testing.T) {
			for _, token := range []string{"", "wrong-token-wrong-token"} {
				if status, body := f.request(t, p.method, p.path, p.body, token); status != http.StatusUnauthorized {
					t.Errorf("token %q: status %d (%s), want 401", token, status, body)
				}
			}
			if status, body := f.request(t, p.method, p.path, p.body, testAdminToken); status >= 300 {
				t.Errorf("right token: status %d (%s)", status, body)
			}
		})
	}
	if _, err := f.node.AuthStore().Role(context.Background(), "r"); err != nil {
		t.Errorf("role saved with the right token is missing: %v", err)
	}

	if status, _ := f.request(t, "PUT", "/api/v1/roles/sneaky", `{"rules": []}`, ""); status != http.StatusUnauthorized {
		t.Fatalf("PUT without token: status %d, want 401", status)
	}
	if _, err := f.node.AuthStore().Role(context.Background(), "sneaky"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("role from a request without token: lookup error %v, want not found", err)
	}
}

func TestAdminAPI_HealthEndpointsNeedNoToken(t *testing.T) {
	f := startAdminFixture(t, testAdminToken)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if status, body := f.request(t, "GET", path, "", ""); status != http.StatusOK {
			t.Errorf("GET %s: status %d (%s), want 200", path, status, body)
		}
	}
}
