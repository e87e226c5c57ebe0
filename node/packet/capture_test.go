package packet

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// capture is one packet from an annotated hex file in testdata.
type capture struct {
	name    string
	version byte // passed to Read: 0 for CONNECT
	file    string
	line    int
	data    []byte
}

// loadCaptures parses every testdata/*.hex file. See the top of v31.hex for
// the format.
func loadCaptures(t testing.TB) []capture {
	t.Helper()
	files, err := filepath.Glob("testdata/*.hex")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.hex files")
	}

	var all []capture
	for _, file := range files {
		all = append(all, parseCaptures(t, file)...)
	}
	return all
}

func parseCaptures(t testing.TB, file string) []capture {
	t.Helper()
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	var caps []capture
	for i, line := range strings.Split(string(text), "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}

		if rest, ok := strings.CutPrefix(line, "=="); ok {
			name, ver, ok := strings.Cut(strings.TrimSpace(rest), " @")
			v, err := strconv.ParseUint(ver, 10, 8)
			if !ok || err != nil {
				t.Fatalf("%s:%d: capture header %q, expected \"== NAME @VERSION\"", file, i+1, line)
			}
			caps = append(caps, capture{name: name, version: byte(v), file: file, line: i + 1})
			continue
		}

		if len(caps) == 0 {
			t.Fatalf("%s:%d: bytes before the first capture header", file, i+1)
		}
		b, err := hex.DecodeString(strings.ReplaceAll(line, " ", ""))
		if err != nil {
			t.Fatalf("%s:%d: %v", file, i+1, err)
		}
		c := &caps[len(caps)-1]
		c.data = append(c.data, b...)
	}
	return caps
}

// readAll decodes b with Read and fails unless it holds exactly one packet.
func readAll(t testing.TB, b []byte, version byte) (Packet, error) {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(b))
	p, err := Read(r, version, 0)
	if err == nil && r.Buffered() != 0 {
		t.Fatalf("Read left %d bytes unread", r.Buffered())
	}
	return p, err
}

// encodeVersion returns the version to encode a decoded packet in: its own
// protocol level for CONNECT, else the version it was read with.
func encodeVersion(p Packet, readVersion byte) byte {
	if c, ok := p.(*Connect); ok {
		return c.ProtocolVersion
	}
	return readVersion
}
