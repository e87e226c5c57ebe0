// Command starling runs and manages Starling MQTT broker nodes.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/starling-mqtt/starling/internal/gctune"
	"github.com/starling-mqtt/starling/node"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `Starling is a clustered MQTT 3.1, 3.1.1 and 5.0 broker.

Usage:
  starling serve [flags]    run a broker node (starling serve -h lists the flags)
  starling bench [flags]    generate MQTT load against a broker (starling bench -h)
  starling certs init DIR   write a development CA, server, peer and client certificates
  starling user ...         add, remove, list users and change passwords (starling user -h)
  starling health [--live]  exit 0 when the node's /readyz (or /healthz) answers 200
  starling ctl ...          inspect and operate a running node: clients, retained, groups, roles (starling ctl -h)
  starling prestop          the Helm chart's preStop hook: leave the cluster on a scale-down
  starling version          print the version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(serve(os.Args[2:]))
	case "bench":
		os.Exit(runBench(os.Args[2:]))
	case "certs":
		os.Exit(runCerts(os.Args[2:]))
	case "user":
		os.Exit(runUser(os.Args[2:]))
	case "health":
		os.Exit(runHealth(os.Args[2:]))
	case "prestop":
		os.Exit(runPrestop(os.Args[2:]))
	case "ctl":
		os.Exit(runCtl(os.Args[2:]))
	case "version", "--version", "-v":
		fmt.Println("starling", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "starling: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// serve runs one node until SIGTERM or SIGINT, and returns the exit code.
func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var st settings
	var listen listFlag
	fs.StringVar(&st.configPath, "config", "", "YAML configuration file (env STARLING_CONFIG)")
	fs.Var(&listen, "listen", "client listener URL, tcp://HOST:PORT; repeatable (env STARLING_LISTEN, comma-separated; default tcp://127.0.0.1:1883)")
	fs.StringVar(&st.dataDir, "data-dir", "", "directory of the node's data (env STARLING_DATA_DIR; default ./data)")
	fs.StringVar(&st.nodeName, "node-name", "", "name of this node in logs (env STARLING_NODE_NAME)")
	fs.StringVar(&st.durability, "durability", "", "sync (acknowledge after fsync, the default) or relaxed (env STARLING_DURABILITY)")
	fs.StringVar(&st.logLevel, "log-level", "", "debug, info, warn or error (env STARLING_LOG_LEVEL; default info)")
	fs.StringVar(&st.logFormat, "log-format", "", "text or json (env STARLING_LOG_FORMAT; default text)")
	httpAddr := fs.String("http", "", "address of the /metrics, /healthz and /readyz endpoints, e.g. 127.0.0.1:8080 (env STARLING_HTTP; default off)")
	enablePprof := fs.Bool("pprof", false, "serve /debug/pprof/ and POST /debug/free-memory on the --http address (loopback only)")
	httpTLS := httpTLSFiles{}
	fs.StringVar(&httpTLS.cert, "http-tls-cert", "", "certificate of the --http endpoint, which then serves HTTPS (env STARLING_HTTP_TLS_CERT)")
	fs.StringVar(&httpTLS.key, "http-tls-key", "", "key of --http-tls-cert (env STARLING_HTTP_TLS_KEY)")
	shutdownTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take before connections are cut")
	var cf clusterFlags
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	st.listen = listen
	setByFlag := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setByFlag[f.Name] = true })
	st.applyEnv(setByFlag)
	cf.applyEnv(setByFlag)
	if v, ok := os.LookupEnv("STARLING_HTTP"); ok && !setByFlag["http"] {
		*httpAddr = v
	}
	if v, ok := os.LookupEnv("STARLING_HTTP_TLS_CERT"); ok && !setByFlag["http-tls-cert"] {
		httpTLS.cert = v
	}
	if v, ok := os.LookupEnv("STARLING_HTTP_TLS_KEY"); ok && !setByFlag["http-tls-key"] {
		httpTLS.key = v
	}

	var fc fileConfig
	if st.configPath != "" {
		var err error
		if fc, err = loadFile(st.configPath); err != nil {
			fmt.Fprintln(os.Stderr, "starling:", err)
			return 2
		}
	}
	if err := cf.merge(&fc.Cluster); err != nil {
		fmt.Fprintln(os.Stderr, "starling: invalid configuration:", err)
		return 2
	}
	cfg, logs, err := buildConfig(fc, st)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling: invalid configuration:", err)
		return 2
	}
	cfg.WillsByHome = fc.Cluster.enabled()
	level := new(slog.LevelVar)
	logger := logs.logger(os.Stderr, level)
	slog.SetDefault(logger)
	cfg.Logger = logger

	node.Version = version
	// Signals are caught before the listeners open, so a SIGTERM that comes
	// at any moment after that gets the graceful shutdown.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sig)

	heapFloor := gcHeapFloor(fc.GCHeapFloor)
	defer gctune.Start(heapFloor).Stop()

	srv, err := node.New(cfg)
	if err != nil {
		logger.Error("start failed", "err", err)
		return 1
	}
	cl, err := startCluster(fc.Cluster, cfg, srv, logger)
	if err != nil {
		logger.Error("start failed", "err", err)
		srv.Shutdown(context.Background())
		return 1
	}
	if cl != nil {
		srv.OnDrained(cl.Close)
	}
	if err := srv.Start(); err != nil {
		logger.Error("start failed", "err", err)
		srv.Shutdown(context.Background())
		return 1
	}
	var web *httpServer
	if *httpAddr != "" {
		token, terr := readAdminToken()
		if terr != nil {
			logger.Error("start failed", "err", terr)
			srv.Shutdown(context.Background())
			return 1
		}
		reloadConfig := func() reloadResult { return reload(srv, st, cfg, level, logger) }
		if web, err = startHTTP(*httpAddr, httpTLS, srv, cl, *enablePprof, token, logger, reloadConfig); err != nil {
			logger.Error("start failed", "err", err)
			srv.Shutdown(context.Background())
			return 1
		}
	}
	logger.Info("starling started", "version", version, "data_dir", cfg.DataDir, "gc_heap_floor_bytes", heapFloor)

	for {
		got := <-sig
		if got == syscall.SIGHUP {
			reload(srv, st, cfg, level, logger)
			continue
		}
		logger.Info("signal received; shutting down", "signal", got.String())
		break
	}

	ctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(ctx) // closes the cluster once the clients are gone (OnDrained)
	if web != nil {
		web.shutdown(ctx)
	}
	if err != nil {
		logger.Error("shutdown failed", "err", err)
		return 1
	}
	return 0
}

// readAdminToken reads the admin API bearer token from the file named by
// STARLING_ADMIN_TOKEN_FILE, if set.
func readAdminToken() (string, error) {
	path := os.Getenv("STARLING_ADMIN_TOKEN_FILE")
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read admin token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < 16 {
		return "", fmt.Errorf("admin token in %s is shorter than 16 characters: use a long random token", path)
	}
	return token, nil
}
