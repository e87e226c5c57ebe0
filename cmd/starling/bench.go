package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/starling-mqtt/starling/internal/bench"
)

const benchUsage = `Usage: starling bench [flags]

Generates MQTT load against one broker and reports throughput, loss,
duplicates, ordering and latency. Every run is bounded by --duration (and
by --count when given) and connects only to the broker addresses given,
127.0.0.1:1883 by default, and to the --broker-gc-url given.

Scenarios:
  pairs    N publishers and N subscribers; publisher i publishes to PREFIX/i,
           which only subscriber i subscribes to
  fanin    N publishers on PREFIX/i, one subscriber to PREFIX/+
  fanout   one publisher on PREFIX/0, N subscribers to it
  shared   N publishers on PREFIX/i, --subs subscribers in one shared
           subscription $share/GROUP/PREFIX/+; each message reaches one member
  storm    opens N connections, --parallel handshakes at a time, within
           --duration; reports connections accepted per second and failures
  idle     opens N connections (stopping at the first failure, such as a
           file or port limit), holds them idle for --hold, and reports the
           broker's resident memory per connection (needs --broker-pid)

storm and idle spread their connections over source addresses 127.1.0.1,
127.1.0.2, ... (1,000 each) when the broker is on an IPv4 loopback address,
because one source address has about 28,000 ephemeral ports.

--tls connects every client of every scenario over TLS 1.2 or later and
checks the broker's certificate against the system's roots, or against
--cafile, for the host of --addr (and of --sub-addr for the subscribers)
or for --server-name. --insecure skips that check: the traffic is then
encrypted but anyone in between can read and change it, so use it only
against a broker you reach directly.

--broker-gc-url (idle, with --broker-pid) POSTs to a URL of the broker that
collects its garbage and returns free memory to the system, right before
each RSS sample, so that RSS per connection counts live memory only.
Starling serves POST /debug/free-memory on its --http address when run
with --pprof. The tool sends that request to exactly the URL given,
following no redirect.

--sub-addr connects the subscribers to another broker than the publishers:
a cross-node run against two nodes of one cluster. Against two separate
brokers nothing is delivered, and the run only checks that both accept
the clients.

Examples:
  starling bench --scenario pairs -n 10 --qos 1 --duration 10s
  starling bench --qos 1 --rate 2000 --broker-pid $(pidof starling) -o json
  starling bench --addr 127.0.0.1:8883 --tls --cafile ca.pem --scenario idle -n 10000
  starling bench --scenario idle -n 50000 --broker-pid $(pidof starling) \
      --broker-gc-url http://127.0.0.1:8080/debug/free-memory

Flags:
`

// runBench runs `starling bench` and returns the exit code: 0 for a run
// without client errors, 1 when a client failed, 2 for invalid flags.
func runBench(args []string) int {
	cfg, output, err := parseBenchFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling bench:", err)
		return 2
	}

	// The first SIGINT or SIGTERM stops publishing and prints what was
	// measured so far; stop() restores the default, so a second one kills.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	defer stop()

	res, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling bench:", err)
		return 1
	}

	if err := writeBenchResult(os.Stdout, output, res); err != nil {
		fmt.Fprintln(os.Stderr, "starling bench: write result:", err)
		return 1
	}
	if len(res.Errors) > 0 {
		return 1
	}
	return 0
}

