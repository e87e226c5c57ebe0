#!/usr/bin/env bash
# Measures Starling against Mosquitto on this machine with `starling bench`
# and writes the results to docs/benchmarks.md.
#
# It builds bin/starling and starts four fresh brokers, each on its own
# loopback port with its own temporary data and configuration: Starling
# with its default durability (sync), Starling with --durability relaxed,
# Mosquitto without persistence and Mosquitto with "persistence true". Each
# cell compares one Starling with one Mosquitto. It runs every cell RUNS
# times per broker and alternates the brokers (Starling, Mosquitto,
# Starling, ...), so that slow drift of the machine affects both alike. It
# prints one markdown table of medians, min-max and the ratio
# Starling/Mosquitto, and rewrites OUT above its notes marker: everything
# from the marker line on is kept as it was.
#
# The brokers it started are stopped on exit, also on error or Ctrl-C. With
# the defaults the whole script takes about 11 minutes (12 cells, 3 runs
# per broker, runs of 6 s of publishing or up to 5,000 connections, plus
# the build).
#
# Environment (defaults in brackets):
#   RUNS [3]             runs per cell and broker
#   DURATION [6s]        publishing time of each message run
#   CLIENTS [10]         publisher/subscriber pairs, and publishers of the shared cell
#   SHARED_SUBS [4]      members of the shared subscription group
#   RATE [2000]          total msg/s of the fixed-rate cells
#   STORM [2000]         connections of the storm cell
#   IDLE [5000]          connections of the idle cell
#   HOLD [5s]            how long the idle connections stay open
#   STARLING_PORT [18883], MOSQUITTO_PORT [18884]   loopback ports; the
#       relaxed Starling and the persistent Mosquitto use the next two
#       (STARLING_PORT+2 and MOSQUITTO_PORT+2)
#   MOSQUITTO [/usr/sbin/mosquitto]
#   MOSQUITTO_NODELAY [0]  1 adds "set_tcp_nodelay true" to Mosquitto's configuration
#   OUT [docs/benchmarks.md]
#
# Needs: go, make, jq, Debian's mosquitto package.
set -euo pipefail

cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-6s}
CLIENTS=${CLIENTS:-10}
SHARED_SUBS=${SHARED_SUBS:-4}
RATE=${RATE:-2000}
STORM=${STORM:-2000}
IDLE=${IDLE:-5000}
HOLD=${HOLD:-5s}
STARLING_PORT=${STARLING_PORT:-18883}
MOSQUITTO_PORT=${MOSQUITTO_PORT:-18884}
RELAXED_PORT=$((STARLING_PORT + 2))
PERSIST_PORT=$((MOSQUITTO_PORT + 2))
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
# PIDS maps a broker name (starling, relaxed, mosquitto, persist) to the PID
# of the process started here, PORTS to its port and CMDS to its command.
declare -A PIDS=() PORTS=() CMDS=()

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
	local name
	for name in "${!PIDS[@]}"; do
		stop_broker "${PIDS[$name]}"
	done
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

# start_broker starts one broker with the command line CMD, records its PID
# and port, and waits until it listens.
start_broker() {
	local name=$1 port=$2 cmd=$3
	# shellcheck disable=SC2086 # the command line is a word list on purpose
	$cmd >>"$TMP/$name.log" 2>&1 &
	PIDS[$name]=$!
	PORTS[$name]=$port
	CMDS[$name]=$cmd
	wait_listening "$port" "${PIDS[$name]}" "$name" || { cat "$TMP/$name.log" >&2; exit 1; }
}

