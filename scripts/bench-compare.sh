#!/usr/bin/env bash
# Measures Starling against Mosquitto on this machine with `starling bench`
# and writes the results to docs/benchmarks.md.
#
# It builds bin/starling and starts a fresh Starling node and a fresh
# Mosquitto, each on its own loopback port with its own temporary data and
# configuration. It runs every cell RUNS times per broker and alternates the
# brokers (Starling, Mosquitto, Starling, ...), so that slow drift of the
# machine affects both alike. It prints one markdown table of medians, min-max and
# the ratio Starling/Mosquitto, and rewrites OUT above its notes marker:
# everything from the marker line on is kept as it was.
#
# The brokers it started are stopped on exit, also on error or Ctrl-C. With
# the defaults the whole script takes about 5 minutes (4 cells, 2 brokers,
# 3 runs of 10 s each, plus the build).
#
# Environment (defaults in brackets):
#   RUNS [3]             runs per cell and broker
#   DURATION [10s]       publishing time of each run
#   CLIENTS [10]         publisher/subscriber pairs
#   RATE [2000]          total msg/s of the fixed-rate cells
#   STARLING_PORT [18883], MOSQUITTO_PORT [18884]   loopback ports
#   MOSQUITTO [/usr/sbin/mosquitto]
#   MOSQUITTO_NODELAY [0]  1 adds "set_tcp_nodelay true" to Mosquitto's configuration
#   OUT [docs/benchmarks.md]
#
# Needs: go, make, jq, Debian's mosquitto package.
set -euo pipefail

cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-10}
RATE=${RATE:-2000}
STARLING_PORT=${STARLING_PORT:-18883}
MOSQUITTO_PORT=${MOSQUITTO_PORT:-18884}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
MOSQUITTO_NODELAY=${MOSQUITTO_NODELAY:-0}
OUT=${OUT:-docs/benchmarks.md}
MARKER='<!-- notes: everything below this line is kept by scripts/bench-compare.sh -->'

die() {
	echo "bench-compare: $*" >&2
	exit 1
}

command -v jq >/dev/null || die "jq is missing: apt-get install jq"
[ -x "$MOSQUITTO" ] || die "$MOSQUITTO is missing: apt-get install mosquitto, or set MOSQUITTO"

TMP=$(mktemp -d)
STARLING_PID=
MOSQUITTO_PID=

# stop_broker sends SIGTERM to one broker started here, waits up to 10 s
# for it to exit, and then sends SIGKILL.
stop_broker() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	stop_broker "$STARLING_PID"
	stop_broker "$MOSQUITTO_PID"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_listening waits up to 10 s until something accepts TCP connections
# on 127.0.0.1:PORT. It fails when process PID exits first or time runs out.
wait_listening() {
	local port=$1 pid=$2 name=$3
	for _ in $(seq 100); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench-compare: $name exited during startup; its log follows" >&2
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench-compare: $name does not listen on 127.0.0.1:$port after 10 s; its log follows" >&2
	return 1
}

echo "== build" >&2
make build >&2
BIN=bin/starling

echo "== start brokers" >&2
STARLING_CMD="$BIN serve --listen tcp://127.0.0.1:$STARLING_PORT --data-dir $TMP/starling-data --log-level warn"
$STARLING_CMD >"$TMP/starling.log" 2>&1 &
STARLING_PID=$!
wait_listening "$STARLING_PORT" "$STARLING_PID" starling || { cat "$TMP/starling.log" >&2; exit 1; }

MOSQUITTO_CONF="listener $MOSQUITTO_PORT 127.0.0.1
allow_anonymous true
persistence false"
if [ "$MOSQUITTO_NODELAY" = 1 ]; then
	MOSQUITTO_CONF="$MOSQUITTO_CONF
set_tcp_nodelay true"
fi
printf '%s\n' "$MOSQUITTO_CONF" >"$TMP/mosquitto.conf"
MOSQUITTO_CMD="$MOSQUITTO -c $TMP/mosquitto.conf"
$MOSQUITTO_CMD >"$TMP/mosquitto.log" 2>&1 &
MOSQUITTO_PID=$!
wait_listening "$MOSQUITTO_PORT" "$MOSQUITTO_PID" mosquitto || { cat "$TMP/mosquitto.log" >&2; exit 1; }

# The cells: name, then the flags that differ between cells.
CELLS=(
	"qos0-saturating|--qos 0"
	"qos1-saturating|--qos 1"
	"qos0-rate|--qos 0 --rate $RATE"
	"qos1-rate|--qos 1 --rate $RATE"
)
COMMON="--scenario pairs -n $CLIENTS --size 64 --inflight 16 --duration $DURATION --clean=true --protocol 3.1.1 -o json --progress=false"

