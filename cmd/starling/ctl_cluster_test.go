package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-mqtt/starling/cluster"
	"github.com/starling-mqtt/starling/cluster/membership"
	"github.com/starling-mqtt/starling/node"
)

// clusterFixture is a ready one-node cluster with its HTTP endpoints on
// loopback, as `starling serve --cluster-bind ... --http ...` runs it.
type clusterFixture struct {
	adminFixture
	cl      *cluster.Cluster
	dataDir string
	stop    func() // stops the HTTP server, the cluster and the node; idempotent
}

func startClusterFixture(t *testing.T) *clusterFixture {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	n, err := node.New(node.Config{
		NodeName:    "n1",
		Listeners:   []node.ListenerConfig{{URL: "tcp://127.0.0.1:0"}},
		DataDir:     dir,
		SysInterval: -1,
		Logger:      logger,
	})
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	cl, err := cluster.Start(context.Background(), cluster.Config{
		NodeName:       "n1",
		DataDir:        dir,
		GossipBind:     "127.0.0.1:0",
		PeerBind:       "127.0.0.1:0",
		BootstrapPeers: []string{"n1"},
		Profile:        membership.ProfileLocal,
		Logger:         logger,
	}, n)
	if err != nil {
		_ = n.Shutdown(context.Background())
		t.Fatalf("cluster.Start: %v", err)
	}
	n.SetCluster(cl)
	if err := n.Start(); err != nil {
		cl.Close()
		_ = n.Shutdown(context.Background())
		t.Fatalf("node.Start: %v", err)
	}
	web, err := startHTTP("127.0.0.1:0", httpTLSFiles{}, n, cl, false, "", logger, nil)
	if err != nil {
		cl.Close()
		_ = n.Shutdown(context.Background())
		t.Fatalf("startHTTP: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			web.shutdown(ctx)
			cl.Close()
			if err := n.Shutdown(ctx); err != nil {
				t.Errorf("node.Shutdown: %v", err)
			}
		})
	}
	t.Cleanup(stop)

	// Generous: the whole suite runs in parallel with -race on 2 cores.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := cl.WaitReady(ctx); err != nil {
		t.Fatalf("cluster not ready: %v; status %+v", err, cl.Status())
	}
	return &clusterFixture{
		adminFixture: adminFixture{node: n, baseURL: "http://" + web.ln.Addr().String(), mqtt: "tcp://" + n.Addrs()[0].String()},
		cl:           cl,
		dataDir:      dir,
		stop:         stop,
	}
}

func TestCtl_ClusterStatus(t *testing.T) {
	f := startClusterFixture(t)
	out := mustCtl(t, &f.adminFixture, "cluster", "status")
	if row := tableRow(t, out, "raft state:"); row[2] != "Leader" {
		t.Errorf("raft state row %q, want Leader", row)
	}
	if row := tableRow(t, out, "leader:"); row[1] != "n1" {
		t.Errorf("leader row %q, want n1", row)
	}
	if row := tableRow(t, out, "n1 "); len(row) < 5 || row[2] != "joined" || row[3] != "alive" || row[4] != "Voter" {
		t.Errorf("member row %q, want n1 joined, alive, Voter", row)
	}
	if !strings.Contains(out, "MEMBER") || !strings.Contains(out, "no forward streams") {
		t.Errorf("cluster status lacks the member table or the stream note:\n%s", out)
	}

	var st cluster.Status
	if err := json.Unmarshal([]byte(mustCtl(t, &f.adminFixture, "cluster", "status", "-o", "json")), &st); err != nil {
		t.Fatalf("cluster status -o json is not JSON: %v", err)
	}
	if st.Name != "n1" || st.SiteID != f.cl.SiteID() || len(st.Members) != 1 {
		t.Errorf("cluster status -o json = %+v, want n1 with site %s and one member", st, f.cl.SiteID())
	}
}

