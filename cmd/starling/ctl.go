package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/starling-mqtt/starling/node"
	"github.com/starling-mqtt/starling/node/auth"
)

const ctlUsage = `Inspect and operate a running Starling node through its admin API.

Usage:
  starling ctl status
  starling ctl clients [--match TEXT] [--limit N]
  starling ctl client ID
  starling ctl kick ID
  starling ctl session delete ID
  starling ctl subscriptions ID
  starling ctl retained [--filter FILTER] [--limit N]
  starling ctl retained delete TOPIC
  starling ctl publish TOPIC PAYLOAD [--qos N] [--retain] [--base64]
  starling ctl group list | get NAME | put NAME [--role ROLE]... | delete NAME
  starling ctl role list | get NAME | put NAME [--rule RULE]... | delete NAME
  starling ctl authz check [--user NAME] [--client ID] [--qos N] [--retain] --publish TOPIC | --subscribe FILTER
      (exit status 0 allowed, 3 denied, 1 the check failed)
  starling ctl ban list | add KIND VALUE [--for DURATION] [--reason TEXT] | remove KIND VALUE
      (KIND is client_id, username or address; an address may be a CIDR range)
  starling ctl cluster status
  starling ctl cluster remove NODE [--force]
  starling ctl cluster recover --data-dir DIR --peers NAME=SITEID@HOST:PORT,... [--yes]
      (offline, on a stopped node: rebuilds the Raft configuration after a
      lost quorum; see docs/cluster.md before running it)

Flags of every command:
  --http ADDR        admin endpoint of the node (env STARLING_HTTP; default 127.0.0.1:8080)
  --token-file FILE  file with the admin bearer token (env STARLING_ADMIN_TOKEN_FILE)
  -o FORMAT          output format: table (default) or json

A RULE is PERMISSION:ACTION:TOPIC, checked in the order given: allow or deny,
publish, subscribe or all, and a topic pattern where %c is the client id and
%u the user name, e.g. --rule allow:publish:devices/%c/#.

Flags may come before or after the arguments. Put -- before arguments that
start with '-', such as a negative number as PAYLOAD.
`

// ctlHint follows a usage error, which would be lost above the full usage.
const ctlHint = "Run `starling ctl -h` to list the commands and flags.\n"

// ctlGlobalFlags are the flags every ctl command accepts.
var ctlGlobalFlags = []string{"http", "token-file", "o"}

// ctlOptions are the parsed flags of one ctl invocation.
type ctlOptions struct {
	httpAddr  string
	tokenFile string
	output    string

	match, filter string
	limit         int
	qos           int
	retain        bool
	base64        bool
	roles, rules  listFlag

	user, client       string
	publish, subscribe string

	banFor, banReason string

	cluster clusterCtlOptions
}

// ctlCommand is one ctl command: the words that name it, how many arguments
// follow them, and which command flags it accepts besides ctlGlobalFlags.
type ctlCommand struct {
	words []string
	args  int
	flags []string
	run   func(c *ctlRun, ctx context.Context, args []string) error // a method expression of ctlRun
}

