// Package breakers holds tests that try to break a real starling process:
// protocol abuse, crashes, security and operations. Each finding has its own
// file. A test that fails because of a known broker bug calls knownBug, which
// skips it unless BREAKERS_STRICT=1, so `make test` stays green while the bug
// is open and the test passes by itself once the bug is fixed.
//
// Environment:
//
//	STARLING_BIN      use this broker binary instead of building ./cmd/starling
//	BREAKERS_STRICT=1 make known bugs fail instead of skip
package breakers

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	starlingBin string
	buildErr    error
)

func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "starling-breakers-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "breakers: create temp dir: %v\n", err)
		os.Exit(1)
	}
	starlingBin, buildErr = findOrBuildStarling(tmp)
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// knownBug fails the test when BREAKERS_STRICT=1 and skips it otherwise.
func knownBug(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("BREAKERS_STRICT") == "1" {
		t.Fatalf("known bug: %s", msg)
	}
	t.Skip("NOTE: known bug: " + msg)
}

func findOrBuildStarling(dir string) (string, error) {
	if bin := os.Getenv("STARLING_BIN"); bin != "" {
		return bin, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate harness_test.go to find the module root")
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	bin := filepath.Join(dir, "starling")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/starling")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/starling failed: %w\n%s", err, out)
	}
	return bin, nil
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// broker is one starling process that a test started.
type broker struct {
	t       *testing.T
	addr    string // MQTT listener, host:port
	http    string // --http address, host:port
	dataDir string
	args    []string // extra serve arguments
	// fileListeners omits --listen so that the listeners of the --config
	// file apply; the file must then contain a listener on addr.
	fileListeners bool
	cmd           *exec.Cmd
	log           *lockedBuffer
	done          chan struct{}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startBroker starts starling with a fresh data directory, a tcp listener and
// the HTTP endpoints, plus extra serve arguments, and waits until it accepts
// a CONNECT.
func startBroker(t *testing.T, extra ...string) *broker {
	t.Helper()
	b := newBroker(t, extra...)
	b.start()
	return b
}

// newBroker prepares a broker like startBroker but does not start it, so
// that a test can edit its data directory first.
func newBroker(t *testing.T, extra ...string) *broker {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	b := &broker{
		t:       t,
		addr:    freeAddr(t),
		http:    freeAddr(t),
		dataDir: t.TempDir(),
		args:    extra,
	}
	t.Cleanup(b.kill)
	return b
}

// addUser runs `starling user add` against the data directory of the stopped
// broker, with the password on standard input.
func (b *broker) addUser(name, password string, flags ...string) {
	b.t.Helper()
	args := append([]string{"user", "add", name, "--password-stdin", "--data-dir", b.dataDir}, flags...)
	cmd := exec.Command(starlingBin, args...)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.t.Fatalf("starling user add %s: %v\n%s", name, err, out)
	}
}

func (b *broker) start() {
	t := b.t
	t.Helper()
	args := []string{"serve", "--data-dir", b.dataDir, "--http", b.http}
	if !b.fileListeners {
		args = append(args, "--listen", "tcp://"+b.addr)
	}
	args = append(args, b.args...)
	b.cmd = exec.Command(starlingBin, args...)
	b.log = &lockedBuffer{}
	b.cmd.Stdout = b.log
	b.cmd.Stderr = b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start starling: %v", err)
	}
	b.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		close(done)
	}(b.cmd, b.done)

	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-b.done:
			t.Fatalf("starling exited during start:\n%s", b.log.String())
		default:
		}
		// "starling started" comes after every listener is bound, so a
		// test may use its second listener at once.
		c, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err == nil {
			c.Close()
			if strings.Contains(b.log.String(), "starling started") {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("starling did not listen on %s within 20s:\n%s", b.addr, b.log.String())
}

// kill sends SIGKILL and waits for the process to exit.
func (b *broker) kill() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	select {
	case <-b.done:
		return
	default:
	}
	b.cmd.Process.Kill()
	<-b.done
}

// stop sends sig and waits up to timeout for the process to exit.
func (b *broker) stop(sig syscall.Signal, timeout time.Duration) error {
	b.cmd.Process.Signal(sig)
	select {
	case <-b.done:
		return nil
	case <-time.After(timeout):
		b.kill()
		return fmt.Errorf("starling did not exit within %v of %v", timeout, sig)
	}
}

func (b *broker) restart() {
	b.kill()
	b.start()
}

func (b *broker) pid() int { return b.cmd.Process.Pid }

// rssKB returns VmRSS of the broker in kB.
func (b *broker) rssKB() int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.pid()))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%d", &kb)
			return kb
		}
	}
	return -1
}

