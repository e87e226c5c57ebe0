package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/starling-mqtt/starling/node"
	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/storage"
)

const userUsage = `Manage the users of a Starling node.

Usage:
  starling user add NAME [--group G] [--role R] [--import-hash HASH] [--password-stdin]
  starling user passwd NAME [--password-stdin]
  starling user remove NAME
  starling user list [-o json]

Every command talks to a running node through its admin endpoint (--http,
default 127.0.0.1:8080), or, with --data-dir, edits the data directory of a
stopped node. Passwords are read without echo from the terminal, or from
standard input with --password-stdin; they are never printed or logged.
`

// userBackend is the target of user commands: a running node or a data directory.
type userBackend interface {
	list(ctx context.Context) ([]userInfo, error)
	get(ctx context.Context, name string) (userInfo, error)
	put(ctx context.Context, name string, req userRequest) (userInfo, error)
	remove(ctx context.Context, name string) error
	close()
}

func runUser(args []string) int {
	if len(args) < 1 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, userUsage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("user "+cmd, flag.ContinueOnError)
	httpAddr := fs.String("http", envOr("STARLING_HTTP", "127.0.0.1:8080"), "admin endpoint of the running node")
	dataDir := fs.String("data-dir", "", "edit this data directory of a stopped node instead")
	tokenFile := fs.String("token-file", os.Getenv("STARLING_ADMIN_TOKEN_FILE"), "file with the admin bearer token")
	var groups, roles listFlag
	fs.Var(&groups, "group", "group of the user; repeatable")
	fs.Var(&roles, "role", "role of the user; repeatable")
	importHash := fs.String("import-hash", "", "take this password hash from another system (bcrypt, PBKDF2 or argon2id PHC string)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	output := fs.String("o", "table", "list output: table or json")

	// Flags may follow the user name.
	var name string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	if cmd != "list" && name == "" {
		fmt.Fprintf(os.Stderr, "starling user %s: missing user name\n\n%s", cmd, userUsage)
		return 2
	}

	backend, err := openUserBackend(*dataDir, *httpAddr, *tokenFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling user:", err)
		return 1
	}
	defer backend.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	switch cmd {
	case "add":
		if _, gerr := backend.get(ctx, name); gerr == nil {
			err = fmt.Errorf("user %q exists: change its password with `starling user passwd %s`, or remove it first", name, name)
			break
		}
		req := userRequest{Groups: groups, Roles: roles, ImportHash: *importHash}
		if *importHash == "" {
			if req.Password, err = readPassword(*pwStdin, true); err != nil {
				break
			}
		}
		var u userInfo
		if u, err = backend.put(ctx, name, req); err == nil {
			fmt.Printf("user %s saved (hash %s)\n", u.Name, u.Hash)
			if !u.SCRAM && u.Hash != "none" {
				fmt.Printf("note: %s cannot use SCRAM-SHA-256: the node never saw the password of an imported hash; "+
					"set one with `starling user passwd %s` to enable it\n", u.Name, u.Name)
			}
		}
	case "passwd":
		var cur userInfo
		if cur, err = backend.get(ctx, name); err != nil {
			break
		}
		req := userRequest{Groups: cur.Groups, Roles: cur.Roles, Disabled: cur.Disabled}
		if req.Password, err = readPassword(*pwStdin, true); err != nil {
			break
		}
		if _, err = backend.put(ctx, name, req); err == nil {
			fmt.Printf("password of %s changed; cached logins with the old one no longer work\n", name)
		}
	case "remove":
		if err = backend.remove(ctx, name); err == nil {
			fmt.Printf("user %s removed\n", name)
		}
	case "list":
		var users []userInfo
		if users, err = backend.list(ctx); err == nil {
			err = printUsers(os.Stdout, users, *output)
		}
	default:
		fmt.Fprintf(os.Stderr, "starling user: unknown command %q\n\n%s", cmd, userUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling user:", err)
		return 1
	}
	return 0
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func printUsers(w io.Writer, users []userInfo, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(users)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tHASH\tSCRAM\tGROUPS\tROLES\tDISABLED")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%v\n", u.Name, u.Hash, u.SCRAM, strings.Join(u.Groups, ","), strings.Join(u.Roles, ","), u.Disabled)
	}
	return tw.Flush()
}

// readPassword reads a password from the terminal without echo (twice, to
// catch typos) or, with fromStdin, one line of standard input.
func readPassword(fromStdin, confirm bool) (string, error) {
	fd := int(os.Stdin.Fd())
	if fromStdin || !term.IsTerminal(fd) {
		if !fromStdin {
			return "", errors.New("standard input is not a terminal: pass --password-stdin to read the password from it")
		}
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("empty password")
		}
		return pw, nil
	}
	fmt.Fprint(os.Stderr, "Password: ")
	first, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if confirm {
		fmt.Fprint(os.Stderr, "Again: ")
		second, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if !bytes.Equal(first, second) {
			return "", errors.New("the passwords differ")
		}
	}
	if len(first) == 0 {
		return "", errors.New("empty password")
	}
	return string(first), nil
}