// ctlCommands lists every command. A longer name wins over a shorter one that
// is its prefix, so "retained delete T" is not "retained" with an argument.
var ctlCommands = []ctlCommand{
	{words: []string{"status"}, run: (*ctlRun).status},
	{words: []string{"clients"}, flags: []string{"match", "limit"}, run: (*ctlRun).clients},
	{words: []string{"client"}, args: 1, run: (*ctlRun).client},
	{words: []string{"kick"}, args: 1, run: (*ctlRun).kick},
	{words: []string{"session", "delete"}, args: 1, run: (*ctlRun).deleteSession},
	{words: []string{"subscriptions"}, args: 1, run: (*ctlRun).subscriptions},
	{words: []string{"retained"}, flags: []string{"filter", "limit"}, run: (*ctlRun).retained},
	{words: []string{"retained", "delete"}, args: 1, run: (*ctlRun).deleteRetained},
	{words: []string{"publish"}, args: 2, flags: []string{"qos", "retain", "base64"}, run: (*ctlRun).publishMessage},
	{words: []string{"group", "list"}, run: (*ctlRun).listGroups},
	{words: []string{"group", "get"}, args: 1, run: (*ctlRun).getGroup},
	{words: []string{"group", "put"}, args: 1, flags: []string{"role"}, run: (*ctlRun).putGroup},
	{words: []string{"group", "delete"}, args: 1, run: (*ctlRun).deleteGroup},
	{words: []string{"role", "list"}, run: (*ctlRun).listRoles},
	{words: []string{"role", "get"}, args: 1, run: (*ctlRun).getRole},
	{words: []string{"role", "put"}, args: 1, flags: []string{"rule"}, run: (*ctlRun).putRole},
	{words: []string{"role", "delete"}, args: 1, run: (*ctlRun).deleteRole},
	{words: []string{"authz", "check"}, flags: []string{"user", "client", "publish", "subscribe", "qos", "retain"}, run: (*ctlRun).authzCheck},
	{words: []string{"ban", "list"}, run: (*ctlRun).listBans},
	{words: []string{"ban", "add"}, args: 2, flags: []string{"for", "reason"}, run: (*ctlRun).addBan},
	{words: []string{"ban", "remove"}, args: 2, run: (*ctlRun).removeBan},
	{words: []string{"cluster", "status"}, run: (*ctlRun).clusterStatus},
	{words: []string{"cluster", "remove"}, args: 1, flags: []string{"force"}, run: (*ctlRun).removeClusterNode},
	{words: []string{"cluster", "recover"}, flags: []string{"data-dir", "peers", "yes"}, run: (*ctlRun).recoverCluster},
}

// ctlRun is the state of one ctl invocation.
type ctlRun struct {
	api  *adminClient
	opts *ctlOptions
	out  io.Writer
}

// runCtl runs `starling ctl` and returns the exit code: 0 on success, 1 when
// the request failed, 2 for a usage error.
func runCtl(args []string) int {
	return runCtlIO(args, os.Stdout, os.Stderr)
}

// runCtlIO is runCtl writing to stdout and stderr, so tests can read both.
func runCtlIO(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		io.WriteString(stderr, ctlUsage)
		return 2
	}
	opts, fs := newCtlFlags()
	words, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		io.WriteString(stderr, ctlUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "starling ctl: %v\n%s", err, ctlHint)
		return 2
	}
	cmd, rest, err := findCtlCommand(words)
	if err == nil {
		err = checkCtlFlags(fs, cmd)
	}
	if err == nil && opts.output != "table" && opts.output != "json" {
		err = fmt.Errorf("output format %q is invalid: use -o table or -o json", opts.output)
	}
	if err != nil {
		fmt.Fprintf(stderr, "starling ctl: %v\n%s", err, ctlHint)
		return 2
	}

	api, err := newAdminClient(opts.httpAddr, opts.tokenFile)
	if err != nil {
		fmt.Fprintln(stderr, "starling ctl:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := &ctlRun{api: api, opts: opts, out: stdout}
	if err := cmd.run(run, ctx, rest); err != nil {
		if errors.Is(err, errDenied) {
			return 3
		}
		fmt.Fprintf(stderr, "starling ctl %s: %v\n", strings.Join(cmd.words, " "), err)
		return 1
	}
	return 0
}

// newCtlFlags defines every ctl flag on one flag set. Which of them a command
// accepts is checked after parsing, by checkCtlFlags.
func newCtlFlags() (*ctlOptions, *flag.FlagSet) {
	o := &ctlOptions{}
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	// runCtlIO prints parse errors itself, once, with a hint.
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.httpAddr, "http", envOr("STARLING_HTTP", "127.0.0.1:8080"), "admin endpoint of the running node, HOST:PORT")
	fs.StringVar(&o.tokenFile, "token-file", os.Getenv("STARLING_ADMIN_TOKEN_FILE"), "file with the admin bearer token")
	fs.StringVar(&o.output, "o", "table", "output format: table or json")
	fs.StringVar(&o.match, "match", "", "list only clients whose id contains this text")
	fs.StringVar(&o.filter, "filter", "", "list only retained messages matching this topic filter (default #)")
	fs.IntVar(&o.limit, "limit", 0, "maximum number of entries to list (default: the node's, 1000)")
	fs.IntVar(&o.qos, "qos", 0, "QoS of the published message: 0, 1 or 2")
	fs.BoolVar(&o.retain, "retain", false, "publish a retained message")
	fs.BoolVar(&o.base64, "base64", false, "PAYLOAD is base64 and the message gets the decoded bytes")
	fs.Var(&o.roles, "role", "role of the group; repeatable")
	fs.Var(&o.rules, "rule", "ACL rule PERMISSION:ACTION:TOPIC of the role; repeatable, checked in order")
	fs.StringVar(&o.user, "user", "", "user name to check; empty checks an anonymous client")
	fs.StringVar(&o.client, "client", "", "client id to check, the value of %c in rules")
	fs.StringVar(&o.publish, "publish", "", "check a publish to this topic")
	fs.StringVar(&o.subscribe, "subscribe", "", "check a subscription to this topic filter")
	fs.StringVar(&o.banFor, "for", "", "how long the ban lasts, e.g. 30m or 24h (default: until removed)")
	fs.StringVar(&o.banReason, "reason", "", "why the ban was added, kept with it")
	o.cluster.register(fs)
	return o, fs
}

