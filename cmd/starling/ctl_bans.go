package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/starling-mqtt/starling/node"
)

func (c *ctlRun) listBans(ctx context.Context, _ []string) error {
	var bans []node.Ban
	if err := c.api.call(ctx, http.MethodGet, "/api/v1/bans", nil, nil, &bans); err != nil {
		return err
	}
	if c.opts.output == "json" {
		return writeJSONTo(c.out, bans)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tVALUE\tUNTIL\tREASON")
	for _, b := range bans {
		until := "removed"
		if !b.Until.IsZero() {
			until = b.Until.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Kind, b.Value, until, b.Reason)
	}
	return tw.Flush()
}

func (c *ctlRun) addBan(ctx context.Context, args []string) error {
	req := banRequest{Kind: args[0], Value: args[1], For: c.opts.banFor, Reason: c.opts.banReason}
	if err := c.api.call(ctx, http.MethodPut, "/api/v1/bans", nil, req, nil); err != nil {
		return err
	}
	return c.done("%s %s banned; matching connected clients were disconnected", args[0], args[1])
}

func (c *ctlRun) removeBan(ctx context.Context, args []string) error {
	q := url.Values{"kind": {args[0]}, "value": {args[1]}}
	if err := c.api.call(ctx, http.MethodDelete, "/api/v1/bans", q, nil, nil); err != nil {
		return err
	}
	return c.done("ban on %s %s removed", args[0], args[1])
}