func (b *broker) httpGet(path string) (int, string, error) {
	resp, err := http.Get("http://" + b.http + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// runStarling runs the starling binary with args and returns its combined output.
func runStarling(args ...string) ([]byte, error) {
	if buildErr != nil {
		return nil, buildErr
	}
	return exec.Command(starlingBin, args...).CombinedOutput()
}

// writeFile writes content to name inside dir and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ---- raw MQTT client ----

const (
	typeConnect    = 1
	typeConnack    = 2
	typePublish    = 3
	typePuback     = 4
	typePubrec     = 5
	typePubrel     = 6
	typePubcomp    = 7
	typeSubscribe  = 8
	typeSuback     = 9
	typeDisconnect = 14
	typeAuth       = 15
)

type packet struct {
	typ   byte
	flags byte
	body  []byte
}

func (p packet) String() string {
	return fmt.Sprintf("type=%d flags=%#x body=%x", p.typ, p.flags, p.body)
}

type rawConn struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, Conn: c, r: newReader(c)}
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func (c *rawConn) send(b []byte) {
	c.t.Helper()
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next packet or an error (io.EOF, timeout) within d.
func (c *rawConn) read(d time.Duration) (packet, error) {
	c.SetReadDeadline(time.Now().Add(d))
	h, err := c.r.ReadByte()
	if err != nil {
		return packet{}, err
	}
	n, mult := 0, 1
	for i := 0; i < 4; i++ {
		b, err := c.r.ReadByte()
		if err != nil {
			return packet{}, err
		}
		n += int(b&127) * mult
		mult *= 128
		if b&128 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return packet{}, err
	}
	return packet{typ: h >> 4, flags: h & 15, body: body}, nil
}

// expect reads the next packet and fails unless it has type typ.
func (c *rawConn) expect(typ byte, d time.Duration) packet {
	c.t.Helper()
	p, err := c.read(d)
	if err != nil {
		c.t.Fatalf("waiting for packet type %d: %v", typ, err)
	}
	if p.typ != typ {
		c.t.Fatalf("got %v, expected packet type %d", p, typ)
	}
	return p
}

func encLen(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

func str(s string) []byte {
	out := binary.BigEndian.AppendUint16(nil, uint16(len(s)))
	return append(out, s...)
}

func pkt(typ, flags byte, body []byte) []byte {
	out := []byte{typ<<4 | flags}
	out = append(out, encLen(len(body))...)
	return append(out, body...)
}

// connectOpts describes a CONNECT packet.
type connectOpts struct {
	clientID   string
	version    byte // 4 or 5
	clean      bool
	keepalive  uint16
	props      []byte // v5 CONNECT properties, without the length
	user, pass *string
	willTopic  string
	willMsg    string
	willQoS    byte
	willRetain bool
	willProps  []byte
}

func connectPacket(o connectOpts) []byte {
	if o.version == 0 {
		o.version = 5
	}
	var flags byte
	if o.clean {
		flags |= 0x02
	}
	payload := str(o.clientID)
	if o.willTopic != "" {
		flags |= 0x04 | o.willQoS<<3
		if o.willRetain {
			flags |= 0x20
		}
		if o.version == 5 {
			payload = append(payload, encLen(len(o.willProps))...)
			payload = append(payload, o.willProps...)
		}
		payload = append(payload, str(o.willTopic)...)
		payload = append(payload, str(o.willMsg)...)
	}
	if o.user != nil {
		flags |= 0x80
		payload = append(payload, str(*o.user)...)
	}
	if o.pass != nil {
		flags |= 0x40
		payload = append(payload, str(*o.pass)...)
	}
	body := str("MQTT")
	body = append(body, o.version, flags)
	body = binary.BigEndian.AppendUint16(body, o.keepalive)
	if o.version == 5 {
		body = append(body, encLen(len(o.props))...)
		body = append(body, o.props...)
	}
	return pkt(typeConnect, 0, append(body, payload...))
}

func publishPacket(version byte, topic string, payload []byte, qos byte, id uint16, retain bool, props []byte) []byte {
	body := str(topic)
	if qos > 0 {
		body = binary.BigEndian.AppendUint16(body, id)
	}
	if version == 5 {
		body = append(body, encLen(len(props))...)
		body = append(body, props...)
	}
	flags := qos << 1
	if retain {
		flags |= 1
	}
	return pkt(typePublish, flags, append(body, payload...))
}

func subscribePacket(version byte, id uint16, filter string, opts byte) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	if version == 5 {
		body = append(body, 0)
	}
	body = append(body, str(filter)...)
	body = append(body, opts)
	return pkt(typeSubscribe, 2, body)
}

func ackPacket(typ byte, id uint16) []byte {
	flags := byte(0)
	if typ == typePubrel {
		flags = 2
	}
	return pkt(typ, flags, binary.BigEndian.AppendUint16(nil, id))
}

// connect dials addr, sends CONNECT and returns the connection and CONNACK.
func connect(t *testing.T, addr string, o connectOpts) (*rawConn, packet) {
	t.Helper()
	c := dialRaw(t, addr)
	c.send(connectPacket(o))
	p := c.expect(typeConnack, 10*time.Second)
	return c, p
}

// connackCode returns the reason code (v5) or return code (3.1.1) of a CONNACK.
func connackCode(p packet) byte {
	if len(p.body) < 2 {
		return 0xff
	}
	return p.body[1]
}

// publishFields splits a received PUBLISH into topic, packet id and payload.
func publishFields(p packet, version byte) (topic string, id uint16, payload []byte) {
	b := p.body
	n := int(binary.BigEndian.Uint16(b))
	topic = string(b[2 : 2+n])
	b = b[2+n:]
	if (p.flags>>1)&3 > 0 {
		id = binary.BigEndian.Uint16(b)
		b = b[2:]
	}
	if version == 5 {
		plen, used := 0, 0
		mult := 1
		for {
			x := b[used]
			used++
			plen += int(x&127) * mult
			mult *= 128
			if x&128 == 0 {
				break
			}
		}
		b = b[used+plen:]
	}
	return topic, id, b
}

func ptr(s string) *string { return &s }
