#!/usr/bin/env bash
# Measures the cost of TLS handshakes in Starling against Mosquitto, both
# serving the same certificate and key from `starling certs init` (ECDSA
# P-256). Each connection is a full handshake (the client keeps no session
# cache, so nothing is resumed), an MQTT 3.1.1 CONNECT, its CONNACK and a
# DISCONNECT. CONCURRENCY connections are in progress at once.
#
# It builds bin/starling (or uses STARLING_BIN) and a small load tool from
# the Go source in this file. Then it starts Starling and Mosquitto on their
# own loopback ports with private configurations, and stops both on exit,
# also on error or Ctrl-C. For each cell it runs the brokers in turn,
# Starling, Mosquitto, Starling, ... RUNS times each, so slow drift of the
# machine affects both alike. It prints one markdown table: medians with
# min-max of handshakes per second, broker CPU seconds per 1,000 handshakes
# (utime + stime from /proc/PID/stat) and p99 connect latency, and the ratio
# Starling/Mosquitto. With the defaults it takes under a minute.
#
# Cells: TLS 1.3 and TLS 1.2 with the P-256 group, which both brokers
# support in both versions, and TLS 1.3 with the client's default groups (Go
# offers X25519MLKEM768 and X25519: Starling picks the hybrid post-quantum
# group, Mosquitto on OpenSSL 3.0 picks X25519).
#
# Environment (defaults in brackets):
#   RUNS [3]             runs per cell and broker
#   CONNECTIONS [3000]   connections per run
#   CONCURRENCY [16]     handshakes in progress at once
#   STARLING_PORT [27101], MOSQUITTO_PORT [27102]   loopback TLS ports
#   STARLING_BIN         a starling binary to use instead of building one
#   MOSQUITTO [/usr/sbin/mosquitto]
#   MOSQUITTO_NODELAY [1]  1 adds "set_tcp_nodelay true" to Mosquitto's
#       configuration, which is off by default. Without it each TLS 1.3
#       connection to Mosquitto waited about 40 ms (median 44 ms on a 2-core
#       machine), the length of a delayed ACK, and the rate measured that
#       wait rather than the handshake. TLS 1.2 was not affected.
#
# Needs: go, make, jq, Debian's mosquitto package.
set -euo pipefail

cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-3000}
CONCURRENCY=${CONCURRENCY:-16}
STARLING_PORT=${STARLING_PORT:-27101}
MOSQUITTO_PORT=${MOSQUITTO_PORT:-27102}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
MOSQUITTO_NODELAY=${MOSQUITTO_NODELAY:-1}

die() {
	echo "bench-tls: $*" >&2
	exit 1
}
command -v jq >/dev/null || die "jq is missing: apt-get install jq"
[ -x "$MOSQUITTO" ] || die "$MOSQUITTO is missing: apt-get install mosquitto"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if [ -n "${STARLING_BIN:-}" ]; then
	BIN=$STARLING_BIN
else
	make -s build
	BIN=$PWD/bin/starling
fi