# run_one runs one cell against one broker and stores the JSON result.
run_one() {
	local cell=$1 flags=$2 broker=$3 run=$4 port pid
	if [ "$broker" = starling ]; then
		port=$STARLING_PORT pid=$STARLING_PID
	else
		port=$MOSQUITTO_PORT pid=$MOSQUITTO_PID
	fi
	kill -0 "$pid" 2>/dev/null || die "$broker is no longer running before $cell run $run"
	echo "   $cell $broker run $run" >&2
	# shellcheck disable=SC2086 # flags are word lists on purpose
	if ! $BIN bench --addr "127.0.0.1:$port" $COMMON $flags --broker-pid "$pid" \
		>"$TMP/$cell.$broker.$run.json" 2>"$TMP/$cell.$broker.$run.err"; then
		echo "bench-compare: $cell against $broker, run $run, reported errors:" >&2
		cat "$TMP/$cell.$broker.$run.err" >&2
		jq -r '.errors[]?' "$TMP/$cell.$broker.$run.json" >&2 || true
	fi
}

echo "== run ($RUNS runs per cell and broker, $DURATION each)" >&2
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for entry in "${CELLS[@]}"; do
	cell=${entry%%|*}
	flags=${entry#*|}
	for run in $(seq "$RUNS"); do
		run_one "$cell" "$flags" starling "$run"
		run_one "$cell" "$flags" mosquitto "$run"
	done
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# The brokers' logs go to stderr, because a broker that dropped messages or
# clients logs it there.
for broker in starling mosquitto; do
	if [ -s "$TMP/$broker.log" ]; then
		echo "bench-compare: $broker log ($(wc -l <"$TMP/$broker.log") lines, first 20):" >&2
		head -n 20 "$TMP/$broker.log" >&2
	fi
done

# stats prints "median min max" of a jq expression over the runs of one
# cell and broker. With an even number of runs the median is the mean of
# the middle two.
stats() {
	local cell=$1 broker=$2 expr=$3
	jq -s "[.[] | $expr] | sort | {n: length, v: .} |
		if .n == 0 then \"- - -\" else
		\"\(if .n % 2 == 1 then .v[(.n - 1) / 2] else (.v[.n / 2 - 1] + .v[.n / 2]) / 2 end) \(.v[0]) \(.v[-1])\" end" -r \
		"$TMP/$cell.$broker".*.json 2>/dev/null || echo "- - -"
}

# number formats value with the printf format, or prints "-" for a missing value.
number() {
	local format=$1 value=$2
	if [ "$value" = - ]; then
		echo -
	else
		# shellcheck disable=SC2059 # the format is one of the literals below
		printf "$format" "$value"
	fi
}

# row prints one table row: label, cell, jq expression of the metric, and
# the printf format of its values.
row() {
	local label=$1 cell=$2 expr=$3 format=$4
	local s_med s_min s_max m_med m_min m_max ratio=-
	read -r s_med s_min s_max <<<"$(stats "$cell" starling "$expr")"
	read -r m_med m_min m_max <<<"$(stats "$cell" mosquitto "$expr")"
	if [ "$s_med" != - ] && [ "$m_med" != - ]; then
		ratio=$(awk -v a="$s_med" -v b="$m_med" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }')
	fi
	printf '| %s | %s (%s–%s) | %s (%s–%s) | %s |\n' "$label" \
		"$(number "$format" "$s_med")" "$(number "$format" "$s_min")" "$(number "$format" "$s_max")" \
		"$(number "$format" "$m_med")" "$(number "$format" "$m_min")" "$(number "$format" "$m_max")" "$ratio"
}

TABLE=$(
	echo "| cell and metric | Starling median (min–max) | Mosquitto median (min–max) | Starling/Mosquitto |"
	echo "|---|---|---|---|"
	row "QoS 0 saturating: received msg/s" qos0-saturating .receive_rate "%.0f"
	row "QoS 0 saturating: p99 latency ms" qos0-saturating ".latency_us.p99 / 1000" "%.2f"
	row "QoS 0 saturating: broker CPU s per million msgs" qos0-saturating .broker.cpu_seconds_per_million "%.2f"
	row "QoS 0 saturating: lost msgs" qos0-saturating .lost "%.0f"
	row "QoS 1 saturating: received msg/s" qos1-saturating .receive_rate "%.0f"
	row "QoS 1 saturating: p99 latency ms" qos1-saturating ".latency_us.p99 / 1000" "%.2f"
	row "QoS 1 saturating: broker CPU s per million msgs" qos1-saturating .broker.cpu_seconds_per_million "%.2f"
	row "QoS 1 saturating: lost msgs" qos1-saturating .lost "%.0f"
	row "QoS 0 at $RATE msg/s: p50 latency ms" qos0-rate ".latency_us.p50 / 1000" "%.3f"
	row "QoS 0 at $RATE msg/s: p99 latency ms" qos0-rate ".latency_us.p99 / 1000" "%.3f"
	row "QoS 1 at $RATE msg/s: p50 latency ms" qos1-rate ".latency_us.p50 / 1000" "%.3f"
	row "QoS 1 at $RATE msg/s: p99 latency ms" qos1-rate ".latency_us.p99 / 1000" "%.3f"
	row "QoS 1 at $RATE msg/s: broker CPU s per million msgs" qos1-rate .broker.cpu_seconds_per_million "%.2f"
	row "QoS 1 saturating: broker RSS after the run, MiB" qos1-saturating ".broker.rss_after_bytes / 1048576" "%.1f"
)
echo "$TABLE"

# Errors of any run go into the document too, so that a bad run is not
# hidden behind a median.
ERRORS=$(cat "$TMP"/*.json | jq -r 'select(.errors != null) | "\(.scenario) QoS \(.qos): \(.errors | join("; "))"' 2>/dev/null || true)

echo "== write $OUT" >&2
NOTES=""
if [ -f "$OUT" ] && grep -qF "$MARKER" "$OUT"; then
	NOTES=$(awk -v marker="$MARKER" 'found || $0 == marker { found = 1; print }' "$OUT")
fi

COMMIT=$(git rev-parse --short HEAD)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	COMMIT="$COMMIT (with uncommitted changes)"
fi
CPU_MODEL=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
MEM_GIB=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
MOSQUITTO_VERSION=$("$MOSQUITTO" -h 2>&1 | head -n1 || true)

{
	echo "# Benchmarks"
	echo
	echo "Starling against Mosquitto on one machine, measured with \`starling bench\`"
	echo "by \`scripts/bench-compare.sh\`. Everything above the notes marker is"
	echo "generated; rerun the script to refresh it."
	echo
	echo "## Results"
	echo
	echo "$TABLE"
	echo
	echo "Medians of $RUNS runs per cell and broker; min–max in brackets. Latency is"
	echo "from the send time in the payload to the subscriber's read. Received"
	echo "msg/s counts first deliveries during the publishing phase. Broker CPU is"
	echo "utime+stime of the broker process from /proc between the start of"
	echo "publishing and the end of the drain phase. Lost is the sum over the 10"
	echo "subscribers of the messages sent by their publisher minus those received."
	if [ -n "$ERRORS" ]; then
		echo
		echo "Runs that reported errors:"
		echo
		echo '```'
		echo "$ERRORS"
		echo '```'
	fi
	echo
	echo "## Machine"
	echo
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- Commit: $COMMIT"
	echo "- CPU: $(nproc) cores, $CPU_MODEL"
	echo "- Memory: $MEM_GIB GiB"
	echo "- Kernel: $(uname -sr)"
	echo "- $(go version)"
	echo "- $MOSQUITTO_VERSION"
	echo "- Load average (1, 5, 15 min) before the runs: $LOAD_BEFORE; after: $LOAD_AFTER"
	echo
	echo "The load generator and the broker run on the same machine and share its"
	echo "$(nproc) cores, so every number includes the competition between them. The"
	echo "JSON of each run also reports the tool's own CPU time."
	echo
	echo "## Method"
	echo
	echo "Each broker is started once, fresh, and gets all its runs; the runs"
	echo "alternate between the brokers. Every cell is $CLIENTS publisher/subscriber"
	echo "pairs (publisher i to topic bench/i, subscribed by subscriber i only),"
	echo "64-byte payloads, clean sessions, MQTT 3.1.1, $DURATION of publishing."
	echo "Saturating cells allow 16 unconfirmed messages per publisher: QoS 1"
	echo "waits for PUBACKs, and QoS 0 sends a PINGREQ after every 8 messages and"
	echo "counts a batch as confirmed at its PINGRESP. Fixed-rate cells publish"
	echo "$RATE msg/s in total."
	echo
	echo "Brokers:"
	echo
	echo '```sh'
	echo "make build"
	echo "${STARLING_CMD//$TMP/\$TMP}"
	echo "${MOSQUITTO_CMD//$TMP/\$TMP}"
	echo '```'
	echo
	echo "with this Mosquitto configuration:"
	echo
	echo '```'
	echo "$MOSQUITTO_CONF"
	echo '```'
	echo
	echo "Runs, each repeated $RUNS times per broker with PORT and PID of that broker:"
	echo
	echo '```sh'
	for entry in "${CELLS[@]}"; do
		echo "bin/starling bench --addr 127.0.0.1:PORT $COMMON ${entry#*|} --broker-pid PID"
	done
	echo '```'
	echo
	echo "The whole comparison:"
	echo
	echo '```sh'
	echo "RUNS=$RUNS DURATION=$DURATION CLIENTS=$CLIENTS RATE=$RATE MOSQUITTO_NODELAY=$MOSQUITTO_NODELAY scripts/bench-compare.sh"
	echo '```'
	echo
	if [ -n "$NOTES" ]; then
		echo "$NOTES"
	else
		echo "$MARKER"
		echo
		echo "## Notes"
		echo
		echo "(Observations about these results, kept across reruns.)"
	fi
} >"$OUT"
echo "bench-compare: wrote $OUT" >&2