// parseInterleaved parses flags that may stand before, between or after the
// positional arguments, which the flag package alone stops at. Everything
// after a "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, tail = args[:i], args[i+1:]
	}
	var words []string

	// Each round consumes at least one argument, so the loop ends.
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) > 0 {
			words = append(words, args[0])
			args = args[1:]
		}
	}
	return append(words, tail...), nil
}

// findCtlCommand returns the command that words name, with the longest match
// winning, and its arguments.
func findCtlCommand(words []string) (ctlCommand, []string, error) {
	best := -1
	for i, c := range ctlCommands {
		if len(words) >= len(c.words) && slices.Equal(words[:len(c.words)], c.words) {
			if best < 0 || len(c.words) > len(ctlCommands[best].words) {
				best = i
			}
		}
	}
	if best < 0 {
		var near []string
		for _, c := range ctlCommands {
			if len(words) > 0 && c.words[0] == words[0] {
				near = append(near, strings.Join(c.words, " "))
			}
		}
		if len(near) > 0 {
			return ctlCommand{}, nil, fmt.Errorf("unknown command %q: use one of %s", strings.Join(words, " "), strings.Join(near, ", "))
		}
		return ctlCommand{}, nil, fmt.Errorf("unknown command %q", strings.Join(words, " "))
	}
	cmd := ctlCommands[best]
	rest := words[len(cmd.words):]
	if len(rest) != cmd.args {
		return ctlCommand{}, nil, fmt.Errorf("%s takes %d argument(s), got %d: %q", strings.Join(cmd.words, " "), cmd.args, len(rest), rest)
	}
	return cmd, rest, nil
}

// checkCtlFlags rejects flags that the command does not use, so that a
// misplaced --retain or --match fails instead of being ignored.
func checkCtlFlags(fs *flag.FlagSet, cmd ctlCommand) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err == nil && !slices.Contains(ctlGlobalFlags, f.Name) && !slices.Contains(cmd.flags, f.Name) {
			err = fmt.Errorf("flag --%s does not apply to %q", f.Name, strings.Join(cmd.words, " "))
		}
	})
	return err
}

// adminClient calls the admin API of a running node.
type adminClient struct {
	base string // scheme and host, e.g. http://127.0.0.1:8080
	http *remoteUsers
}

// newAdminClient returns a client of the node at addr (HOST:PORT, or a URL
// with a scheme), sending the token read from tokenFile when it is set.
func newAdminClient(addr, tokenFile string) (*adminClient, error) {
	base := strings.TrimRight(addr, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	token := ""
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read token file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("token file %s is empty: write the node's admin token to it", tokenFile)
		}
	}
	client := &http.Client{Timeout: time.Minute}
	if caFile := os.Getenv("STARLING_ADMIN_CA"); caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read STARLING_ADMIN_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("STARLING_ADMIN_CA %s holds no PEM certificate", caFile)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return &adminClient{base: base, http: &remoteUsers{token: token, client: client}}, nil
}

