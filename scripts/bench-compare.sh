#!/usr/bin/env bash
# Measures Starling against Mosquitto on this machine with `starling bench`
# and writes the results to docs/benchmarks.md.
#
# It builds bin/starling and starts six fresh brokers, each on its own
# loopback port with its own temporary data and configuration: Starling
# with its default durability (sync), Starling with --durability relaxed,
# Mosquitto without persistence, Mosquitto with "persistence true", and a
# Starling and a Mosquitto with a TLS listener that serve the same
# certificate from `starling certs init`. Each cell compares one Starling
# with one Mosquitto. It runs every cell RUNS times per broker and
# alternates the brokers (Starling, Mosquitto, Starling, ...), so that slow
# drift of the machine affects both alike. It prints one markdown table of
# medians, min-max and the ratio Starling/Mosquitto, and rewrites OUT above
# its notes marker: everything from the marker line on is kept as it was.
#
# Before anything else it raises the open file limit (soft and, where
# allowed, hard) to NOFILE for itself, both brokers and the load tool, and
# stops with an error when the limit stays below what the largest cell needs.
#
# The brokers it started are stopped on exit, also on error or Ctrl-C. It
# prints its expected duration at the start and the real one at the end.
# With the defaults that is about 14 minutes. That covers 17 cells with 3
# runs per broker, each of 6 s of publishing or of up to 50,000
# connections, the build, and up to 2 minutes of waiting for room in the
# kernel's connection tracking table between idle runs. QUICK=1 is a smoke check of every cell in about
# 1.5 minutes. Its numbers are not measurements, and it writes to a
# temporary file unless OUT is set.
#
# Environment (defaults in brackets; QUICK=1 defaults after the slash):
#   QUICK [0]            1 for a smoke check with the quick defaults below
#   RUNS [3/1]           runs per cell and broker
#   DURATION [6s/2s]     publishing time of each message run
#   CLIENTS [10]         publishers and subscribers: pairs, fan-in
#                        publishers, fan-out subscribers, shared publishers
#   SHARED_SUBS [4]      members of the shared subscription group
#   RATE [500*CLIENTS]   total msg/s of the fixed-rate cells, spread evenly
#                        over the CLIENTS publishers (500 msg/s each)
#   STORM [2000]         connections of the storm cell
#   IDLE [50000/5000]    connections of the idle plain-TCP cell
#   IDLE_TLS [5000/1000]  connections of the idle TLS cell
#   HOLD [5s/2s]         how long the idle connections stay open
#   NOFILE [200000]      open file limit to set, which must exceed the
#                        largest of IDLE, IDLE_TLS and STORM by 1,000
#   STARLING_PORT [18883], MOSQUITTO_PORT [18884]   loopback ports; the
#       relaxed Starling and the persistent Mosquitto use the next two
#       (STARLING_PORT+2 and MOSQUITTO_PORT+2)
#   STARLING_TLS_PORT [18887], MOSQUITTO_TLS_PORT [18888]   TLS listeners
#   STARLING_HTTP_PORT [18889], STARLING_TLS_HTTP_PORT [18890]   the
#       Starlings' --http endpoints (loopback, with --pprof), which serve
#       POST /debug/free-memory to the idle cells
#   MOSQUITTO [/usr/sbin/mosquitto]
#   MOSQUITTO_NODELAY [0]  1 adds "set_tcp_nodelay true" to the
#       configuration of the plain-TCP Mosquittos (the TLS one always has it)
#   OUT [docs/benchmarks.md; QUICK=1: $TMPDIR/starling-bench-quick.md]
#
# Needs: go, make, jq, Debian's mosquitto package.
set -euo pipefail

cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	RUNS=${RUNS:-1}
	DURATION=${DURATION:-2s}
	IDLE=${IDLE:-5000}
	IDLE_TLS=${IDLE_TLS:-1000}
	HOLD=${HOLD:-2s}
	OUT=${OUT:-${TMPDIR:-/tmp}/starling-bench-quick.md}
fi
RUNS=${RUNS:-3}
DURATION=${DURATION:-6s}
CLIENTS=${CLIENTS:-10}
SHARED_SUBS=${SHARED_SUBS:-4}
RATE=${RATE:-$((500 * CLIENTS))}
STORM=${STORM:-2000}
IDLE=${IDLE:-50000}
IDLE_TLS=${IDLE_TLS:-5000}
HOLD=${HOLD:-5s}
NOFILE=${NOFILE:-200000}
STARLING_PORT=${STARLING_PORT:-18883}
MOSQUITTO_PORT=${MOSQUITTO_PORT:-18884}
RELAXED_PORT=$((STARLING_PORT + 2))
PERSIST_PORT=$((MOSQUITTO_PORT + 2))
STARLING_TLS_PORT=${STARLING_TLS_PORT:-18887}
MOSQUITTO_TLS_PORT=${MOSQUITTO_TLS_PORT:-18888}
STARLING_HTTP_PORT=${STARLING_HTTP_PORT:-18889}
STARLING_TLS_HTTP_PORT=${STARLING_TLS_HTTP_PORT:-18890}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
MOSQUITTO_NODELAY=${MOSQUITTO_NODELAY:-0}
OUT=${OUT:-docs/benchmarks.md}
MARKER='<!-- notes: everything below this line is kept by scripts/bench-compare.sh -->'
# RATE_EACH is the rate of one publisher, for the labels.
RATE_EACH=$(awk -v r="$RATE" -v n="$CLIENTS" 'BEGIN { printf "%g", r / n }')