# The default listener admits 1,000 new connections per second with a burst
# of 2,000, which would cap the storm cell, so both Starlings raise it.
starling_conf() {
	local port=$1
	printf 'listeners:\n  - url: tcp://127.0.0.1:%s\n    max_conn_rate: 100000\n' "$port"
}
starling_conf "$STARLING_PORT" >"$TMP/starling.yaml"
starling_conf "$RELAXED_PORT" >"$TMP/relaxed.yaml"
STARLING_CMD="$BIN serve --config $TMP/starling.yaml --data-dir $TMP/starling-data --log-level warn"
RELAXED_CMD="$BIN serve --config $TMP/relaxed.yaml --data-dir $TMP/relaxed-data --durability relaxed --log-level warn"
start_broker starling "$STARLING_PORT" "$STARLING_CMD"
start_broker relaxed "$RELAXED_PORT" "$RELAXED_CMD"

mosquitto_conf() {
	local port=$1 persistence=$2
	echo "listener $port 127.0.0.1"
	echo "allow_anonymous true"
	if [ "$persistence" = true ]; then
		echo "persistence true"
		echo "persistence_location $TMP/mosquitto-persist/"
	else
		echo "persistence false"
	fi
	if [ "$MOSQUITTO_NODELAY" = 1 ]; then
		echo "set_tcp_nodelay true"
	fi
}
mkdir -p "$TMP/mosquitto-persist"
mosquitto_conf "$MOSQUITTO_PORT" false >"$TMP/mosquitto.conf"
mosquitto_conf "$PERSIST_PORT" true >"$TMP/persist.conf"
MOSQUITTO_CMD="$MOSQUITTO -c $TMP/mosquitto.conf"
PERSIST_CMD="$MOSQUITTO -c $TMP/persist.conf"
start_broker mosquitto "$MOSQUITTO_PORT" "$MOSQUITTO_CMD"
start_broker persist "$PERSIST_PORT" "$PERSIST_CMD"

# The cells: name, the Starling and the Mosquitto it compares, then the
# flags of the run. Every message cell uses 64-byte payloads, MQTT 3.1.1
# and 16 unconfirmed messages per publisher.
# The persistent sessions stay subscribed to their topics after a run, so
# the persistent cells use their own topics and client identifiers: on
# bench/i they would get a queue of every later cell's messages.
MSG="--size 64 --inflight 16 --duration $DURATION --protocol 3.1.1"
PAIRS="--scenario pairs -n $CLIENTS $MSG"
KEPT="--clean=false --topic-prefix persist --client-prefix starling-bench-persist"
CELLS=(
	"qos0-saturating|starling|mosquitto|$PAIRS --qos 0 --clean=true"
	"qos1-saturating|starling|mosquitto|$PAIRS --qos 1 --clean=true"
	"qos1-persistent|starling|persist|$PAIRS --qos 1 $KEPT"
	"qos1-relaxed|relaxed|persist|$PAIRS --qos 1 $KEPT"
	"qos0-rate|starling|mosquitto|$PAIRS --qos 0 --clean=true --rate $RATE"
	"qos1-rate|starling|mosquitto|$PAIRS --qos 1 --clean=true --rate $RATE"
	"qos1-persistent-rate|starling|persist|$PAIRS --qos 1 $KEPT --rate $RATE"
	"qos1-relaxed-rate|relaxed|persist|$PAIRS --qos 1 $KEPT --rate $RATE"
	"shared|starling|mosquitto|--scenario shared -n $CLIENTS --subs $SHARED_SUBS $MSG --qos 1 --clean=true"
	"storm|starling|mosquitto|--scenario storm -n $STORM --parallel 64 --duration 60s"
	"idle|starling|mosquitto|--scenario idle -n $IDLE --parallel 64 --duration 60s --hold $HOLD"
)
COMMON="-o json --progress=false"
declare -A CELL_A=() CELL_B=()
for entry in "${CELLS[@]}"; do
	IFS='|' read -r cell a b _ <<<"$entry"
	CELL_A[$cell]=$a
	CELL_B[$cell]=$b
done

# restart_broker stops one broker and starts it again with the same command
# and data.
restart_broker() {
	local name=$1
	stop_broker "${PIDS[$name]}"
	start_broker "$name" "${PORTS[$name]}" "${CMDS[$name]}"
}