// call sends one request to path (with query, if any) and decodes the JSON
// response into out unless out is nil.
func (c *adminClient) call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return c.http.do(ctx, method, u, body, out)
}

// done reports a change that returned no record: a line of text, or in JSON
// an object with the same message.
func (c *ctlRun) done(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if c.opts.output == "json" {
		return writeJSONTo(c.out, map[string]any{"ok": true, "message": msg})
	}
	_, err := fmt.Fprintln(c.out, msg)
	return err
}

func (c *ctlRun) status(ctx context.Context, _ []string) error {
	var st statusResponse
	if err := c.api.call(ctx, http.MethodGet, "/api/v1/status", nil, nil, &st); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, st)
	}
	return printStatus(c.out, st)
}

func (c *ctlRun) clients(ctx context.Context, _ []string) error {
	q := url.Values{}
	if c.opts.match != "" {
		q.Set("match", c.opts.match)
	}
	if c.opts.limit != 0 {
		q.Set("limit", strconv.Itoa(c.opts.limit))
	}
	var resp clientsResponse
	if err := c.api.call(ctx, http.MethodGet, "/api/v1/clients", q, nil, &resp); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, resp)
	}
	return printClients(c.out, resp)
}

func (c *ctlRun) client(ctx context.Context, args []string) error {
	var info node.ClientInfo
	if err := c.api.call(ctx, http.MethodGet, "/api/v1/clients/"+url.PathEscape(args[0]), nil, nil, &info); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, info)
	}
	return printClient(c.out, info)
}

func (c *ctlRun) kick(ctx context.Context, args []string) error {
	if err := c.api.call(ctx, http.MethodPost, "/api/v1/clients/"+url.PathEscape(args[0])+"/kick", nil, nil, nil); err != nil {
		return err
	}
	return c.done("client %s disconnected; its session stays", args[0])
}

func (c *ctlRun) deleteSession(ctx context.Context, args []string) error {
	if err := c.api.call(ctx, http.MethodDelete, "/api/v1/sessions/"+url.PathEscape(args[0]), nil, nil, nil); err != nil {
		return err
	}
	return c.done("session of %s deleted", args[0])
}

func (c *ctlRun) subscriptions(ctx context.Context, args []string) error {
	var subs []node.SubscriptionInfo
	if err := c.api.call(ctx, http.MethodGet, "/api/v1/clients/"+url.PathEscape(args[0])+"/subscriptions", nil, nil, &subs); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, subs)
	}
	return printSubscriptions(c.out, subs)
}

func (c *ctlRun) retained(ctx context.Context, _ []string) error {
	q := url.Values{}
	if c.opts.filter != "" {
		q.Set("filter", c.opts.filter)
	}
	if c.opts.limit != 0 {
		q.Set("limit", strconv.Itoa(c.opts.limit))
	}
	var resp retainedResponse
	if err := c.api.call(ctx, http.MethodGet, "/api/v1/retained", q, nil, &resp); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, resp)
	}
	return printRetained(c.out, resp)
}

func (c *ctlRun) deleteRetained(ctx context.Context, args []string) error {
	q := url.Values{"topic": {args[0]}}
	if err := c.api.call(ctx, http.MethodDelete, "/api/v1/retained", q, nil, nil); err != nil {
		return err
	}
	return c.done("retained message on %s deleted", args[0])
}

func (c *ctlRun) publishMessage(ctx context.Context, args []string) error {
	req := publishRequest{Topic: args[0], QoS: c.opts.qos, Retain: c.opts.retain}
	if c.opts.base64 {
		// The JSON encoding of []byte is base64, so decoding here and
		// sending bytes checks the argument before the request.
		b, err := decodeBase64Arg(args[1])
		if err != nil {
			return err
		}
		req.PayloadBase64 = b
	} else {
		req.Payload = &args[1]
	}
	if err := c.api.call(ctx, http.MethodPost, "/api/v1/publish", nil, req, nil); err != nil {
		return err
	}
	retained := ""
	if c.opts.retain {
		retained = ", retained"
	}
	return c.done("published to %s (QoS %d%s)", args[0], c.opts.qos, retained)
}

