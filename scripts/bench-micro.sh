#!/usr/bin/env bash
# bench-micro.sh runs the hot-path micro-benchmarks with allocation counts
# and, given a base commit, compares them with benchstat.
#
#   scripts/bench-micro.sh              benchmarks of the working tree
#   scripts/bench-micro.sh BASE         also BASE (any git revision), built in
#                                       a temporary worktree, then benchstat
#                                       BASE against the working tree
#
# Environment:
#   COUNT [6]        runs of each benchmark (benchstat needs several)
#   BENCHTIME [1s]   go test -benchtime
#   OUT [bench-out]  directory for the raw results (base.txt, head.txt)
#
# The benchmarks cover packet decode and encode per type, and topic match
# among 10 k to 1 M subscriptions. They also cover the shared-subscription
# pick, routing, and the local QoS 0 fan-out to 1, 100 and 10,000
# subscribers. The last are the QoS 1 round trip and Pebble queue append and
# ack (storage commits). The runs alternate between base and head per
# package, so a change in the machine's load hits both.
set -euo pipefail

COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-1s}
OUT=${OUT:-bench-out}
BASE=${1:-}
BENCHSTAT_VERSION=v0.0.0-20260908200009-22c9c6c9d4da

# Each line: package and -bench pattern.
SUITES=(
	"./node/packet/ ^Benchmark(Read|Encode)_"
	"./router/ ^BenchmarkTrie_(Match|MatchExact)$"
	"./node/ ^Benchmark(SharedPick|Route|FanOutQoS0|QoS1RoundTrip)$"
	"./storage/ ^BenchmarkCommit_"
)

die() { echo "bench-micro: $*" >&2; exit 1; }

ROOT=$(git rev-parse --show-toplevel)
cd "$ROOT"
mkdir -p "$OUT"
: >"$OUT/head.txt"

BASE_DIR=""
if [ -n "$BASE" ]; then
	git rev-parse --verify --quiet "$BASE^{commit}" >/dev/null || die "revision $BASE not found"
	BASE_DIR=$(mktemp -d)
	trap 'git worktree remove --force "$BASE_DIR" >/dev/null 2>&1 || true' EXIT
	git worktree add --detach --quiet "$BASE_DIR" "$BASE"
	: >"$OUT/base.txt"
fi

# run_suite appends one run of a package's benchmarks to out. A package whose
# test binary fails after its benchmarks (an older base may fail its
# goroutine leak check) still gives its results, with a warning.
run_suite() {
	local dir=$1 pkg=$2 pattern=$3 out=$4 raw
	raw=$(mktemp)
	if ! (cd "$dir" && go test -run '^$' -bench "$pattern" -benchmem -benchtime "$BENCHTIME" -count 1 "$pkg") >"$raw" 2>&1; then
		echo "bench-micro: go test $pkg failed in $dir; its benchmark lines are kept, the end of its output follows:" >&2
		tail -5 "$raw" >&2
	fi
	grep -E '^(Benchmark|goos|goarch|pkg|cpu)' "$raw" >>"$out" || die "no benchmark results for $pkg in $dir"
	rm -f "$raw"
}

for round in $(seq "$COUNT"); do
	for suite in "${SUITES[@]}"; do
		read -r pkg pattern <<<"$suite"
		echo "round $round/$COUNT: $pkg" >&2
		if [ -n "$BASE_DIR" ]; then
			run_suite "$BASE_DIR" "$pkg" "$pattern" "$OUT/base.txt"
		fi
		run_suite "$ROOT" "$pkg" "$pattern" "$OUT/head.txt"
	done
done

BENCHSTAT=$(command -v benchstat || true)
if [ -z "$BENCHSTAT" ] && [ -x "$(go env GOPATH)/bin/benchstat" ]; then
	BENCHSTAT=$(go env GOPATH)/bin/benchstat
fi
if [ -z "$BENCHSTAT" ]; then
	echo "installing benchstat $BENCHSTAT_VERSION" >&2
	go install "golang.org/x/perf/cmd/benchstat@$BENCHSTAT_VERSION"
	BENCHSTAT=$(go env GOPATH)/bin/benchstat
fi

if [ -n "$BASE_DIR" ]; then
	"$BENCHSTAT" "base=$OUT/base.txt" "head=$OUT/head.txt"
else
	"$BENCHSTAT" "$OUT/head.txt"
fi