# run_one runs one cell against one broker and stores the JSON result. The
# idle cell gets a freshly started broker for every run: a broker that
# already held and freed many connections reuses that memory, which would
# hide most of the growth the cell measures.
run_one() {
	local cell=$1 flags=$2 broker=$3 run=$4
	if [ "$cell" = idle ]; then
		restart_broker "$broker"
	fi
	local port=${PORTS[$broker]} pid=${PIDS[$broker]}
	kill -0 "$pid" 2>/dev/null || die "$broker is no longer running before $cell run $run"
	echo "   $cell $broker run $run" >&2
	# shellcheck disable=SC2086 # flags are word lists on purpose
	if ! $BIN bench --addr "127.0.0.1:$port" $flags $COMMON --broker-pid "$pid" \
		>"$TMP/$cell.$broker.$run.json" 2>"$TMP/$cell.$broker.$run.err"; then
		echo "bench-compare: $cell against $broker, run $run, reported errors:" >&2
		cat "$TMP/$cell.$broker.$run.err" >&2
		jq -r '.errors[]?' "$TMP/$cell.$broker.$run.json" >&2 || true
	fi
}

echo "== run ($RUNS runs per cell and broker)" >&2
START_SECONDS=$SECONDS
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for entry in "${CELLS[@]}"; do
	IFS='|' read -r cell a b flags <<<"$entry"
	for run in $(seq "$RUNS"); do
		run_one "$cell" "$flags" "$a" "$run"
		run_one "$cell" "$flags" "$b" "$run"
	done
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
RUN_MINUTES=$(awk -v s=$((SECONDS - START_SECONDS)) 'BEGIN { printf "%.1f", s / 60 }')

# The brokers' logs go to stderr, because a broker that dropped messages or
# clients logs it there.
for broker in starling relaxed mosquitto persist; do
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
	read -r s_med s_min s_max <<<"$(stats "$cell" "${CELL_A[$cell]}" "$expr")"
	read -r m_med m_min m_max <<<"$(stats "$cell" "${CELL_B[$cell]}" "$expr")"
	if [ "$s_med" != - ] && [ "$m_med" != - ]; then
		ratio=$(awk -v a="$s_med" -v b="$m_med" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }')
	fi
	printf '| %s | %s (%s–%s) | %s (%s–%s) | %s |\n' "$label" \
		"$(number "$format" "$s_med")" "$(number "$format" "$s_min")" "$(number "$format" "$s_max")" \
		"$(number "$format" "$m_med")" "$(number "$format" "$m_min")" "$(number "$format" "$m_max")" "$ratio"
}

