package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/starling-mqtt/starling/cluster"
)

// clusterCtlOptions are the flags of the ctl cluster commands.
type clusterCtlOptions struct {
	force   bool   // remove: also a node that gossip lists as alive
	dataDir string // recover: data directory of the stopped node
	peers   string // recover: NAME=SITEID@HOST:PORT,...
	yes     bool   // recover: confirmed
}

func (o *clusterCtlOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.force, "force", false, "remove the node even if gossip lists it as alive")
	fs.StringVar(&o.dataDir, "data-dir", "", "data directory of the stopped node to recover")
	fs.StringVar(&o.peers, "peers", "", "surviving nodes that become the voters, as NAME=SITEID@HOST:PORT,...")
	fs.BoolVar(&o.yes, "yes", false, "confirm the recovery; without it recover only prints what it would do")
}

func (c *ctlRun) clusterStatus(ctx context.Context, _ []string) error {
	var st cluster.Status
	if err := c.api.call(ctx, http.MethodGet, "/api/v1/cluster", nil, nil, &st); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, st)
	}
	return printClusterStatus(c.out, st)
}

func printClusterStatus(w io.Writer, st cluster.Status) error {
	tw := newTable(w)
	rows := [][2]string{
		{"node", fmt.Sprintf("%s (site id %s, incarnation %d)", st.Name, st.SiteID, st.Incarnation)},
		{"ready", strconv.FormatBool(st.Ready)},
		{"raft state", st.RaftState},
		{"leader", orDash(st.Leader)},
		{"applied index", strconv.FormatUint(st.AppliedIndex, 10)},
		{"commit index", strconv.FormatUint(st.CommitIndex, 10)},
		{"membership epoch", strconv.FormatUint(st.Epoch, 10)},
		{"routes", fmt.Sprintf("%d local, %d remote", st.Routes, st.RemoteRoutes)},
		{"route batches", fmt.Sprintf("%d (%d operations)", st.RouteBatches, st.RouteOps)},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "MEMBER\tSITE ID\tSTATE\tGOSSIP\tSUFFRAGE\tPEER ADDR\tMQTT ADDR")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.SiteID, m.State, m.Gossip, orDash(m.Suffrage),
			orDash(m.PeerAddr), orDash(m.MQTTAddr))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(st.Streams) == 0 {
		_, err := fmt.Fprintln(w, "(no forward streams: this node has no peers)")
		return err
	}
	tw = newTable(w)
	fmt.Fprintln(tw, "STREAM TO\tCONNECTED\tLAG\tOUTBOX\tOUTBOX BYTES")
	for _, s := range st.Streams {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%d\n", s.Peer, s.Connected, s.Lag, s.OutboxDepth, s.OutboxBytes)
	}
	return tw.Flush()
}

func (c *ctlRun) removeClusterNode(ctx context.Context, args []string) error {
	q := url.Values{}
	if c.opts.cluster.force {
		q.Set("force", "true")
	}
	var removed cluster.RemovedNode
	path := "/api/v1/cluster/nodes/" + url.PathEscape(args[0]) + "/remove"
	if err := c.api.call(ctx, http.MethodPost, path, q, nil, &removed); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, removed)
	}
	was := "not in the raft configuration"
	if removed.Suffrage != "" {
		was = "was a " + strings.ToLower(removed.Suffrage)
	}
	return c.done("node %s removed (site id %s, %s); its routes are purged and %d outbox message(s) here dropped",
		removed.Name, removed.SiteID, was, removed.OutboxDropped)
}

// recoverWarning is printed before every recovery.
const recoverWarning = `WARNING: recover rewrites this node's Raft configuration, for a cluster
that lost its quorum for good. It counts every entry in this node's Raft log
as committed, including entries the old majority never committed, so nodes
recovered from different logs can disagree. Stop every surviving node first,
run recover on each of them with the same --peers, then start them. A node
left out must not start again with its old data directory, which still holds
the old configuration.
`

