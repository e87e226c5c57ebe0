package membership

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SiteIDFile is the name of the file in the data directory that keeps the
// node's site id.
const SiteIDFile = "site-id"

// maxSiteIDLen bounds a site id, which also serves as the Raft server id.
const maxSiteIDLen = 64

// LoadOrCreateSiteID returns the site id kept in dataDir/site-id, and creates
// the directory and the file with a new random id when the file does not
// exist.
//
// The id identifies the data directory rather than the node name, so a node
// that comes back with an empty disk gets a new id and is treated as a new
// member. Creation is atomic: the id is written and synced to a temporary
// file that is then hard-linked to its final name, which fails if another
// process created the file first. In that case the other process's id is
// returned, so two processes never end up with different ids for one
// directory. A file that exists but does not hold a valid id is an error
// wrapping ErrInvalidSiteID, not a reason to make a new id: a new id would
// silently turn the node into a new member.
func LoadOrCreateSiteID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, SiteIDFile)
	id, err := readSiteID(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data directory %s: %w", dataDir, err)
	}
	id, err = newSiteID()
	if err != nil {
		return "", err
	}
	if err := writeSiteIDOnce(path, id); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readSiteID(path)
		}
		return "", err
	}
	return id, nil
}

// newSiteID returns 16 random bytes in hex: 128 bits make a collision
// between two data directories negligible.
func newSiteID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate site id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func readSiteID(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read site id: %w", err)
	}
	id := strings.TrimSpace(string(data))
	if err := validateSiteID(id); err != nil {
		return "", fmt.Errorf("%w in %s: %v; restore the file from a backup, or remove it to make this node a new member", ErrInvalidSiteID, path, err)
	}
	return id, nil
}

// writeSiteIDOnce writes id to path unless path exists, in which case the
// error wraps fs.ErrExist. The file and its directory are synced before
// it returns, so the id survives a crash once it has been returned.
func writeSiteIDOnce(path, id string) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, SiteIDFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("create site id: %w", err)
	}
	defer func() {
		// The link, not the temporary name, is the result; remove it on
		// every path.
		if rmErr := os.Remove(tmp.Name()); rmErr != nil && err == nil {
			err = fmt.Errorf("remove temporary site id file: %w", rmErr)
		}
	}()

	if _, err := tmp.WriteString(id + "\n"); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write site id: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("sync site id: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close site id: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("publish site id: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open data directory to sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync data directory %s: %w", dir, err)
	}
	return nil
}

// validateSiteID checks the form of a site id: 1 to 64 characters from
// [A-Za-z0-9_-]. Ids made here are 32 lowercase hex digits; the wider set
// leaves room for ids assigned by an operator or a later release.
func validateSiteID(id string) error {
	if id == "" {
		return errors.New("empty")
	}
	if len(id) > maxSiteIDLen {
		return fmt.Errorf("%d bytes, more than %d", len(id), maxSiteIDLen)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
		if !ok {
			return fmt.Errorf("%q contains %q: use only letters, digits, '-' and '_'", id, r)
		}
	}
	return nil
}