# The load tool is Go with the standard library only, so it builds outside
# the module.
cat >"$TMP/tlsstorm.go" <<'GO'
// tlsstorm opens N MQTT connections over TLS, C at a time. Each one is a
// full TLS handshake (no session resumption), a CONNECT, its CONNACK and a
// DISCONNECT. It prints one JSON line: handshakes per second, latency
// percentiles, failures, the negotiated cipher suite and group, and the
// broker's CPU seconds read from /proc.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8883", "broker TLS address")
	caFile := flag.String("ca", "ca.pem", "CA that signed the broker certificate")
	n := flag.Int("n", 2000, "connections")
	conc := flag.Int("c", 16, "handshakes in progress at once")
	version := flag.String("tls", "1.3", "TLS version: 1.2 or 1.3")
	curve := flag.String("curve", "p256", "key exchange group: p256, x25519 or default (Go's list)")
	src := flag.String("src", "127.3.0", "first three octets of the source addresses; the fourth cycles 1..250")
	pid := flag.Int("pid", 0, "broker PID whose CPU time to read from /proc")
	label := flag.String("label", "", "label copied to the output")
	flag.Parse()

	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		fail(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		fail(fmt.Errorf("no certificate in %s", *caFile))
	}
	host, _, _ := net.SplitHostPort(*addr)
	cfg := &tls.Config{RootCAs: pool, ServerName: host}
	switch *version {
	case "1.2":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	case "1.3":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	default:
		fail(fmt.Errorf("-tls %q: want 1.2 or 1.3", *version))
	}
	switch *curve {
	case "p256":
		cfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
	case "x25519":
		cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	case "default":
	default:
		fail(fmt.Errorf("-curve %q: want p256, x25519 or default", *curve))
	}

	cpu0 := cpuSeconds(*pid)
	var next, failures atomic.Int64
	var firstErr, cipher, group atomic.Value
	lat := make([]time.Duration, *n)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				t0 := time.Now()
				st, err := connect(*addr, fmt.Sprintf("%s.%d", *src, 1+i%250), cfg, i)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					lat[i] = -1
					continue
				}
				lat[i] = time.Since(t0)
				cipher.Store(tls.CipherSuiteName(st.CipherSuite))
				group.Store(st.CurveID.String())
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	cpu := cpuSeconds(*pid) - cpu0

	ok := slices.DeleteFunc(lat, func(d time.Duration) bool { return d < 0 })
	slices.Sort(ok)
	pct := func(p float64) float64 {
		if len(ok) == 0 {
			return 0
		}
		return float64(ok[int(p*float64(len(ok)-1))].Microseconds()) / 1000
	}
	out := map[string]any{
		"label": *label, "tls": *version, "connections": *n, "concurrency": *conc,
		"ok": len(ok), "failures": failures.Load(), "seconds": wall.Seconds(),
		"handshakes_per_s": float64(len(ok)) / wall.Seconds(),
		"p50_ms": pct(0.50), "p99_ms": pct(0.99),
		"broker_cpu_s": cpu, "broker_cpu_s_per_1000": cpu / float64(max(len(ok), 1)) * 1000,
		"cipher": cipher.Load(), "group": group.Load(),
	}
	if e := firstErr.Load(); e != nil {
		out["first_error"] = e
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

// connect makes one connection from source address src: TCP, a full TLS
// handshake, CONNECT, CONNACK and DISCONNECT.
func connect(addr, src string, cfg *tls.Config, i int) (tls.ConnectionState, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		return tls.ConnectionState{}, fmt.Errorf("handshake: %w", err)
	}
	id := "tlsstorm-" + strconv.Itoa(i)
	// CONNECT: MQTT 3.1.1, clean session, keep alive 30 s.
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, byte(len(id))}, id...)
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		return tls.ConnectionState{}, fmt.Errorf("write CONNECT: %w", err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		return tls.ConnectionState{}, fmt.Errorf("read CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		return tls.ConnectionState{}, fmt.Errorf("CONNACK % x", ack)
	}
	st := c.ConnectionState()
	if _, err := c.Write([]byte{0xE0, 0}); err != nil {
		return tls.ConnectionState{}, fmt.Errorf("write DISCONNECT: %w", err)
	}
	return st, c.Close()
}

// cpuSeconds returns the user plus system CPU time of pid, 0 when pid is 0.
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		fail(err)
	}
	// The fields after the command name, which is in parentheses and may
	// contain spaces: utime and stime are the 12th and 13th of them.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // clock ticks: USER_HZ is 100 on Linux
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tlsstorm:", err)
	os.Exit(1)
}
GO
go build -o "$TMP/tlsstorm" "$TMP/tlsstorm.go"

"$BIN" certs init "$TMP/certs" --hosts 127.0.0.1 >/dev/null
CERT=$TMP/certs/server.pem
KEY=$TMP/certs/server-key.pem

# A loopback listener admits anonymous clients. The connection rate limit
# (1,000 per second by default) is raised so that it does not cap the run.
cat >"$TMP/starling.yaml" <<EOF
listeners:
  - url: tls://127.0.0.1:$STARLING_PORT
    max_conn_rate: 1000000
    tls: {cert_file: $CERT, key_file: $KEY}
EOF
"$BIN" serve --config "$TMP/starling.yaml" --data-dir "$TMP/data" --log-level warn >"$TMP/starling.log" 2>&1 &
STARLING_PID=$!
PIDS+=("$STARLING_PID")