// recoverReport is the JSON output of ctl cluster recover.
type recoverReport struct {
	DataDir   string          `json:"data_dir"`
	Previous  []recoverServer `json:"previous"`
	Servers   []recoverServer `json:"servers"`
	Recovered bool            `json:"recovered"`
}

type recoverServer struct {
	SiteID   string `json:"site_id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
}

// recoverCluster works on the data directory of a stopped node and never
// calls the admin API.
func (c *ctlRun) recoverCluster(_ context.Context, _ []string) error {
	o := c.opts.cluster
	if o.dataDir == "" {
		return errors.New("missing --data-dir: give the data directory of the stopped node")
	}
	servers, err := parseRecoverPeers(o.peers)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	previous, err := cluster.StoredConfiguration(o.dataDir, logger)
	if err != nil {
		return err
	}
	report := recoverReport{DataDir: o.dataDir, Previous: recoverServersOf(previous.Servers)}
	for _, s := range servers {
		report.Servers = append(report.Servers, recoverServer{SiteID: s.SiteID, Address: s.Address, Suffrage: raft.Voter.String()})
	}

	if o.yes {
		if err := cluster.Recover(o.dataDir, servers, logger); err != nil {
			return err
		}
		report.Recovered = true
	}
	if c.opts.output == "json" {
		if err := writeJSONTo(c.out, report); err != nil {
			return err
		}
	} else if err := printRecoverPlan(c.out, report, servers); err != nil {
		return err
	}
	if !o.yes {
		return errors.New("not confirmed, nothing changed: add --yes to recover")
	}
	return nil
}

func printRecoverPlan(w io.Writer, report recoverReport, servers []cluster.RecoverServer) error {
	fmt.Fprint(w, recoverWarning)
	fmt.Fprintf(w, "\ndata directory: %s\n\n", report.DataDir)
	tw := newTable(w)
	fmt.Fprintln(tw, "CONFIGURATION\tNAME\tSITE ID\tADDRESS\tSUFFRAGE")
	for _, s := range report.Previous {
		fmt.Fprintf(tw, "stored\t-\t%s\t%s\t%s\n", s.SiteID, s.Address, s.Suffrage)
	}
	for i, s := range report.Servers {
		fmt.Fprintf(tw, "recovered\t%s\t%s\t%s\t%s\n", servers[i].Name, s.SiteID, s.Address, s.Suffrage)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if report.Recovered {
		_, err := fmt.Fprintln(w, "\nRaft configuration recovered. Recover every other listed node the same way, then start them.")
		return err
	}
	return nil
}

func recoverServersOf(servers []raft.Server) []recoverServer {
	out := make([]recoverServer, 0, len(servers))
	for _, s := range servers {
		out = append(out, recoverServer{SiteID: string(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String()})
	}
	return out
}

// parseRecoverPeers parses --peers: NAME=SITEID@HOST:PORT entries separated
// by commas. A site id is the content of DATA_DIR/cluster/site-id of that
// node, and ctl cluster status lists it.
func parseRecoverPeers(s string) ([]cluster.RecoverServer, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("missing --peers: list the surviving nodes as NAME=SITEID@HOST:PORT,...")
	}
	var out []cluster.RecoverServer
	for _, item := range splitList(s) {
		name, rest, ok1 := strings.Cut(item, "=")
		site, addr, ok2 := strings.Cut(rest, "@")
		if !ok1 || !ok2 || name == "" || site == "" {
			return nil, fmt.Errorf("peer %q is invalid: write NAME=SITEID@HOST:PORT, e.g. starling-0=0f3c...@starling-0.starling:7947", item)
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			return nil, fmt.Errorf("peer %q: address %q is invalid: give the node's advertised peer address HOST:PORT", item, addr)
		}
		out = append(out, cluster.RecoverServer{Name: name, SiteID: site, Address: addr})
	}
	return out, nil
}
