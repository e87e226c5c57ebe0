package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/starling-mqtt/starling/cluster"
	"github.com/starling-mqtt/starling/internal/tlsutil"
	"github.com/starling-mqtt/starling/node"
	"github.com/starling-mqtt/starling/node/auth"
)

// httpServer serves the node's operational endpoints: /metrics (Prometheus),
// /healthz (the process is alive), /readyz (the node accepts clients) and,
// when enabled on a loopback address, /debug/pprof/.
type httpServer struct {
	srv      *http.Server
	ln       net.Listener
	done     chan struct{}
	reloader *tlsutil.Reloader // nil without TLS
}

// startHTTP binds addr and serves in a goroutine owned by the returned server;
// stop it with shutdown.
//
// reloadConfig, when not nil, serves POST /api/v1/config/reload, which does
// what SIGHUP does.
func startHTTP(addr string, tlsFiles httpTLSFiles, n *node.Server, cl *cluster.Cluster, enablePprof bool, adminToken string, log *slog.Logger, reloadConfig func() reloadResult) (*httpServer, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(n.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cl != nil {
		reg.MustRegister(cl.Collector())
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.Ready() || (cl != nil && !cl.Ready()) {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for HTTP on %s: %w", addr, err)
	}
	var reloader *tlsutil.Reloader
	if tlsFiles.cert != "" || tlsFiles.key != "" {
		var cfg *tls.Config
		cfg, reloader, err = tlsutil.ServerConfig(tlsutil.ServerOptions{CertFile: tlsFiles.cert, KeyFile: tlsFiles.key,
			NextProtos: []string{"h2", "http/1.1"}, Logger: log})
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("--http-tls-cert and --http-tls-key: %w", err)
		}
		ln = tls.NewListener(ln, cfg)
	}
	host, _, _ := net.SplitHostPort(addr)
	loopback := host == "localhost"
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		loopback = true
	}
	if !loopback && adminToken != "" && reloader == nil {
		log.Warn("admin API on a non-loopback address without TLS: the bearer token crosses the network in clear; set --http-tls-cert and --http-tls-key", "addr", addr)
	}
	if loopback || adminToken != "" {
		admin := &userAdmin{store: n.AuthStore(), reload: n.ReloadAuth, params: auth.DefaultParams(), token: adminToken}
		admin.register(mux)
		newOpsAdmin(n, admin.guard, log).register(mux)
		registerClusterAdmin(mux, cl, admin.guard)
		registerLeave(mux, cl, admin.guard)
		if reloadConfig != nil {
			mux.HandleFunc("POST /api/v1/config/reload", admin.guard(func(w http.ResponseWriter, _ *http.Request) {
				res := reloadConfig()
				status := http.StatusOK
				if res.Error != "" {
					status = http.StatusBadRequest
				}
				writeJSON(w, status, res)
			}))
		}
	} else {
		log.Warn("admin API disabled: --http is not loopback-only and no admin token is set (STARLING_ADMIN_TOKEN_FILE)", "addr", addr)
	}
	if enablePprof {
		if !loopback {
			ln.Close()
			return nil, fmt.Errorf("--pprof needs a loopback --http address, not %s: profiles expose the process's memory", addr)
		}
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("POST /debug/free-memory", serveFreeMemory)
	}

	h := &httpServer{
		srv:      &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ln:       ln,
		done:     make(chan struct{}),
		reloader: reloader,
	}
	go func() {
		defer close(h.done)
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server failed", "err", err)
		}
	}()
	log.Info("HTTP endpoints listening", "addr", ln.Addr().String(), "pprof", enablePprof, "tls", reloader != nil)
	return h, nil
}

// shutdown stops the HTTP server and waits for its goroutine.
func (h *httpServer) shutdown(ctx context.Context) {
	h.srv.Shutdown(ctx)
	<-h.done
	if h.reloader != nil {
		_ = h.reloader.Close()
	}
}

// httpTLSFiles are the certificate and key of an HTTPS --http endpoint,
// reread when they change.
type httpTLSFiles struct{ cert, key string }