func (c *ctlRun) listGroups(ctx context.Context, _ []string) error {
	var groups []groupJSON
	if err := c.api.call(ctx, http.MethodGet, "/api/v1/groups", nil, nil, &groups); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, groups)
	}
	return printGroups(c.out, groups)
}

func (c *ctlRun) getGroup(ctx context.Context, args []string) error {
	var g groupJSON
	if err := c.api.call(ctx, http.MethodGet, "/api/v1/groups/"+url.PathEscape(args[0]), nil, nil, &g); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, g)
	}
	return printGroups(c.out, []groupJSON{g})
}

func (c *ctlRun) putGroup(ctx context.Context, args []string) error {
	body := groupBody{Roles: c.opts.roles}
	var g groupJSON
	if err := c.api.call(ctx, http.MethodPut, "/api/v1/groups/"+url.PathEscape(args[0]), nil, body, &g); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, g)
	}
	return c.done("group %s saved with roles [%s]", g.Name, strings.Join(g.Roles, ", "))
}

func (c *ctlRun) deleteGroup(ctx context.Context, args []string) error {
	if err := c.api.call(ctx, http.MethodDelete, "/api/v1/groups/"+url.PathEscape(args[0]), nil, nil, nil); err != nil {
		return err
	}
	return c.done("group %s deleted", args[0])
}

func (c *ctlRun) listRoles(ctx context.Context, _ []string) error {
	var roles []roleJSON
	if err := c.api.call(ctx, http.MethodGet, "/api/v1/roles", nil, nil, &roles); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, roles)
	}
	return printRoles(c.out, roles)
}

func (c *ctlRun) getRole(ctx context.Context, args []string) error {
	var r roleJSON
	if err := c.api.call(ctx, http.MethodGet, "/api/v1/roles/"+url.PathEscape(args[0]), nil, nil, &r); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, r)
	}
	return printRoles(c.out, []roleJSON{r})
}

func (c *ctlRun) putRole(ctx context.Context, args []string) error {
	body := roleBody{Rules: make([]ruleJSON, 0, len(c.opts.rules))}
	for _, s := range c.opts.rules {
		rule, err := parseRuleFlag(s)
		if err != nil {
			return err
		}
		body.Rules = append(body.Rules, rule)
	}
	var r roleJSON
	if err := c.api.call(ctx, http.MethodPut, "/api/v1/roles/"+url.PathEscape(args[0]), nil, body, &r); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, r)
	}
	return c.done("role %s saved with %d rule(s)", r.Name, len(r.Rules))
}

func (c *ctlRun) deleteRole(ctx context.Context, args []string) error {
	if err := c.api.call(ctx, http.MethodDelete, "/api/v1/roles/"+url.PathEscape(args[0]), nil, nil, nil); err != nil {
		return err
	}
	return c.done("role %s deleted", args[0])
}

func (c *ctlRun) authzCheck(ctx context.Context, _ []string) error {
	req := authzRequest{Username: c.opts.user, ClientID: c.opts.client, QoS: c.opts.qos, Retain: c.opts.retain}
	switch {
	case c.opts.publish != "" && c.opts.subscribe != "":
		return errors.New("give either --publish TOPIC or --subscribe FILTER, not both")
	case c.opts.publish != "":
		req.Action, req.Topic = string(auth.ActionPublish), c.opts.publish
	case c.opts.subscribe != "":
		req.Action, req.Topic = string(auth.ActionSubscribe), c.opts.subscribe
	default:
		return errors.New("missing --publish TOPIC or --subscribe FILTER: say what to check")
	}
	var resp authzResponse
	if err := c.api.call(ctx, http.MethodPost, "/api/v1/authz/check", nil, req, &resp); err != nil {
		return err
	}
	var err error
	if c.opts.output == "json" {
		err = writeJSONTo(c.out, resp)
	} else {
		err = printAuthz(c.out, req, resp)
	}
	if err == nil && !resp.Allowed {
		err = errDenied
	}
	return err
}

