package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/starling-mqtt/starling/cluster"
	"github.com/starling-mqtt/starling/cluster/membership"
	"github.com/starling-mqtt/starling/cluster/peer"
	"github.com/starling-mqtt/starling/node"
)

// fileCluster is the cluster section of the YAML file. A node is in a
// cluster when cluster_bind or peer_bind is set, by file, flag or
// environment.
type fileCluster struct {
	ClusterBind     string   `yaml:"cluster_bind"`
	PeerBind        string   `yaml:"peer_bind"`
	Advertise       string   `yaml:"advertise"`
	Join            []string `yaml:"join"`
	BootstrapExpect int      `yaml:"bootstrap_expect"`
	BootstrapPeers  []string `yaml:"bootstrap_peers"`
	GossipKeyFile   string   `yaml:"gossip_key_file"`
	PeerTLS         *struct {
		CAFile   string   `yaml:"ca_file"`
		CertFile string   `yaml:"cert_file"`
		KeyFile  string   `yaml:"key_file"`
		CRLFiles []string `yaml:"crl_files"`
	} `yaml:"peer_tls"`
	Insecure      bool     `yaml:"insecure"`
	Voters        int      `yaml:"voters"`
	DeadGrace     duration `yaml:"dead_grace"`
	VoterGrace    duration `yaml:"voter_grace"`
	ReapTime      duration `yaml:"reap_time"`
	RouteWait     duration `yaml:"route_wait"`
	SessionWait   duration `yaml:"session_wait"`
	SharedCustody duration `yaml:"shared_custody"`
	Strict        bool     `yaml:"strict"`
	Profile       string   `yaml:"profile"`
	// ApplyDelay is a test hook (see cluster.Config.ApplyDelay); it is
	// left out of the documentation on purpose.
	ApplyDelay duration `yaml:"test_apply_delay"`
}

// clusterFlags are the cluster flags of serve; each has a STARLING_
// variable.
type clusterFlags struct {
	clusterBind, peerBind, advertise, join string
	bootstrapExpect, bootstrapPeers        string
	gossipKeyFile                          string
	peerCA, peerCert, peerKey              string
	insecure                               string
}

func (f *clusterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.clusterBind, "cluster-bind", "", "gossip address IP:PORT; setting it puts the node in a cluster (env STARLING_CLUSTER_BIND)")
	fs.StringVar(&f.peerBind, "peer-bind", "", "peer port HOST:PORT for Raft and gRPC between nodes (env STARLING_PEER_BIND)")
	fs.StringVar(&f.advertise, "advertise", "", "host other nodes use to reach this one (env STARLING_ADVERTISE; default the bind addresses)")
	fs.StringVar(&f.join, "join", "", "comma-separated gossip seeds HOST:PORT or a DNS name (env STARLING_JOIN)")
	fs.StringVar(&f.bootstrapExpect, "bootstrap-expect", "", "bootstrap with the N nodes whose names end in the lowest numbers (env STARLING_BOOTSTRAP_EXPECT)")
	fs.StringVar(&f.bootstrapPeers, "bootstrap-peers", "", "comma-separated names of the bootstrap nodes (env STARLING_BOOTSTRAP_PEERS)")
	fs.StringVar(&f.gossipKeyFile, "gossip-key-file", "", "file with the base64 gossip key, as starling certs init writes it (env STARLING_GOSSIP_KEY_FILE)")
	fs.StringVar(&f.peerCA, "peer-ca", "", "peer CA bundle for mutual TLS between nodes (env STARLING_PEER_CA)")
	fs.StringVar(&f.peerCert, "peer-cert", "", "this node's peer certificate (env STARLING_PEER_CERT)")
	fs.StringVar(&f.peerKey, "peer-key", "", "this node's peer key (env STARLING_PEER_KEY)")
	fs.StringVar(&f.insecure, "cluster-insecure", "", "allow plaintext gossip and peer traffic off loopback: true or false (env STARLING_CLUSTER_INSECURE)")
}