{
	echo "per_listener_settings false"
	echo "allow_anonymous true"
	echo "persistence false"
	echo "log_dest stderr"
	echo "log_type error"
	[ "$MOSQUITTO_NODELAY" = 1 ] && echo "set_tcp_nodelay true"
	# Mosquitto drops root privileges to the user mosquitto, which cannot
	# read a key file of mode 0600 owned by root.
	[ "$(id -u)" = 0 ] && echo "user root"
	echo "listener $MOSQUITTO_PORT 127.0.0.1"
	echo "certfile $CERT"
	echo "keyfile $KEY"
} >"$TMP/mosquitto.conf"
"$MOSQUITTO" -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
MOSQUITTO_PID=$!
PIDS+=("$MOSQUITTO_PID")

ready() {
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
ready "$STARLING_PORT" || { cat "$TMP/starling.log" >&2; die "Starling did not listen on $STARLING_PORT"; }
ready "$MOSQUITTO_PORT" || { cat "$TMP/mosquitto.log" >&2; die "Mosquitto did not listen on $MOSQUITTO_PORT"; }

# storm runs one measurement; its JSON line goes to $TMP/CELL.BROKER.RUN.json.
# Run K connects from source addresses 127.3.K.1-250, so TIME_WAIT sockets
# of earlier runs never use up the ephemeral ports.
STORMS=0
storm() { # cell tls curve broker run
	local port pid src
	if [ "$4" = starling ]; then port=$STARLING_PORT pid=$STARLING_PID; else port=$MOSQUITTO_PORT pid=$MOSQUITTO_PID; fi
	STORMS=$((STORMS + 1))
	src=127.3.$((STORMS % 250))
	"$TMP/tlsstorm" -addr "127.0.0.1:$port" -ca "$TMP/certs/ca.pem" -n "$CONNECTIONS" -c "$CONCURRENCY" \
		-tls "$2" -curve "$3" -pid "$pid" -src "$src" -label "$4" >"$TMP/$1.$4.$5.json"
	jq -e '.failures == 0' "$TMP/$1.$4.$5.json" >/dev/null ||
		die "$4 $1 run $5 had failures: $(jq -c . "$TMP/$1.$4.$5.json")"
}

# Each cell: name, TLS version, group flag of the load tool, table label.
CELLS=("tls13-p256 1.3 p256 TLS 1.3, P-256" "tls12-p256 1.2 p256 TLS 1.2, P-256" "tls13-default 1.3 default TLS 1.3, client's default groups")
for spec in "${CELLS[@]}"; do
	read -r cell version curve _ <<<"$spec"
	for run in $(seq 1 "$RUNS"); do
		storm "$cell" "$version" "$curve" starling "$run"
		storm "$cell" "$version" "$curve" mosquitto "$run"
		echo "bench-tls: $cell run $run done" >&2
	done
done

# stats prints "median min max" of one field over a broker's runs of a cell.
stats() { # cell broker field
	jq -s "[.[].$3] | sort | [.[(length - 1) / 2 | floor], .[0], .[-1]] | map(tostring) | join(\" \")" -r \
		"$TMP/$1.$2".*.json
}
fmt() { awk -v d="$2" '{ printf "%.*f (%.*f–%.*f)", d, $1, d, $2, d, $3 }' <<<"$1"; }
ratio() { awk '{ split($0, a, " "); printf "%.2f", a[1] / a[4] }' <<<"$1 $2"; }

echo
echo "| cell and metric | Starling median (min–max) | Mosquitto median (min–max) | Starling/Mosquitto |"
echo "|---|---|---|---|"
for spec in "${CELLS[@]}"; do
	read -r cell version curve label <<<"$spec"
	for metric in "handshakes_per_s:handshakes/s:0" "broker_cpu_s_per_1000:broker CPU s per 1000 handshakes:3" "p99_ms:p99 connect latency ms:1"; do
		IFS=: read -r field name digits <<<"$metric"
		s=$(stats "$cell" starling "$field")
		m=$(stats "$cell" mosquitto "$field")
		echo "| $label: $name | $(fmt "$s" "$digits") | $(fmt "$m" "$digits") | $(ratio "$s" "$m") |"
	done
done
echo
for spec in "${CELLS[@]}"; do
	read -r cell version curve label <<<"$spec"
	echo "$label: $(for b in starling mosquitto; do jq -r '"\(.label) \(.group) \(.cipher)"' "$TMP/$cell.$b.1.json"; done | paste -sd ';' | sed 's/;/; /')."
done
echo "$RUNS runs per cell and broker, $CONNECTIONS connections per run, $CONCURRENCY at a time; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