CPU=".broker.cpu_seconds_per_million"
P99=".latency_us.p99 / 1000"
P50=".latency_us.p50 / 1000"
CLEAN="clean subscribers"
PERSIST="persistent subscribers, Starling sync vs Mosquitto persistence true"
RELAXED="persistent subscribers, Starling --durability relaxed vs Mosquitto persistence true"
TABLE=$(
	echo "| cell and metric | Starling median (min–max) | Mosquitto median (min–max) | Starling/Mosquitto |"
	echo "|---|---|---|---|"
	row "QoS 0 saturating, $CLEAN: received msg/s" qos0-saturating .receive_rate "%.0f"
	row "QoS 0 saturating, $CLEAN: broker CPU s per million msgs" qos0-saturating "$CPU" "%.2f"
	row "QoS 0 saturating, $CLEAN: p99 latency ms" qos0-saturating "$P99" "%.2f"
	row "QoS 0 saturating, $CLEAN: lost msgs" qos0-saturating .lost "%.0f"
	row "QoS 1 saturating, $CLEAN: received msg/s" qos1-saturating .receive_rate "%.0f"
	row "QoS 1 saturating, $CLEAN: broker CPU s per million msgs" qos1-saturating "$CPU" "%.2f"
	row "QoS 1 saturating, $CLEAN: p99 latency ms" qos1-saturating "$P99" "%.2f"
	row "QoS 1 saturating, $CLEAN: lost msgs" qos1-saturating .lost "%.0f"
	row "QoS 1 saturating, $PERSIST: received msg/s" qos1-persistent .receive_rate "%.0f"
	row "QoS 1 saturating, $PERSIST: broker CPU s per million msgs" qos1-persistent "$CPU" "%.2f"
	row "QoS 1 saturating, $PERSIST: lost msgs" qos1-persistent .lost "%.0f"
	row "QoS 1 saturating, $RELAXED: received msg/s" qos1-relaxed .receive_rate "%.0f"
	row "QoS 1 saturating, $RELAXED: broker CPU s per million msgs" qos1-relaxed "$CPU" "%.2f"
	row "QoS 1 saturating, $RELAXED: lost msgs" qos1-relaxed .lost "%.0f"
	row "QoS 0 at $RATE msg/s, $CLEAN: p50 latency ms" qos0-rate "$P50" "%.3f"
	row "QoS 0 at $RATE msg/s, $CLEAN: p99 latency ms" qos0-rate "$P99" "%.3f"
	row "QoS 1 at $RATE msg/s, $CLEAN: p50 latency ms" qos1-rate "$P50" "%.3f"
	row "QoS 1 at $RATE msg/s, $CLEAN: p99 latency ms" qos1-rate "$P99" "%.3f"
	row "QoS 1 at $RATE msg/s, $CLEAN: broker CPU s per million msgs" qos1-rate "$CPU" "%.2f"
	row "QoS 1 at $RATE msg/s, $PERSIST: p99 latency ms" qos1-persistent-rate "$P99" "%.3f"
	row "QoS 1 at $RATE msg/s, $PERSIST: broker CPU s per million msgs" qos1-persistent-rate "$CPU" "%.2f"
	row "QoS 1 at $RATE msg/s, $RELAXED: p99 latency ms" qos1-relaxed-rate "$P99" "%.3f"
	row "QoS 1 at $RATE msg/s, $RELAXED: broker CPU s per million msgs" qos1-relaxed-rate "$CPU" "%.2f"
	row "Shared QoS 1 saturating, $CLIENTS publishers to \$share/bench/bench/+ of $SHARED_SUBS $CLEAN: received msg/s" shared .receive_rate "%.0f"
	row "Shared QoS 1 saturating: broker CPU s per million msgs" shared "$CPU" "%.2f"
	row "Shared QoS 1 saturating: lost msgs" shared .lost "%.0f"
	row "Storm of $STORM connections, 64 handshakes at a time: connections accepted per s" storm .connections.accept_rate "%.0f"
	row "Storm: failed connections" storm .connections.failed "%.0f"
	row "Storm: p99 connect-to-CONNACK ms" storm ".connections.connect_latency_us.p99 / 1000" "%.1f"
	row "$IDLE idle connections held $HOLD: broker RSS per connection, KiB" idle ".connections.rss_per_connection_bytes / 1024" "%.1f"
	row "Idle: connections open and alive after the hold" idle .connections.alive_after_hold "%.0f"
	row "QoS 1 saturating, $CLEAN: broker RSS after the run, MiB" qos1-saturating ".broker.rss_after_bytes / 1048576" "%.1f"
)
echo "$TABLE"