// errDenied makes `ctl authz check` exit with status 3 after it printed a
// denial, so scripts can tell a denial (3) from a failed check (1).
var errDenied = errors.New("denied")

// parseRuleFlag parses PERMISSION:ACTION:TOPIC. The topic is everything after
// the second colon, so it may contain colons itself.
func parseRuleFlag(s string) (ruleJSON, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 {
		return ruleJSON{}, fmt.Errorf("rule %q is invalid: write it as PERMISSION:ACTION:TOPIC, e.g. allow:publish:devices/%%c/#", s)
	}
	rule := ruleJSON{Permission: parts[0], Action: parts[1], Topic: parts[2]}
	if err := auth.ParseRule(auth.Rule{Action: auth.Action(rule.Action), Permission: auth.Permission(rule.Permission), Topic: rule.Topic}); err != nil {
		return ruleJSON{}, fmt.Errorf("rule %q is invalid (PERMISSION:ACTION:TOPIC, e.g. allow:publish:devices/%%c/#): %w", s, err)
	}
	return rule, nil
}

// decodeBase64Arg decodes a --base64 payload, standard or URL alphabet,
// padded or not.
func decodeBase64Arg(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("payload %q is not valid base64: drop --base64 to send it as text", s)
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

func printStatus(w io.Writer, st statusResponse) error {
	s := st.Stats
	in := s.MessagesInTotal[0] + s.MessagesInTotal[1] + s.MessagesInTotal[2]
	out := s.MessagesOutTotal[0] + s.MessagesOutTotal[1] + s.MessagesOutTotal[2]
	tw := newTable(w)
	rows := [][2]string{
		{"node", st.Node},
		{"version", st.Version},
		{"uptime", (time.Duration(st.UptimeSeconds) * time.Second).String()},
		{"ready", strconv.FormatBool(st.Ready)},
		{"connected", strconv.FormatInt(s.Connected, 10)},
		{"sessions", strconv.FormatInt(s.Sessions, 10)},
		{"subscriptions", strconv.FormatInt(s.Subscriptions, 10)},
		{"retained", fmt.Sprintf("%d (%d bytes)", s.Retained, s.RetainedBytes)},
		{"queued", strconv.FormatInt(s.Queued, 10)},
		{"inflight", strconv.FormatInt(s.Inflight, 10)},
		{"messages in", fmt.Sprintf("%d (QoS 0/1/2: %d/%d/%d)", in, s.MessagesInTotal[0], s.MessagesInTotal[1], s.MessagesInTotal[2])},
		{"messages out", fmt.Sprintf("%d (QoS 0/1/2: %d/%d/%d)", out, s.MessagesOutTotal[0], s.MessagesOutTotal[1], s.MessagesOutTotal[2])},
		{"dropped", fmt.Sprintf("queue full %d, no member %d, too large %d", s.DroppedQueueFullTotal, s.DroppedNoMemberTotal, s.DroppedTooLargeTotal)},
		{"connects", fmt.Sprintf("%d (refused %d, takeovers %d)", s.ConnectsTotal, s.ConnectRefusedTotal, s.TakeoversTotal)},
		{"auth failures", formatCounts(s.AuthFailuresTotal)},
		{"denied", formatCounts(s.DeniedTotal)},
		{"disk", fmt.Sprintf("%d bytes", s.DiskBytes)},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}

// formatCounts prints a map of counters sorted by key, as "a 1, b 2".
func formatCounts(m map[string]uint64) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func printClients(w io.Writer, resp clientsResponse) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "CLIENT ID\tCONNECTED\tUSERNAME\tREMOTE\tPROTOCOL\tSUBS\tQUEUED\tINFLIGHT")
	for _, c := range resp.Clients {
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%d\t%d\t%d\n", c.ClientID, c.Connected, orDash(c.Username), orDash(c.Remote),
			protocolName(c.Version), c.Subscriptions, c.Queued, c.Inflight)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if resp.Truncated {
		fmt.Fprintf(w, "(only the first %d shown; pass --limit or --match to see others)\n", len(resp.Clients))
	}
	return nil
}

