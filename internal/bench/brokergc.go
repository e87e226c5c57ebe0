package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// brokerGCTimeout bounds one POST to Config.BrokerGCURL.
const brokerGCTimeout = 30 * time.Second

// postBrokerGC sends a POST with an empty body to url, which makes the broker
// collect its garbage and return free memory to the operating system. It
// sends that one request only, because it follows no redirect and uses no
// proxy. A reply other than 2xx is an error that quotes the first line of
// the reply's body.
func postBrokerGC(ctx context.Context, url string) error {
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: brokerGCTimeout,
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, http.NoBody)
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		first, _, _ := strings.Cut(string(bytes.TrimSpace(body)), "\n")
		return fmt.Errorf("POST %s: %s: %.200q", url, resp.Status, first)
	}
	return nil
}
