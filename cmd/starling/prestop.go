package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// serviceAccountDir is the directory where Kubernetes mounts a pod's
// service account.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// runPrestop is the Helm chart's preStop hook. It tells a scale-down from a
// restart: the pod's ordinal at or above the StatefulSet's replicas means
// the pod goes away for good, and the node leaves the cluster through its
// admin API (POST /api/v1/node/leave); otherwise it returns at once and the
// node only shuts down, which is not a leave. When
// the StatefulSet cannot be read it assumes a restart and exits 1: a missed
// leave costs a reap later, a false one would purge durable routes.
func runPrestop(args []string) int {
	fs := flag.NewFlagSet("prestop", flag.ContinueOnError)
	sts := fs.String("statefulset", "", "name of the pod's StatefulSet")
	addr := fs.String("http", envOr("STARLING_HTTP", "127.0.0.1:8080"), "admin endpoint of the node, HOST:PORT")
	timeout := fs.Duration("timeout", 60*time.Second, "how long the leave may take")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *sts == "" {
		fmt.Fprintln(os.Stderr, "starling prestop: --statefulset is required")
		return 2
	}
	pod := os.Getenv("POD_NAME")
	ordinal, err := podOrdinal(pod)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling prestop:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	replicas, err := statefulSetReplicas(ctx, *sts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling prestop: cannot read the StatefulSet; treating this as a restart:", err)
		return 1
	}
	if ordinal < replicas {
		fmt.Fprintf(os.Stderr, "starling prestop: %s is ordinal %d of %d replicas: a restart, not a leave\n", pod, ordinal, replicas)
		return 0
	}
	fmt.Fprintf(os.Stderr, "starling prestop: %s is ordinal %d beyond %d replicas: leaving the cluster\n", pod, ordinal, replicas)
	if err := requestLeave(ctx, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "starling prestop:", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "starling prestop: left the cluster")
	return 0
}

// podOrdinal returns the number after the last '-' of a StatefulSet pod name.
func podOrdinal(pod string) (int, error) {
	i := strings.LastIndexByte(pod, '-')
	if pod == "" || i < 0 {
		return 0, fmt.Errorf("POD_NAME = %q is not a StatefulSet pod name (NAME-ORDINAL)", pod)
	}
	n, err := strconv.Atoi(pod[i+1:])
	if err != nil || n < 0 {
		return 0, fmt.Errorf("POD_NAME = %q does not end in an ordinal", pod)
	}
	return n, nil
}

// statefulSetReplicas reads spec.replicas of the pod's StatefulSet from the
// Kubernetes API with the pod's service account.
func statefulSetReplicas(ctx context.Context, name string) (int, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return 0, errors.New("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not in a pod")
	}
	token, err := os.ReadFile(filepath.Join(serviceAccountDir, "token"))
	if err != nil {
		return 0, fmt.Errorf("read the service account token: %w", err)
	}
	ns, err := os.ReadFile(filepath.Join(serviceAccountDir, "namespace"))
	if err != nil {
		return 0, fmt.Errorf("read the namespace: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(serviceAccountDir, "ca.crt"))
	if err != nil {
		return 0, fmt.Errorf("read the cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return 0, errors.New("the cluster CA file contains no PEM certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	url := fmt.Sprintf("https://%s/apis/apps/v1/namespaces/%s/statefulsets/%s",
		net.JoinHostPort(host, port), strings.TrimSpace(string(ns)), name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET statefulset %s: %s", name, resp.Status)
	}
	return replicasOf(body)
}

// replicasOf reads spec.replicas from a StatefulSet in JSON; a missing
// field means 1, as the API defaults it.
func replicasOf(body []byte) (int, error) {
	var sts struct {
		Spec struct {
			Replicas *int `json:"replicas"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &sts); err != nil {
		return 0, fmt.Errorf("decode the StatefulSet: %w", err)
	}
	if sts.Spec.Replicas == nil {
		return 1, nil
	}
	return *sts.Spec.Replicas, nil
}

// requestLeave asks the node to leave the cluster and waits for the answer.
func requestLeave(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/node/leave", nil)
	if err != nil {
		return err
	}
	if token, err := readAdminToken(); err != nil {
		return err
	} else if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST /api/v1/node/leave: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("POST /api/v1/node/leave: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