// parseBenchFlags turns the command line into a run configuration and the
// output format ("text" or "json").
func parseBenchFlags(args []string, stderr io.Writer) (bench.Config, string, error) {
	cfg := bench.DefaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}

	addr := fs.String("addr", "", "broker address HOST:PORT (default "+bench.DefaultAddr+"); --host and --port override its parts")
	host := fs.String("host", "", "broker host name or IP address")
	port := fs.Int("port", 0, "broker TCP port")
	fs.StringVar(&cfg.SubAddr, "sub-addr", "", "broker address HOST:PORT of the subscribers; empty means the publishers' address")
	scenario := fs.String("scenario", string(cfg.Scenario), "pairs, fanin, fanout, shared, storm or idle")
	fs.IntVar(&cfg.Clients, "n", cfg.Clients, "number of pairs (pairs), publishers (fanin, shared), subscribers (fanout) or connections (storm, idle)")
	fs.IntVar(&cfg.SharedSubscribers, "subs", cfg.SharedSubscribers, "members of the shared subscription group (shared)")
	fs.StringVar(&cfg.ShareGroup, "group", cfg.ShareGroup, "share name of the shared subscription (shared)")
	fs.IntVar(&cfg.ConnectParallelism, "parallel", cfg.ConnectParallelism, "maximum connection handshakes in progress at once (storm, idle)")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "how long the idle connections stay open after the last one opened (idle)")
	qos := fs.Uint("qos", 0, "QoS of publishes and subscriptions: 0, 1 or 2")
	fs.IntVar(&cfg.PayloadSize, "size", cfg.PayloadSize, fmt.Sprintf("payload size in bytes, at least %d (send time, sequence number, publisher, run tag)", bench.HeaderSize))
	fs.IntVar(&cfg.Inflight, "inflight", cfg.Inflight, "maximum unconfirmed messages per publisher (QoS 0: confirmed by a PINGRESP after every inflight/2 messages)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "total publish rate in messages per second over all publishers; 0 publishes as fast as --inflight allows")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "maximum length of the publishing phase, or of opening the connections (storm, idle)")
	fs.Uint64Var(&cfg.Count, "count", 0, "messages per publisher; 0 means until --duration ends")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "maximum wait after publishing for outstanding acknowledgements and deliveries")
	clean := fs.Bool("clean", true, "subscribers use clean sessions; --clean=false keeps their sessions on the broker after the run")
	fs.DurationVar(&cfg.SessionExpiry, "session-expiry", cfg.SessionExpiry, "MQTT 5.0 session expiry of persistent subscribers (--clean=false)")
	protocol := fs.String("protocol", "3.1.1", "MQTT version: 3.1.1 or 5.0")
	fs.StringVar(&cfg.TopicPrefix, "topic-prefix", cfg.TopicPrefix, "first topic level of every topic")
	fs.StringVar(&cfg.ClientPrefix, "client-prefix", cfg.ClientPrefix, "client identifier prefix: PREFIX-pub-I and PREFIX-sub-I")
	fs.DurationVar(&cfg.KeepAlive, "keepalive", cfg.KeepAlive, "MQTT keep alive interval; 0 disables it")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "maximum time for each TCP connect, CONNACK and SUBACK")
	fs.StringVar(&cfg.Username, "username", "", "user name sent in CONNECT")
	passwordEnv := fs.String("password-env", "", "name of an environment variable that contains the password sent in CONNECT")
	fs.IntVar(&cfg.BrokerPID, "broker-pid", 0, "PID of a local broker process whose CPU time and memory to sample from /proc")
	fs.StringVar(&cfg.BrokerGCURL, "broker-gc-url", "", "URL to POST to before each memory sample of the idle scenario, so that the broker frees memory first, e.g. http://127.0.0.1:8080/debug/free-memory (starling serve --http 127.0.0.1:8080 --pprof); needs --broker-pid")
	fs.BoolVar(&cfg.TLS, "tls", false, "connect over TLS and verify the broker's certificate (system roots, or --cafile)")
	fs.StringVar(&cfg.CAFile, "cafile", "", "PEM file of the CA certificates the broker's certificate must chain to (with --tls)")
	fs.StringVar(&cfg.ServerName, "server-name", "", "name the broker's certificate must carry, also sent as SNI; default: the host of --addr (with --tls)")
	fs.BoolVar(&cfg.InsecureSkipVerify, "insecure", false, "UNSAFE: with --tls, accept any broker certificate without checking it; encrypted but not authenticated")
	output := fs.String("o", "text", "output format: text or json")
	progress := fs.Bool("progress", true, "print a progress line to stderr every second")

	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", fmt.Errorf("unexpected argument %q: every setting is a flag (see starling bench -h)", fs.Arg(0))
	}

	var err error
	if cfg.Addr, err = benchAddr(*addr, *host, *port); err != nil {
		return cfg, "", err
	}
	cfg.Scenario = bench.Scenario(*scenario)
	if *qos > 2 {
		return cfg, "", fmt.Errorf("--qos %d is invalid: use 0, 1 or 2", *qos)
	}
	cfg.QoS = byte(*qos)
	cfg.Persistent = !*clean
	switch *protocol {
	case "3.1.1", "4":
		cfg.Version = bench.Version311
	case "5.0", "5":
		cfg.Version = bench.Version5
	default:
		return cfg, "", fmt.Errorf("--protocol %q is invalid: use 3.1.1 or 5.0", *protocol)
	}
	if *passwordEnv != "" {
		password, ok := os.LookupEnv(*passwordEnv)
		if !ok {
			return cfg, "", fmt.Errorf("--password-env: environment variable %s is not set", *passwordEnv)
		}
		cfg.Password = password
	}
	if *output != "text" && *output != "json" {
		return cfg, "", fmt.Errorf("-o %q is invalid: use text or json", *output)
	}
	if *progress {
		cfg.Progress = os.Stderr
	}

	if err := cfg.Validate(); err != nil {
		return cfg, "", err
	}
	return cfg, *output, nil
}

// benchAddr combines --addr, --host and --port: the host and port flags
// replace the parts of the address, which defaults to bench.DefaultAddr.
func benchAddr(addr, host string, port int) (string, error) {
	if addr == "" {
		addr = bench.DefaultAddr
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--addr %q is invalid: use HOST:PORT: %w", addr, err)
	}
	if host != "" {
		h = host
	}
	if port != 0 {
		if port < 1 || port > 65535 {
			return "", fmt.Errorf("--port %d is out of range 1..65535", port)
		}
		p = strconv.Itoa(port)
	}
	return net.JoinHostPort(h, p), nil
}

func writeBenchResult(w io.Writer, format string, res *bench.Result) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return res.WriteText(w)
}
