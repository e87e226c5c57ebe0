package breakers

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestDocs_StaleNotWiredNotes starts `starling serve` with a tls listener,
// listener options and auth.jwt from the configuration file, which all work,
// while docs/listeners.md and docs/jwt.md still open with a NOTE that serve
// does not pass these options yet (docs/tls.md had the same NOTE and is
// checked too). A reader of the NOTE concludes that the binary cannot use
// listener options or JWT.
func TestDocs_StaleNotWiredNotes(t *testing.T) {
	certs := t.TempDir()
	if out, err := runStarling("certs", "init", certs); err != nil {
		t.Fatalf("starling certs init: %v\n%s", err, out)
	}
	keyFile := writeFile(t, t.TempDir(), "jwt.key", strings.Repeat("k", 40))
	b := newBroker(t)
	b.fileListeners = true
	cfg := writeFile(t, t.TempDir(), "starling.yaml", `listeners:
  - url: tcp://`+b.addr+`
    max_conn_rate: 500
    deny: [192.0.2.0/24]
  - url: tls://`+freeAddr(t)+`
    tls: {cert_file: `+certs+`/server.pem, key_file: `+certs+`/server-key.pem}
auth:
  jwt:
    key_files: [{path: `+keyFile+`, id: k1, alg: HS256}]
`)
	b.args = []string{"--config", cfg}
	b.start()
	// start returns once the first listener answers; the log lines of the
	// second listener may come a moment later.
	var logText string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		logText = b.log.String()
		if strings.Contains(logText, "transport=tls") && strings.Contains(logText, "loaded JWT keys") {
			break
		}
	}
	if !strings.Contains(logText, "transport=tls") || !strings.Contains(logText, "loaded JWT keys") {
		t.Fatalf("the node did not report a tls listener and JWT keys:\n%s", logText)
	}

	_, file, _, _ := runtime.Caller(0)
	docs := filepath.Join(filepath.Dir(file), "..", "..", "docs")
	stale := map[string]string{
		"listeners.md": "does not pass these options to the listeners yet",
		"tls.md":       "are not wired into `starling serve` yet",
		"jwt.md":       "no `starling serve` setting turns JWT authentication on",
	}
	var found []string
	for name, phrase := range stale {
		data, err := os.ReadFile(filepath.Join(docs, name))
		if err != nil {
			t.Fatalf("read docs/%s: %v", name, err)
		}
		if strings.Contains(strings.Join(strings.Fields(string(data)), " "), phrase) {
			found = append(found, "docs/"+name+": "+phrase)
		}
	}
	if len(found) > 0 {
		knownBug(t, "the options work from the configuration file but the docs say they are not wired: %v", found)
	}
}
