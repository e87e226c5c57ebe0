package membership

import (
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadGossipKey(t *testing.T) {
	key32 := []byte(strings.Repeat("k", 32))
	cases := []struct {
		name    string
		content string
		want    []byte
		wantErr error
	}{
		// The format that `starling certs init` writes: base64 and a newline.
		{"certs-init-format", base64.StdEncoding.EncodeToString(key32) + "\n", key32, nil},
		{"aes-128", base64.StdEncoding.EncodeToString(key32[:16]), key32[:16], nil},
		{"surrounding-space", "  " + base64.StdEncoding.EncodeToString(key32[:24]) + "\r\n", key32[:24], nil},
		{"not-base64", "not base64!", nil, ErrInvalidGossipKey},
		{"wrong-length", base64.StdEncoding.EncodeToString(key32[:20]), nil, ErrInvalidGossipKey},
		{"empty", "", nil, ErrInvalidGossipKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gossip.key")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadGossipKey(path)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("LoadGossipKey = %v, want %v", err, tc.wantErr)
				}
				if tc.content != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.content)) {
					t.Errorf("error %q contains the file content", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadGossipKey: %v", err)
			}
			if string(got) != string(tc.want) {
				t.Errorf("key = %x, want %x", got, tc.want)
			}
		})
	}
}

func TestLoadGossipKey_MissingFile(t *testing.T) {
	_, err := LoadGossipKey(filepath.Join(t.TempDir(), "absent.key"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadGossipKey = %v, want fs.ErrNotExist", err)
	}
}