die() {
	echo "bench-compare: $*" >&2
	exit 1
}

command -v jq >/dev/null || die "jq is missing: apt-get install jq"
[ -x "$MOSQUITTO" ] || die "$MOSQUITTO is missing: apt-get install mosquitto, or set MOSQUITTO"
for var in RUNS CLIENTS SHARED_SUBS STORM IDLE IDLE_TLS NOFILE; do
	[[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var=${!var} is not a positive whole number"
done

# seconds prints a Go duration of the simple forms 500ms, 6s, 1.5s or 2m in
# seconds.
seconds() {
	case $1 in
	*ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;;
	*s) echo "${1%s}" ;;
	*m) awk -v v="${1%m}" 'BEGIN { print v * 60 }' ;;
	*) die "duration $1: use a form such as 500ms, 6s or 2m" ;;
	esac
}
DURATION_S=$(seconds "$DURATION")
HOLD_S=$(seconds "$HOLD")

# Open files: each broker uses one descriptor per connection, and so does
# the load tool, so the idle cell needs more than IDLE of them in each
# process. Most systems start with a soft limit of 1,024, which would cap
# Mosquitto (the Go programs raise their own soft limit to the hard one).
# A process may raise its hard limit only with CAP_SYS_RESOURCE (root,
# usually); everyone else gets at most the hard limit they started with.
NEEDED_FILES=$(printf '%s\n' "$IDLE" "$IDLE_TLS" "$STORM" | sort -n | tail -n1)
NEEDED_FILES=$((NEEDED_FILES + 1000))
HARD_BEFORE=$(ulimit -Hn)
if [ "$HARD_BEFORE" != unlimited ] && [ "$HARD_BEFORE" -lt "$NOFILE" ]; then
	ulimit -Hn "$NOFILE" 2>/dev/null || true
fi
HARD=$(ulimit -Hn)
SOFT=$NOFILE
if [ "$HARD" != unlimited ] && [ "$HARD" -lt "$NOFILE" ]; then
	SOFT=$HARD
fi
ulimit -Sn "$SOFT" || die "cannot set the open file limit to $SOFT (hard limit $HARD)"
SOFT=$(ulimit -Sn)
if [ "$SOFT" != unlimited ] && [ "$SOFT" -lt "$NEEDED_FILES" ]; then
	die "the open file limit is $SOFT (hard limit $HARD, which this process may not raise), but
  IDLE=$IDLE, IDLE_TLS=$IDLE_TLS and STORM=$STORM need $NEEDED_FILES open files in each broker and in
  the load tool. Raise the hard limit and run again, for example as root with
  CAP_SYS_RESOURCE (ulimit -Hn $NOFILE), with 'docker run --ulimit nofile=$NOFILE:$NOFILE',
  LimitNOFILE=$NOFILE in a systemd unit or a nofile line in /etc/security/limits.conf;
  or measure fewer connections: IDLE=$((SOFT - 1000)) $0"
fi

# Connection tracking: where netfilter tracks connections (Docker loads it,
# for example), every connection, loopback included, takes an entry in a
# table of nf_conntrack_max entries, and a closed one keeps it for
# nf_conntrack_tcp_timeout_time_wait (120 s by default). When the table is
# full the kernel drops new connections' packets, and the connects time out.
# Back-to-back idle runs of 50,000 connections fill a table of 262,144
# entries, so each storm and idle run first waits until the table has room
# for its connections (wait_conntrack).
CONNTRACK_MAX=0
if [ -r /proc/sys/net/netfilter/nf_conntrack_max ] && [ -r /proc/sys/net/netfilter/nf_conntrack_count ]; then
	CONNTRACK_MAX=$(cat /proc/sys/net/netfilter/nf_conntrack_max)
	if [ $((NEEDED_FILES * 10)) -gt $((CONNTRACK_MAX * 9)) ]; then
		die "the kernel tracks connections in a table of $CONNTRACK_MAX entries (nf_conntrack_max), too few for
  $NEEDED_FILES connections at once: raise it (as root: sysctl -w net.netfilter.nf_conntrack_max=$((NEEDED_FILES * 4)))
  or measure fewer connections"
	fi
fi
CONNTRACK_WAITED=0