# Errors of any run go into the document too, so that a bad run is not
# hidden behind a median.
ERRORS=$(for f in "$TMP"/*.json; do
	jq -r --arg run "$(basename "$f" .json)" 'select(.errors != null) | "\($run): \(.errors | join("; "))"' "$f" 2>/dev/null || true
done)

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
	echo "publishing and the end of the drain phase. Lost is the sum over the"
	echo "$CLIENTS subscribers of the messages sent by their publisher minus those"
	echo "received; for the shared group it is the messages sent minus those the"
	echo "group received. Connections accepted per second is the connections with"
	echo "a CONNACK divided by the time from the first attempt to the last CONNACK."
	echo "RSS per idle connection is the broker's VmRSS at the end of the hold"
	echo "minus before the first connection, divided by the connections opened."
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
	echo "Each broker is started once, fresh, and gets all its runs (the idle"
	echo "cell restarts it, see below); the runs of a cell alternate between its"
	echo "two brokers. The message cells use"
	echo "64-byte payloads, MQTT 3.1.1, $DURATION of publishing and 16 unconfirmed"
	echo "messages per publisher: QoS 1 waits for PUBACKs, and QoS 0 sends a"
	echo "PINGREQ after every 8 messages and counts a batch as confirmed at its"
	echo "PINGRESP. The pairs cells are $CLIENTS publisher/subscriber pairs"
	echo "(publisher i to topic bench/i, subscribed by subscriber i only). Fixed-rate"
	echo "cells publish $RATE msg/s in total. Clean subscribers connect with clean"
	echo "session 1. Persistent subscribers connect with clean session 0, on their"
	echo "own topics persist/i, and keep their sessions between runs, so each"
	echo "broker stores their QoS 1 messages"
	echo "as its durability setting says: Starling's default sync mode acknowledges"
	echo "after fsync, \`--durability relaxed\` does not wait for it, and Mosquitto"
	echo "with \`persistence true\` keeps sessions in memory and saves them to its"
	echo "file every autosave_interval (default 1800 s) and at exit. The shared cell"
	echo "is $CLIENTS publishers on bench/i and $SHARED_SUBS clean subscribers in"
	echo "one group \`\$share/bench/bench/+\`. The storm cell opens $STORM connections,"
	echo "64 handshakes at a time, and keeps them open until the last CONNACK. The"
	echo "idle cell restarts both brokers before each run (with the same data), so"
	echo "that memory freed by earlier cells does not absorb the growth. It then"
	echo "opens $IDLE connections, holds them $HOLD and checks that each still replies"
	echo "to a PINGREQ. Both spread their connections over the source"
	echo "addresses 127.1.0.1, 127.1.0.2, ... (1,000 each)."
	echo
	echo "Brokers (Starling with a configuration file that raises the listener's"
	echo "max_conn_rate to 100,000 connections per second, because the default of"
	echo "1,000/s with a burst of 2,000 would cap the storm):"
	echo
	echo '```sh'
	echo "make build"
	echo "${STARLING_CMD//$TMP/\$TMP}"
	echo "${RELAXED_CMD//$TMP/\$TMP}"
	echo "${MOSQUITTO_CMD//$TMP/\$TMP}"
	echo "${PERSIST_CMD//$TMP/\$TMP}"
	echo '```'
	echo
	echo "with these configuration files:"
	echo
	for name in starling.yaml relaxed.yaml mosquitto.conf persist.conf; do
		echo "\$TMP/$name:"
		echo
		echo '```'
		sed "s|$TMP|\$TMP|g" "$TMP/$name"
		echo '```'
		echo
	done
	echo "Runs, each repeated $RUNS times per broker with PORT and PID of that broker:"
	echo
	echo '```sh'
	for entry in "${CELLS[@]}"; do
		IFS='|' read -r cell a b flags <<<"$entry"
		echo "# $cell: $a against $b"
		echo "bin/starling bench --addr 127.0.0.1:PORT $flags $COMMON --broker-pid PID"
	done
	echo '```'
	echo
	echo "The whole comparison took $RUN_MINUTES minutes of runs:"
	echo
	echo '```sh'
	echo "RUNS=$RUNS DURATION=$DURATION CLIENTS=$CLIENTS SHARED_SUBS=$SHARED_SUBS RATE=$RATE STORM=$STORM IDLE=$IDLE HOLD=$HOLD MOSQUITTO_NODELAY=$MOSQUITTO_NODELAY scripts/bench-compare.sh"
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