func printClient(w io.Writer, c node.ClientInfo) error {
	tw := newTable(w)
	rows := [][2]string{
		{"client id", c.ClientID},
		{"connected", strconv.FormatBool(c.Connected)},
		{"username", orDash(c.Username)},
		{"remote", orDash(c.Remote)},
		{"listener", orDash(c.Listener)},
		{"protocol", protocolName(c.Version)},
		{"persistent", strconv.FormatBool(c.Persistent)},
		{"session expiry", (time.Duration(c.ExpiryInterval) * time.Second).String()},
		{"subscriptions", strconv.Itoa(c.Subscriptions)},
		{"queued", strconv.Itoa(c.Queued)},
		{"inflight", strconv.Itoa(c.Inflight)},
	}
	if !c.DisconnectedAt.IsZero() {
		rows = append(rows, [2]string{"disconnected at", c.DisconnectedAt.Format(time.RFC3339)})
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}

func printSubscriptions(w io.Writer, subs []node.SubscriptionInfo) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "FILTER\tQOS\tNO LOCAL\tRETAIN AS PUBLISHED\tSUBSCRIPTION ID")
	for _, s := range subs {
		id := "-"
		if s.SubscriptionID != 0 {
			id = strconv.FormatUint(uint64(s.SubscriptionID), 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%v\t%v\t%s\n", s.Filter, s.QoS, s.NoLocal, s.RetainAsPublished, id)
	}
	return tw.Flush()
}

func printRetained(w io.Writer, resp retainedResponse) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "TOPIC\tQOS\tSIZE\tPAYLOAD")
	for _, m := range resp.Messages {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", m.Topic, m.QoS, m.Size, payloadPreview(m.Payload))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if resp.Truncated {
		fmt.Fprintf(w, "(only %d shown; pass --limit or a narrower --filter to see others)\n", len(resp.Messages))
	}
	return nil
}

// maxPreview is the number of characters of a payload shown in a table.
const maxPreview = 60

// payloadPreview shows a payload that is printable UTF-8 as text, quoted and
// cut at maxPreview characters, and any other payload by its size.
func payloadPreview(b []byte) string {
	if !utf8.Valid(b) || strings.ContainsFunc(string(b), func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
		return fmt.Sprintf("<%d bytes of binary; see -o json>", len(b))
	}
	runes := []rune(string(b))
	if len(runes) > maxPreview {
		return strconv.Quote(string(runes[:maxPreview])) + "…"
	}
	return strconv.Quote(string(b))
}

func printGroups(w io.Writer, groups []groupJSON) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "GROUP\tROLES")
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%s\n", g.Name, orDash(strings.Join(g.Roles, ",")))
	}
	return tw.Flush()
}

// printRoles prints one line per rule, in order, so the first match is the
// first line.
func printRoles(w io.Writer, roles []roleJSON) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ROLE\t#\tPERMISSION\tACTION\tTOPIC")
	for _, r := range roles {
		if len(r.Rules) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\n", r.Name)
		}
		for i, rule := range r.Rules {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.Name, i+1, rule.Permission, rule.Action, rule.Topic)
		}
	}
	return tw.Flush()
}

func printAuthz(w io.Writer, req authzRequest, resp authzResponse) error {
	subject := "anonymous client"
	if req.Username != "" {
		subject = fmt.Sprintf("user %q", req.Username)
	}
	verdict, may := "denied", "may not"
	if resp.Allowed {
		verdict, may = "allowed", "may"
	}
	how := fmt.Sprintf("at QoS %d", req.QoS)
	if req.Retain {
		how += ", retained"
	}
	_, err := fmt.Fprintf(w, "%s: %s with client id %q %s %s %q %s\n", verdict, subject, req.ClientID, may, req.Action, req.Topic, how)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// protocolName names an MQTT protocol level as the specification does.
func protocolName(v byte) string {
	switch v {
	case 3:
		return "3.1"
	case 4:
		return "3.1.1"
	case 5:
		return "5.0"
	}
	return strconv.Itoa(int(v))
}