# wait_conntrack waits, up to 3 minutes, until the connection tracking
# table, if any, has room for N more connections within 90% of its size.
wait_conntrack() {
	local need=$(($1 + 1000)) count waited=0
	[ "$CONNTRACK_MAX" -gt 0 ] || return 0
	while count=$(cat /proc/sys/net/netfilter/nf_conntrack_count); [ $((count + need)) -gt $((CONNTRACK_MAX * 9 / 10)) ]; do
		if [ "$waited" = 0 ]; then
			echo "   waiting for room in the connection tracking table: $count of $CONNTRACK_MAX entries in use, $need needed" >&2
		fi
		if [ "$waited" -ge 180 ]; then
			echo "bench-compare: the connection tracking table still has $count of $CONNTRACK_MAX entries in use after 3 minutes; going on" >&2
			break
		fi
		sleep 2
		waited=$((waited + 2))
	done
	CONNTRACK_WAITED=$((CONNTRACK_WAITED + waited))
}

# The cells: name, the Starling and the Mosquitto it compares, then the
# flags of the run. Every message cell uses MQTT 3.1.1 and 16 unconfirmed
# messages per publisher.
# The persistent sessions stay subscribed to their topics after a run, so
# the persistent cells use their own topics and client identifiers: on
# bench/i they would get a queue of every later cell's messages.
MSG="--inflight 16 --duration $DURATION --protocol 3.1.1"
PAIRS="--scenario pairs -n $CLIENTS $MSG"
FANIN="--scenario fanin -n $CLIENTS $MSG"
FANOUT="--scenario fanout -n $CLIENTS $MSG"
KEPT="--clean=false --topic-prefix persist --client-prefix starling-bench-persist"
CONNS="--parallel 64 --duration 60s"
CELLS=(
	"qos0-saturating|starling|mosquitto|$PAIRS --size 64 --qos 0 --clean=true"
	"qos0-saturating-1k|starling|mosquitto|$PAIRS --size 1024 --qos 0 --clean=true"
	"fanin|starling|mosquitto|$FANIN --size 64 --qos 0 --clean=true"
	"fanin-1k|starling|mosquitto|$FANIN --size 1024 --qos 0 --clean=true"
	"fanout|starling|mosquitto|$FANOUT --size 64 --qos 0 --clean=true"
	"fanout-1k|starling|mosquitto|$FANOUT --size 1024 --qos 0 --clean=true"
	"qos1-saturating|starling|mosquitto|$PAIRS --size 64 --qos 1 --clean=true"
	"qos1-persistent|starling|persist|$PAIRS --size 64 --qos 1 $KEPT"
	"qos1-relaxed|relaxed|persist|$PAIRS --size 64 --qos 1 $KEPT"
	"qos0-rate|starling|mosquitto|$PAIRS --size 64 --qos 0 --clean=true --rate $RATE"
	"qos1-rate|starling|mosquitto|$PAIRS --size 64 --qos 1 --clean=true --rate $RATE"
	"qos1-persistent-rate|starling|persist|$PAIRS --size 64 --qos 1 $KEPT --rate $RATE"
	"qos1-relaxed-rate|relaxed|persist|$PAIRS --size 64 --qos 1 $KEPT --rate $RATE"
	"shared|starling|mosquitto|--scenario shared -n $CLIENTS --subs $SHARED_SUBS $MSG --size 64 --qos 1 --clean=true"
	"storm|starling|mosquitto|--scenario storm -n $STORM $CONNS"
	"idle|starling|mosquitto|--scenario idle -n $IDLE $CONNS --hold $HOLD"
	"idle-tls|starling-tls|mosquitto-tls|--scenario idle -n $IDLE_TLS $CONNS --hold $HOLD --tls --cafile CERTS/ca.pem"
)
COMMON="-o json --progress=false"
declare -A CELL_A=() CELL_B=()
for entry in "${CELLS[@]}"; do
	IFS='|' read -r cell a b _ <<<"$entry"
	CELL_A[$cell]=$a
	CELL_B[$cell]=$b
done

# The expected duration is an estimate from costs measured on a 2-core
# machine. A message run takes DURATION plus about 0.5 s to connect, drain
# and disconnect. An idle run takes HOLD, about 2 s to restart its broker
# and to check and close its connections, and the time to open them: about
# 10,000 per second in plain TCP and 1,000 per second over TLS, where the
# handshakes take both cores. A storm run takes under a second. Add the
# build, and 2 minutes of waiting for the connection tracking table when
# the idle runs would overfill it.
MESSAGE_CELLS=0
for entry in "${CELLS[@]}"; do
	case $entry in *"--scenario storm"* | *"--scenario idle"*) ;; *) MESSAGE_CELLS=$((MESSAGE_CELLS + 1)) ;; esac
done
CONNTRACK_FREE=0
if [ "$CONNTRACK_MAX" -gt 0 ]; then
	CONNTRACK_FREE=$((CONNTRACK_MAX * 9 / 10 - $(cat /proc/sys/net/netfilter/nf_conntrack_count)))