func openUserBackend(dataDir, httpAddr, tokenFile string) (userBackend, error) {
	if dataDir != "" {
		st, err := storage.Open(storage.Config{Dir: dataDir, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, fmt.Errorf("open %s (is a node still running on it? then use --http): %w", dataDir, err)
		}
		return &localUsers{st: st, store: node.NewAuthStore(st)}, nil
	}
	token := ""
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return &remoteUsers{base: "http://" + httpAddr + "/api/v1/users", token: token, client: &http.Client{Timeout: time.Minute}}, nil
}

// localUsers edits the data directory of a stopped node.
type localUsers struct {
	st    *storage.Store
	store *node.AuthStore
}

func (l *localUsers) list(ctx context.Context) ([]userInfo, error) {
	users, err := l.store.Users(ctx)
	out := make([]userInfo, 0, len(users))
	for _, u := range users {
		out = append(out, infoOf(u))
	}
	return out, err
}

func (l *localUsers) get(ctx context.Context, name string) (userInfo, error) {
	u, err := l.store.User(ctx, name)
	return infoOf(u), err
}

func (l *localUsers) put(ctx context.Context, name string, req userRequest) (userInfo, error) {
	u, err := applyUserRequest(ctx, l.store, name, req, auth.DefaultParams())
	return infoOf(u), err
}

func (l *localUsers) remove(ctx context.Context, name string) error {
	if _, err := l.store.User(ctx, name); err != nil {
		return err
	}
	return l.store.DeleteUser(ctx, name)
}

func (l *localUsers) close() { l.st.Close() }

// remoteUsers calls the admin endpoint of a running node.
type remoteUsers struct {
	base   string
	token  string
	client *http.Client
}

func (r *remoteUsers) do(ctx context.Context, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("reach the node's admin endpoint (is it running with --http?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, e.Error)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func (r *remoteUsers) list(ctx context.Context) ([]userInfo, error) {
	var out []userInfo
	err := r.do(ctx, http.MethodGet, r.base, nil, &out)
	return out, err
}

func (r *remoteUsers) get(ctx context.Context, name string) (userInfo, error) {
	users, err := r.list(ctx)
	if err != nil {
		return userInfo{}, err
	}
	for _, u := range users {
		if u.Name == name {
			return u, nil
		}
	}
	return userInfo{}, fmt.Errorf("user %q: %w", name, auth.ErrNotFound)
}

func (r *remoteUsers) put(ctx context.Context, name string, req userRequest) (userInfo, error) {
	var out userInfo
	err := r.do(ctx, http.MethodPut, r.base+"/"+url.PathEscape(name), req, &out)
	return out, err
}

func (r *remoteUsers) remove(ctx context.Context, name string) error {
	return r.do(ctx, http.MethodDelete, r.base+"/"+url.PathEscape(name), nil, nil)
}

func (r *remoteUsers) close() {}