func (f *clusterFlags) applyEnv(setByFlag map[string]bool) {
	env := func(flagName, key string, dst *string) {
		if v, ok := os.LookupEnv(key); ok && !setByFlag[flagName] {
			*dst = v
		}
	}
	env("cluster-bind", "STARLING_CLUSTER_BIND", &f.clusterBind)
	env("peer-bind", "STARLING_PEER_BIND", &f.peerBind)
	env("advertise", "STARLING_ADVERTISE", &f.advertise)
	env("join", "STARLING_JOIN", &f.join)
	env("bootstrap-expect", "STARLING_BOOTSTRAP_EXPECT", &f.bootstrapExpect)
	env("bootstrap-peers", "STARLING_BOOTSTRAP_PEERS", &f.bootstrapPeers)
	env("gossip-key-file", "STARLING_GOSSIP_KEY_FILE", &f.gossipKeyFile)
	env("peer-ca", "STARLING_PEER_CA", &f.peerCA)
	env("peer-cert", "STARLING_PEER_CERT", &f.peerCert)
	env("peer-key", "STARLING_PEER_KEY", &f.peerKey)
	env("cluster-insecure", "STARLING_CLUSTER_INSECURE", &f.insecure)
}

// merge applies the flags over the file's section.
func (f *clusterFlags) merge(fc *fileCluster) error {
	set := func(v string, dst *string) {
		if v != "" {
			*dst = v
		}
	}
	set(f.clusterBind, &fc.ClusterBind)
	set(f.peerBind, &fc.PeerBind)
	set(f.advertise, &fc.Advertise)
	set(f.gossipKeyFile, &fc.GossipKeyFile)
	if f.join != "" {
		fc.Join = splitList(f.join)
	}
	if f.bootstrapPeers != "" {
		fc.BootstrapPeers = splitList(f.bootstrapPeers)
	}
	if f.bootstrapExpect != "" {
		n, err := strconv.Atoi(f.bootstrapExpect)
		if err != nil || n < 1 {
			return fmt.Errorf("bootstrap-expect = %q: use a positive number", f.bootstrapExpect)
		}
		fc.BootstrapExpect = n
	}
	if f.peerCA != "" || f.peerCert != "" || f.peerKey != "" {
		if fc.PeerTLS == nil {
			fc.PeerTLS = &struct {
				CAFile   string   `yaml:"ca_file"`
				CertFile string   `yaml:"cert_file"`
				KeyFile  string   `yaml:"key_file"`
				CRLFiles []string `yaml:"crl_files"`
			}{}
		}
		set(f.peerCA, &fc.PeerTLS.CAFile)
		set(f.peerCert, &fc.PeerTLS.CertFile)
		set(f.peerKey, &fc.PeerTLS.KeyFile)
	}
	if f.insecure != "" {
		v, err := strconv.ParseBool(f.insecure)
		if err != nil {
			return fmt.Errorf("cluster-insecure = %q: use true or false", f.insecure)
		}
		fc.Insecure = v
	}
	return nil
}

// enabled reports whether the configuration puts the node in a cluster.
func (fc *fileCluster) enabled() bool {
	return fc.ClusterBind != "" || fc.PeerBind != ""
}

// clusterConfig builds the cluster configuration of a node.
func clusterConfig(fc fileCluster, cfg node.Config, logger *slog.Logger) (cluster.Config, error) {
	cc := cluster.Config{
		NodeName:        cfg.NodeName,
		DataDir:         cfg.DataDir,
		GossipBind:      fc.ClusterBind,
		PeerBind:        fc.PeerBind,
		Advertise:       fc.Advertise,
		Join:            fc.Join,
		BootstrapExpect: fc.BootstrapExpect,
		BootstrapPeers:  fc.BootstrapPeers,
		Insecure:        fc.Insecure,
		Voters:          fc.Voters,
		DeadGrace:       time.Duration(fc.DeadGrace),
		VoterGrace:      time.Duration(fc.VoterGrace),
		ReapTime:        time.Duration(fc.ReapTime),
		RouteWait:       time.Duration(fc.RouteWait),
		SessionWait:     time.Duration(fc.SessionWait),
		SharedCustody:   time.Duration(fc.SharedCustody),
		Strict:          fc.Strict,
		Profile:         membership.Profile(fc.Profile),
		ApplyDelay:      time.Duration(fc.ApplyDelay),
		MaxPacketSize:   int(cfg.Limits.MaxPacketSize),
		Logger:          logger,
	}
	if cc.GossipBind == "" || cc.PeerBind == "" {
		return cc, fmt.Errorf("cluster: set both cluster_bind (--cluster-bind) and peer_bind (--peer-bind)")
	}
	switch cc.Profile {
	case "", membership.ProfileLAN, membership.ProfileLocal:
	default:
		return cc, fmt.Errorf("cluster.profile = %q: use lan or local", fc.Profile)
	}
	if fc.GossipKeyFile != "" {
		key, err := membership.LoadGossipKey(fc.GossipKeyFile)
		if err != nil {
			return cc, fmt.Errorf("cluster.gossip_key_file: %w", err)
		}
		cc.GossipKey = key
	}
	if t := fc.PeerTLS; t != nil {
		if t.CAFile == "" || t.CertFile == "" || t.KeyFile == "" {
			return cc, fmt.Errorf("cluster.peer_tls needs ca_file, cert_file and key_file (--peer-ca, --peer-cert, --peer-key)")
		}
		cc.PeerTLS = &peer.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, CRLFiles: t.CRLFiles}
	}
	cc.MQTTAddr = advertisedMQTT(cfg, fc.Advertise)
	return cc, nil
}