fi
EXPECTED_S=$(awk -v runs="$RUNS" -v cells="$MESSAGE_CELLS" -v d="$DURATION_S" -v hold="$HOLD_S" \
	-v idle="$IDLE" -v idletls="$IDLE_TLS" -v storm="$STORM" -v ctmax="$CONNTRACK_MAX" -v ctfree="$CONNTRACK_FREE" 'BEGIN {
	per = cells * (d + 0.5) + (0.5 + storm / 10000) + (2 + hold + idle / 10000) + (2 + hold + idletls / 1000)
	wait = (ctmax > 0 && 2 * runs * (idle + idletls) + storm > ctfree) ? 120 : 0
	printf "%.0f", 20 + 2 * runs * per + wait }')
echo "bench-compare: ${#CELLS[@]} cells, $RUNS runs per cell and broker; expected duration about $((EXPECTED_S / 60)) min $((EXPECTED_S % 60)) s" >&2
if [ "$QUICK" = 1 ]; then
	echo "bench-compare: QUICK=1: a smoke check of every cell, not a measurement; writing $OUT" >&2
fi
echo "bench-compare: open file limit $SOFT (hard $HARD) for the brokers and the load tool" >&2
SCRIPT_START=$SECONDS

TMP=$(mktemp -d)
# PIDS maps a broker name (starling, relaxed, mosquitto, persist,
# starling-tls, mosquitto-tls) to the PID of the process started here. PORTS
# maps it to the ports it must listen on, its MQTT port first. CMDS maps it
# to its command, and GC_URLS to its POST /debug/free-memory URL (Starlings
# only).
declare -A PIDS=() PORTS=() CMDS=() GC_URLS=()

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
# and ports, and waits until it listens on every port.
start_broker() {
	local name=$1 ports=$2 cmd=$3 port
	# shellcheck disable=SC2086 # the command line is a word list on purpose
	$cmd >>"$TMP/$name.log" 2>&1 &
	PIDS[$name]=$!
	PORTS[$name]=$ports
	CMDS[$name]=$cmd
	for port in $ports; do
		wait_listening "$port" "${PIDS[$name]}" "$name" || { cat "$TMP/$name.log" >&2; exit 1; }
	done
}

# The certificate of both TLS listeners: ECDSA P-256, for 127.0.0.1.
"$BIN" certs init "$TMP/certs" --hosts 127.0.0.1 >/dev/null