func TestCtl_ClusterRemoveRejects(t *testing.T) {
	f := startClusterFixture(t)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"self", []string{"cluster", "remove", "n1", "--force"}, []string{"409", "cannot remove itself"}},
		{"unknown", []string{"cluster", "remove", "nobody"}, []string{"404", "not found"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCtlAt(t, &f.adminFixture, tc.args...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", r.code, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
		})
	}
	if r := runCtlAt(t, &f.adminFixture, "cluster", "status", "--force"); r.code != 2 {
		t.Errorf("--force on cluster status: exit %d, want 2", r.code)
	}
	if code, body := f.request(t, http.MethodPost, "/api/v1/cluster/nodes/x/remove?force=maybe", "", ""); code != http.StatusBadRequest {
		t.Errorf("force=maybe: status %d (%s), want 400", code, body)
	}
}

func TestClusterAdmin_SingleNodeIs404(t *testing.T) {
	f := startAdminFixture(t, "")
	for _, req := range [][2]string{{http.MethodGet, "/api/v1/cluster"}, {http.MethodPost, "/api/v1/cluster/nodes/n2/remove"}} {
		if code, body := f.request(t, req[0], req[1], "", ""); code != http.StatusNotFound || !strings.Contains(string(body), "not in a cluster") {
			t.Errorf("%s %s: status %d (%s), want 404 saying not in a cluster", req[0], req[1], code, body)
		}
	}
}

func TestHTTP_ClusterMetrics(t *testing.T) {
	f := startClusterFixture(t)
	resp, err := http.Get(f.baseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"starling_cluster_is_leader 1", `starling_cluster_raft_state{state="leader"} 1`, `starling_cluster_members{state="joined"} 1`} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func TestCtl_ClusterRecover(t *testing.T) {
	f := startClusterFixture(t)
	site := f.cl.SiteID()
	f.stop()
	peers := "n1=" + site + "@127.0.0.1:7101,n2=site-2@127.0.0.1:7102"

	// Without --yes: the warning and the plan, and nothing changes.
	r := runCtlAt(t, &f.adminFixture, "cluster", "recover", "--data-dir", f.dataDir, "--peers", peers)
	if r.code != 1 || !strings.Contains(r.stderr, "add --yes") {
		t.Errorf("recover without --yes: exit %d, stderr %q; want 1 asking for --yes", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "WARNING") {
		t.Errorf("recover prints no warning:\n%s", r.stdout)
	}
	if row := tableRow(t, r.stdout, "stored"); row[2] != site {
		t.Errorf("stored configuration row %q, want site %s", row, site)
	}
	conf, err := cluster.StoredConfiguration(f.dataDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("StoredConfiguration: %v", err)
	}
	if len(conf.Servers) != 1 {
		t.Fatalf("unconfirmed recover changed the configuration: %+v", conf.Servers)
	}

	r = runCtlAt(t, &f.adminFixture, "cluster", "recover", "--data-dir", f.dataDir, "--peers", peers, "--yes", "-o", "json")
	if r.code != 0 {
		t.Fatalf("recover --yes: exit %d, stderr %q", r.code, r.stderr)
	}
	var report recoverReport
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil || !report.Recovered || len(report.Servers) != 2 {
		t.Errorf("recover -o json: %v, %+v; want recovered with two servers", err, report)
	}
	conf, err = cluster.StoredConfiguration(f.dataDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("StoredConfiguration after: %v", err)
	}
	want := []raft.Server{
		{Suffrage: raft.Voter, ID: raft.ServerID(site), Address: "127.0.0.1:7101"},
		{Suffrage: raft.Voter, ID: "site-2", Address: "127.0.0.1:7102"},
	}
	if len(conf.Servers) != 2 || conf.Servers[0] != want[0] || conf.Servers[1] != want[1] {
		t.Errorf("configuration after recover = %+v, want %+v", conf.Servers, want)
	}
}

func TestParseRecoverPeers(t *testing.T) {
	got, err := parseRecoverPeers(" a=s1@h1:7947, b=s2@[::1]:7947 ")
	if err != nil {
		t.Fatalf("valid peers: %v", err)
	}
	if len(got) != 2 || got[0] != (cluster.RecoverServer{Name: "a", SiteID: "s1", Address: "h1:7947"}) ||
		got[1].Address != "[::1]:7947" {
		t.Errorf("parsed %+v", got)
	}
	for _, bad := range []string{"", "a", "a=s1", "=s1@h:1", "a=@h:1", "a=s1@h", "a=s1@h:"} {
		if _, err := parseRecoverPeers(bad); err == nil {
			t.Errorf("parseRecoverPeers(%q) accepted an invalid entry", bad)
		}
	}
}