// advertisedMQTT returns the MQTT address other nodes and operators see:
// the first listener's port on the advertised host.
func advertisedMQTT(cfg node.Config, advertise string) string {
	if len(cfg.Listeners) == 0 {
		return ""
	}
	u := cfg.Listeners[0].URL
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if i := strings.IndexByte(u, '/'); i >= 0 {
		u = u[:i]
	}
	host, port, err := net.SplitHostPort(u)
	if err != nil {
		return u
	}
	if advertise != "" {
		host = advertise
	}
	return net.JoinHostPort(host, port)
}

// startCluster joins the node to its cluster when the configuration asks
// for one; it returns nil, nil otherwise.
func startCluster(fc fileCluster, cfg node.Config, srv *node.Server, logger *slog.Logger) (*cluster.Cluster, error) {
	if !fc.enabled() {
		return nil, nil
	}
	cc, err := clusterConfig(fc, cfg, logger)
	if err != nil {
		return nil, err
	}
	cl, err := cluster.Start(context.Background(), cc, srv)
	if err != nil {
		return nil, err
	}
	srv.SetCluster(cl)
	srv.UseClusterAuth(cl.AuthRecords(), cl.Ready)
	return cl, nil
}

// registerClusterAdmin serves the cluster endpoints, which return 404 on a
// single node. GET /api/v1/cluster returns this node's view of the
// cluster. POST /api/v1/cluster/nodes/{name}/remove removes a node for good
// and succeeds only on the Raft leader.
func registerClusterAdmin(mux *http.ServeMux, cl *cluster.Cluster, guard func(http.HandlerFunc) http.HandlerFunc) {
	mux.HandleFunc("GET /api/v1/cluster", guard(func(w http.ResponseWriter, r *http.Request) {
		if cl == nil {
			writeError(w, http.StatusNotFound, errors.New("this node is not in a cluster"))
			return
		}
		writeJSON(w, http.StatusOK, cl.Status())
	}))
	mux.HandleFunc("POST /api/v1/cluster/nodes/{name}/remove", guard(func(w http.ResponseWriter, r *http.Request) {
		if cl == nil {
			writeError(w, http.StatusNotFound, errors.New("this node is not in a cluster"))
			return
		}
		force := false
		if v := r.URL.Query().Get("force"); v != "" {
			var err error
			if force, err = strconv.ParseBool(v); err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("force = %q is invalid: use true or false", v))
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), removeNodeTimeout)
		defer cancel()
		removed, err := cl.RemoveNode(ctx, r.PathValue("name"), force)
		if err != nil {
			writeError(w, removeNodeStatus(err), err)
			return
		}
		writeJSON(w, http.StatusOK, removed)
	}))
}

// registerLeave serves POST /api/v1/node/leave: this node leaves the cluster
// for good (a scale-down), as `starling prestop` asks.
func registerLeave(mux *http.ServeMux, cl *cluster.Cluster, guard func(http.HandlerFunc) http.HandlerFunc) {
	mux.HandleFunc("POST /api/v1/node/leave", guard(func(w http.ResponseWriter, r *http.Request) {
		if cl == nil {
			writeError(w, http.StatusNotFound, errors.New("this node is not in a cluster"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*removeNodeTimeout)
		defer cancel()
		if err := cl.Leave(ctx); err != nil {
			writeError(w, http.StatusServiceUnavailable, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"left": cl.Status().Name})
	}))
}

// removeNodeTimeout bounds the Raft commits of one node removal.
const removeNodeTimeout = 30 * time.Second

// removeNodeStatus maps an error of cluster.RemoveNode to an HTTP status.
func removeNodeStatus(err error) int {
	var notLeader *cluster.NotLeaderError
	switch {
	case errors.Is(err, cluster.ErrNodeNotFound):
		return http.StatusNotFound
	case errors.As(err, &notLeader) && notLeader.Leader == "":
		return http.StatusServiceUnavailable
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrRemoveSelf), errors.Is(err, cluster.ErrNodeAlive):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