# The default listener admits 1,000 new connections per second with a burst
# of 2,000, which would cap the storm cell, so every Starling raises it.
starling_conf() {
	local url=$1
	printf 'listeners:\n  - url: %s\n    max_conn_rate: 100000\n' "$url"
	if [[ $url == tls://* ]]; then
		printf '    tls: {cert_file: %s, key_file: %s}\n' "$TMP/certs/server.pem" "$TMP/certs/server-key.pem"
	fi
}
starling_conf "tcp://127.0.0.1:$STARLING_PORT" >"$TMP/starling.yaml"
starling_conf "tcp://127.0.0.1:$RELAXED_PORT" >"$TMP/relaxed.yaml"
starling_conf "tls://127.0.0.1:$STARLING_TLS_PORT" >"$TMP/starling-tls.yaml"
STARLING_CMD="$BIN serve --config $TMP/starling.yaml --data-dir $TMP/starling-data --log-level warn --http 127.0.0.1:$STARLING_HTTP_PORT --pprof"
RELAXED_CMD="$BIN serve --config $TMP/relaxed.yaml --data-dir $TMP/relaxed-data --durability relaxed --log-level warn"
STARLING_TLS_CMD="$BIN serve --config $TMP/starling-tls.yaml --data-dir $TMP/starling-tls-data --log-level warn --http 127.0.0.1:$STARLING_TLS_HTTP_PORT --pprof"
start_broker starling "$STARLING_PORT $STARLING_HTTP_PORT" "$STARLING_CMD"
start_broker relaxed "$RELAXED_PORT" "$RELAXED_CMD"
start_broker starling-tls "$STARLING_TLS_PORT $STARLING_TLS_HTTP_PORT" "$STARLING_TLS_CMD"
GC_URLS[starling]="http://127.0.0.1:$STARLING_HTTP_PORT/debug/free-memory"
GC_URLS[starling-tls]="http://127.0.0.1:$STARLING_TLS_HTTP_PORT/debug/free-memory"

# mosquitto_conf prints a configuration with one listener on PORT:
# persistence true or false, and tls or tcp.
mosquitto_conf() {
	local port=$1 persistence=$2 transport=$3
	echo "allow_anonymous true"
	if [ "$persistence" = true ]; then
		echo "persistence true"
		echo "persistence_location $TMP/mosquitto-persist/"
	else
		echo "persistence false"
	fi
	if [ "$transport" = tls ]; then
		# Without it each TLS 1.3 handshake waits for a delayed ACK (about
		# 40 ms, see scripts/bench-tls.sh), which lengthens the cell but does
		# not change the memory it measures.
		echo "set_tcp_nodelay true"
		# Started as root, Mosquitto drops to the user mosquitto, which
		# cannot read the key file (mode 0600, owned by root).
		if [ "$(id -u)" = 0 ]; then
			echo "user root"
		fi
	elif [ "$MOSQUITTO_NODELAY" = 1 ]; then
		echo "set_tcp_nodelay true"
	fi
	echo "listener $port 127.0.0.1"
	echo "max_connections -1"
	if [ "$transport" = tls ]; then
		echo "cafile $TMP/certs/ca.pem"
		echo "certfile $TMP/certs/server.pem"
		echo "keyfile $TMP/certs/server-key.pem"
	fi
}
mkdir -p "$TMP/mosquitto-persist"
mosquitto_conf "$MOSQUITTO_PORT" false tcp >"$TMP/mosquitto.conf"
mosquitto_conf "$PERSIST_PORT" true tcp >"$TMP/persist.conf"
mosquitto_conf "$MOSQUITTO_TLS_PORT" false tls >"$TMP/mosquitto-tls.conf"
MOSQUITTO_CMD="$MOSQUITTO -c $TMP/mosquitto.conf"
PERSIST_CMD="$MOSQUITTO -c $TMP/persist.conf"
MOSQUITTO_TLS_CMD="$MOSQUITTO -c $TMP/mosquitto-tls.conf"
start_broker mosquitto "$MOSQUITTO_PORT" "$MOSQUITTO_CMD"
start_broker persist "$PERSIST_PORT" "$PERSIST_CMD"
start_broker mosquitto-tls "$MOSQUITTO_TLS_PORT" "$MOSQUITTO_TLS_CMD"

# restart_broker stops one broker and starts it again with the same command
# and data.
restart_broker() {
	local name=$1
	stop_broker "${PIDS[$name]}"
	start_broker "$name" "${PORTS[$name]}" "${CMDS[$name]}"
}

# run_one runs one cell against one broker and stores the JSON result. The
# idle cells get a freshly started broker for every run: a broker that
# already held and freed many connections reuses that memory, which would
# hide most of the growth the cell measures. A Starling in an idle cell
# gets the URL that makes it collect its garbage and return free memory to
# the system before each memory sample.
run_one() {
	local cell=$1 flags=$2 broker=$3 run=$4
	local started
	if [[ $flags =~ --scenario\ (idle|storm)\ -n\ ([0-9]+) ]]; then
		wait_conntrack "${BASH_REMATCH[2]}"
	fi
	started=$(date +%s.%N)
	flags=${flags//CERTS/$TMP/certs}
	if [[ $flags == *"--scenario idle"* ]]; then
		restart_broker "$broker"
		if [ -n "${GC_URLS[$broker]:-}" ]; then
			flags="$flags --broker-gc-url ${GC_URLS[$broker]}"
		fi
	fi
	local port=${PORTS[$broker]%% *} pid=${PIDS[$broker]}
	kill -0 "$pid" 2>/dev/null || die "$broker is no longer running before $cell run $run"
	# shellcheck disable=SC2086 # flags are word lists on purpose
	if ! $BIN bench --addr "127.0.0.1:$port" $flags $COMMON --broker-pid "$pid" \
		>"$TMP/$cell.$broker.$run.json" 2>"$TMP/$cell.$broker.$run.err"; then
		echo "bench-compare: $cell against $broker, run $run, reported errors:" >&2
		cat "$TMP/$cell.$broker.$run.err" >&2
		jq -r '.errors[]?' "$TMP/$cell.$broker.$run.json" >&2 || true
	fi
	echo "   $cell $broker run $run: $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s" >&2
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
for broker in starling relaxed starling-tls mosquitto persist mosquitto-tls; do
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

# message_rows prints the rows msg/s, broker CPU per million messages and
# lost messages of one saturating message cell.
message_rows() {
	local label=$1 cell=$2
	row "$label: received msg/s" "$cell" .receive_rate "%.0f"
	row "$label: broker CPU s per million msgs" "$cell" "$CPU" "%.2f"
	row "$label: lost msgs" "$cell" .lost "%.0f"
}

CPU=".broker.cpu_seconds_per_million"
P99=".latency_us.p99 / 1000"
P50=".latency_us.p50 / 1000"
IN16="16 in flight per publisher"
CLEAN="clean subscribers"
PERSIST="persistent subscribers, Starling sync vs Mosquitto persistence true"
RELAXED="persistent subscribers, Starling --durability relaxed vs Mosquitto persistence true"
PAIRS_L="$CLIENTS pairs"
FANIN_L="fan-in $CLIENTS → 1"
FANOUT_L="fan-out 1 → $CLIENTS"
AT_RATE="at $RATE_EACH msg/s per publisher ($RATE msg/s in total)"
RSS=".connections.rss_per_connection_bytes / 1024"
TABLE=$(
	echo "| cell and metric | Starling median (min–max) | Mosquitto median (min–max) | Starling/Mosquitto |"
	echo "|---|---|---|---|"
	message_rows "QoS 0 saturating, $PAIRS_L, 64 B, $IN16, $CLEAN" qos0-saturating
	row "QoS 0 saturating, $PAIRS_L, 64 B, $IN16, $CLEAN: p99 latency ms" qos0-saturating "$P99" "%.2f"
	message_rows "QoS 0 saturating, $PAIRS_L, 1 KB, $IN16, $CLEAN" qos0-saturating-1k
	message_rows "QoS 0 saturating, $FANIN_L, 64 B, $IN16, $CLEAN" fanin
	message_rows "QoS 0 saturating, $FANIN_L, 1 KB, $IN16, $CLEAN" fanin-1k
	message_rows "QoS 0 saturating, $FANOUT_L, 64 B, $IN16, $CLEAN" fanout
	message_rows "QoS 0 saturating, $FANOUT_L, 1 KB, $IN16, $CLEAN" fanout-1k
	message_rows "QoS 1 saturating, $PAIRS_L, 64 B, $IN16, $CLEAN" qos1-saturating
	row "QoS 1 saturating, $PAIRS_L, 64 B, $IN16, $CLEAN: p99 latency ms" qos1-saturating "$P99" "%.2f"
	message_rows "QoS 1 saturating, $PAIRS_L, 64 B, $IN16, $PERSIST" qos1-persistent
	message_rows "QoS 1 saturating, $PAIRS_L, 64 B, $IN16, $RELAXED" qos1-relaxed
	row "QoS 0 $AT_RATE, $PAIRS_L, 64 B, $IN16, $CLEAN: p50 latency ms" qos0-rate "$P50" "%.3f"
	row "QoS 0 $AT_RATE, $PAIRS_L, 64 B, $IN16, $CLEAN: p99 latency ms" qos0-rate "$P99" "%.3f"
	row "QoS 1 $AT_RATE, $PAIRS_L, 64 B, $IN16, $CLEAN: p50 latency ms" qos1-rate "$P50" "%.3f"
	row "QoS 1 $AT_RATE, $PAIRS_L, 64 B, $IN16, $CLEAN: p99 latency ms" qos1-rate "$P99" "%.3f"
	row "QoS 1 $AT_RATE, $PAIRS_L, 64 B, $IN16, $CLEAN: broker CPU s per million msgs" qos1-rate "$CPU" "%.2f"
	row "QoS 1 $AT_RATE, $PAIRS_L, 64 B, $IN16, $PERSIST: p99 latency ms" qos1-persistent-rate "$P99" "%.3f"
	row "QoS 1 $AT_RATE, $PAIRS_L, 64 B, $IN16, $PERSIST: broker CPU s per million msgs" qos1-persistent-rate "$CPU" "%.2f"
	row "QoS 1 $AT_RATE, $PAIRS_L, 64 B, $IN16, $RELAXED: p99 latency ms" qos1-relaxed-rate "$P99" "%.3f"
	row "QoS 1 $AT_RATE, $PAIRS_L, 64 B, $IN16, $RELAXED: broker CPU s per million msgs" qos1-relaxed-rate "$CPU" "%.2f"
	message_rows "Shared QoS 1 saturating, $CLIENTS publishers to \$share/bench/bench/+ of $SHARED_SUBS $CLEAN, 64 B, $IN16" shared
	row "Storm of $STORM connections, 64 handshakes at a time: connections accepted per s" storm .connections.accept_rate "%.0f"
	row "Storm: failed connections" storm .connections.failed "%.0f"
	row "Storm: p99 connect-to-CONNACK ms" storm ".connections.connect_latency_us.p99 / 1000" "%.1f"
	row "$IDLE idle plain-TCP connections held $HOLD: broker RSS per connection, KiB (Starling after a forced GC)" idle "$RSS" "%.2f"
	row "Idle plain TCP: connections open and alive after the hold" idle .connections.alive_after_hold "%.0f"
	row "$IDLE_TLS idle TLS connections held $HOLD: broker RSS per connection, KiB (Starling after a forced GC)" idle-tls "$RSS" "%.2f"
	row "Idle TLS: connections open and alive after the hold" idle-tls .connections.alive_after_hold "%.0f"
	row "QoS 1 saturating, $PAIRS_L, 64 B, $IN16, $CLEAN: broker RSS after the run, MiB" qos1-saturating ".broker.rss_after_bytes / 1048576" "%.1f"
)
echo "$TABLE"

# Errors of any run go into the document too, so that a bad run is not
# hidden behind a median.
ERRORS=$(for f in "$TMP"/*.json; do
	jq -r --arg run "$(basename "$f" .json)" 'select(.errors != null) | "\($run): \(.errors | join("; "))"' "$f" 2>/dev/null || true
done)

# tls_details prints the TLS session of the first idle TLS run of a broker,
# as the load tool saw it.
tls_details() {
	jq -r '.tls | if . == null then "no TLS session recorded" else
		"\(.version), \(.cipher_suite), key exchange \(.group)" end' "$TMP/idle-tls.$1.1.json" 2>/dev/null ||
		echo "no TLS session recorded"
}
STARLING_TLS_DETAILS=$(tls_details starling-tls)
MOSQUITTO_TLS_DETAILS=$(tls_details mosquitto-tls)
# gc_runs prints how many idle runs of a broker had both forced collections.
gc_runs() {
	jq -s '[.[] | select(.connections.broker_gc == true)] | length' "$TMP/$1.$2".*.json 2>/dev/null || echo 0
}

echo "== write $OUT" >&2
NOTES=""
if [ -f "$OUT" ] && grep -qF "$MARKER" "$OUT"; then
	NOTES=$(awk -v marker="$MARKER" 'found || $0 == marker { found = 1; print }' "$OUT")
fi

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "unknown (not a git checkout)")
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
	if [ "$QUICK" = 1 ]; then
		echo "**QUICK=1: a smoke check with short runs, not a measurement.**"
		echo
	fi
	echo "## Results"
	echo
	echo "$TABLE"
	echo
	echo "Medians of $RUNS runs per cell and broker; min–max in brackets. Latency is"
	echo "from the send time in the payload to the subscriber's read. Received"
	echo "msg/s counts first deliveries during the publishing phase, so in fan-out"
	echo "each message counts once per subscriber. Broker CPU is"
	echo "utime+stime of the broker process from /proc between the start of"
	echo "publishing and the end of the drain phase, per million first deliveries. Lost is"
	echo "the sum over the subscribers of the messages sent by the publishers they"
	echo "hear minus those received; for the shared group it is the messages sent"
	echo "minus those the group received. Connections accepted per second is the"
	echo "connections with a CONNACK divided by the time from the first attempt to"
	echo "the last CONNACK. RSS per idle connection is the broker's VmRSS at the"
	echo "end of the hold minus before the first connection, divided by the"
	echo "connections opened. For Starling both samples follow a forced garbage"
	echo "collection that returns free memory to the operating system (see"
	echo "Method); Mosquitto has no garbage collector and frees memory as it goes."
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
	echo "- Open file limit of the brokers and the load tool: $SOFT (hard limit $HARD)"
	echo "- Load average (1, 5, 15 min) before the runs: $LOAD_BEFORE; after: $LOAD_AFTER"
	echo
	echo "The load generator and the broker run on the same machine and share its"
	echo "$(nproc) cores, so every number includes the competition between them. The"
	echo "JSON of each run also reports the tool's own CPU time."
	echo
	echo "## Method"
	echo
	echo "Each broker is started once, fresh, and gets all its runs (the idle"
	echo "cells restart it, see below); the runs of a cell alternate between its"
	echo "two brokers. Every message cell uses MQTT 3.1.1, $DURATION of"
	echo "publishing and 16 unconfirmed messages per publisher: QoS 1 waits for"
	echo "PUBACKs, and QoS 0 sends a PINGREQ after every 8 messages and counts a"
	echo "batch as confirmed at its PINGRESP. Payloads are 64 bytes, or 1 KB"
	echo "(1,024 bytes) where the row says so. The topologies:"
	echo
	echo "- pairs: $CLIENTS publisher/subscriber pairs, publisher i on topic bench/i,"
	echo "  which subscriber i alone subscribes to;"
	echo "- fan-in: $CLIENTS publishers on bench/i and one subscriber to bench/+;"
	echo "- fan-out: one publisher on bench/0 and $CLIENTS subscribers to bench/0;"
	echo "- shared: $CLIENTS publishers on bench/i and $SHARED_SUBS subscribers in one"
	echo "  group \`\$share/bench/bench/+\`, so each message reaches one of them."
	echo
	echo "Subscribers subscribe with the QoS of the cell. Clean subscribers connect"
	echo "with clean session 1. Persistent subscribers connect with clean session 0,"
	echo "on their own topics persist/i, and keep their sessions between runs, so"
	echo "each broker stores their QoS 1 messages as its durability setting says:"
	echo "Starling's default sync mode acknowledges after fsync, \`--durability"
	echo "relaxed\` does not wait for it, and Mosquitto with \`persistence true\`"
	echo "keeps sessions in memory and saves them to its file every"
	echo "autosave_interval (default 1800 s) and at exit. Fixed-rate cells publish"
	echo "$RATE_EACH msg/s from each of the $CLIENTS publishers, $RATE msg/s in total, on an"
	echo "even schedule; the saturating cells publish as fast as the 16 unconfirmed"
	echo "messages allow."
	echo
	echo "The storm cell opens $STORM connections, 64 handshakes at a time, and keeps"
	echo "them open until the last CONNACK. The idle cells restart their two brokers"
	echo "before each run (with the same data), so that memory freed by earlier"
	echo "runs does not absorb the growth. Each run then opens its connections (MQTT"
	echo "3.1.1, clean session, keep alive 60 s), 64 handshakes at a time, stopping"
	echo "at the first failure, holds them $HOLD and checks that each still replies"
	echo "to a PINGREQ. The plain-TCP idle cell opens $IDLE connections, the TLS one"
	echo "$IDLE_TLS. Storm and idle spread their connections over the source addresses"
	echo "127.1.0.1, 127.1.0.2, ... (1,000 each). Right before each of its two"
	echo "memory samples, an idle run POSTs to the Starling's"
	echo "\`/debug/free-memory\` (served on its loopback \`--http\` address with"
	echo "\`--pprof\`), which runs \`runtime/debug.FreeOSMemory\`: a garbage"
	echo "collection that also returns free memory to the operating system."
	echo "Forced collections in Starling's runs: $(gc_runs idle starling) of $RUNS plain-TCP and"
	echo "$(gc_runs idle-tls starling-tls) of $RUNS TLS runs had both."
	echo
	echo "TLS: the two TLS brokers serve the same certificate and key from"
	echo "\`starling certs init --hosts 127.0.0.1\` (ECDSA P-256, signed by its CA)."
	echo "The load tool verifies the certificate against that CA for the name"
	echo "127.0.0.1, offers TLS 1.2 and 1.3 with Go's default cipher suites and"
	echo "groups, and keeps no session cache, so every connection is a full"
	echo "handshake. Negotiated with Starling: $STARLING_TLS_DETAILS. With"
	echo "Mosquitto: $MOSQUITTO_TLS_DETAILS. The TLS Mosquitto has"
	echo "\`set_tcp_nodelay true\`, without which each TLS 1.3 handshake waits"
	echo "for a delayed ACK (see scripts/bench-tls.sh); that changes how fast the"
	echo "connections open, not the memory they hold."
	echo
	echo "Open files: the script sets the soft limit (and the hard one where it"
	echo "may) to $SOFT before it starts the brokers and the load tool, and stops"
	echo "if that is less than the largest cell plus 1,000. Mosquitto's"
	echo "\`max_connections -1\` (its default, written out) admits any number of"
	echo "connections."
	if [ "$CONNTRACK_MAX" -gt 0 ]; then
		echo
		echo "The kernel tracks connections (netfilter conntrack, loopback included)"
		echo "in a table of $CONNTRACK_MAX entries, and a closed connection keeps its"
		echo "entry for $(cat /proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait 2>/dev/null || echo 120) s. A full table drops new connections, so each storm"
		echo "and idle run first waited until the table had room for its connections:"
		echo "$CONNTRACK_WAITED s in all, not counted in any result."
	fi
	echo
	echo "Brokers (every Starling with a configuration file that raises the"
	echo "listener's max_conn_rate to 100,000 connections per second, because the"
	echo "default of 1,000/s with a burst of 2,000 would cap the storm):"
	echo
	echo '```sh'
	echo "make build"
	echo "bin/starling certs init \$TMP/certs --hosts 127.0.0.1"
	echo "${STARLING_CMD//$TMP/\$TMP}"
	echo "${RELAXED_CMD//$TMP/\$TMP}"
	echo "${STARLING_TLS_CMD//$TMP/\$TMP}"
	echo "${MOSQUITTO_CMD//$TMP/\$TMP}"
	echo "${PERSIST_CMD//$TMP/\$TMP}"
	echo "${MOSQUITTO_TLS_CMD//$TMP/\$TMP}"
	echo '```'
	echo
	echo "with these configuration files:"
	echo
	for name in starling.yaml relaxed.yaml starling-tls.yaml mosquitto.conf persist.conf mosquitto-tls.conf; do
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
		flags=${flags//CERTS/\$TMP/certs}
		if [[ $flags == *"--scenario idle"* ]]; then
			echo "# $cell: $a against $b, each restarted before each run; $a adds --broker-gc-url ${GC_URLS[$a]}"
		else
			echo "# $cell: $a against $b"
		fi
		echo "bin/starling bench --addr 127.0.0.1:PORT $flags $COMMON --broker-pid PID"
	done
	echo '```'
	echo
	echo "The whole comparison took $RUN_MINUTES minutes of runs:"
	echo
	echo '```sh'
	if [ "$QUICK" = 1 ]; then
		echo -n "QUICK=1 "
	fi
	echo "RUNS=$RUNS DURATION=$DURATION CLIENTS=$CLIENTS SHARED_SUBS=$SHARED_SUBS RATE=$RATE STORM=$STORM IDLE=$IDLE IDLE_TLS=$IDLE_TLS HOLD=$HOLD MOSQUITTO_NODELAY=$MOSQUITTO_NODELAY scripts/bench-compare.sh"
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
TOTAL_S=$((SECONDS - SCRIPT_START))
echo "bench-compare: wrote $OUT; took $((TOTAL_S / 60)) min $((TOTAL_S % 60)) s (expected about $((EXPECTED_S / 60)) min $((EXPECTED_S % 60)) s)" >&2
