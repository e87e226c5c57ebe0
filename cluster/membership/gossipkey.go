package membership

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
)

// LoadGossipKey reads a gossip key file: the key in standard base64, with
// surrounding whitespace allowed, as `starling certs init` writes gossip.key.
// The decoded key must be 16, 24 or 32 bytes. Errors name the file but never
// include its content.
//
// NOTE: the file mode is not checked, because Kubernetes mounts secrets
// world-readable unless the pod sets defaultMode.
func LoadGossipKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read gossip key: %w", err)
	}
	text := bytes.TrimSpace(data)
	key := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(key, text)
	if err != nil {
		return nil, fmt.Errorf("%w in %s: not standard base64; create one with `starling certs init`", ErrInvalidGossipKey, path)
	}
	key = key[:n]
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	default:
		return nil, fmt.Errorf("%w in %s: %d bytes after base64 decoding, want 16, 24 or 32", ErrInvalidGossipKey, path, len(key))
	}
}
