#!/usr/bin/env bash
# Measures cross-node throughput of a three-node Starling cluster against
# one node of the same cluster, with `starling bench --scenario pairs`:
# publishers on node 1 and subscribers on node 1 (single) or node 2
# (cross), at QoS 0 and QoS 1. It prints one markdown table with the
# medians of RUNS runs and the ratio cross/single.
#
# It builds bin/starling and starts three nodes on 127.0.0.11-13 (plaintext,
# which loopback allows), each with its own temporary data directory, and
# stops them on exit, also on error or Ctrl-C. With the defaults it takes
# about 2 minutes.
#
# Environment (defaults in brackets):
#   RUNS [3]          runs per cell
#   DURATION [6s]     publishing time of each run
#   CLIENTS [10]      publisher/subscriber pairs
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-6s}
CLIENTS=${CLIENTS:-10}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
make -s build
bin=$root/bin/starling
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

for i in 1 2 3; do
	ip=127.0.0.1$i
	cat >"$work/n$i.yaml" <<EOF
node_name: n$i
data_dir: $work/d$i
listeners:
  - url: tcp://$ip:1883
    max_conn_rate: 100000
cluster:
  cluster_bind: $ip:7946
  peer_bind: $ip:7947
  join: [127.0.0.11:7946, 127.0.0.12:7946, 127.0.0.13:7946]
  bootstrap_expect: 3
EOF
	"$bin" serve --config "$work/n$i.yaml" --http "$ip:8080" >"$work/n$i.log" 2>&1 &
	pids+=($!)
done
for i in 1 2 3; do
	for _ in $(seq 1 300); do
		curl -sf "http://127.0.0.1$i:8080/readyz" >/dev/null && break
		sleep 0.1
	done
	curl -sf "http://127.0.0.1$i:8080/readyz" >/dev/null || { echo "node n$i not ready; log:" >&2; tail -20 "$work/n$i.log" >&2; exit 1; }
done

# run QOS SUBADDR prints the receive rate of one run.
run() {
	"$bin" bench --scenario pairs -n "$CLIENTS" --qos "$1" --duration "$DURATION" \
		--addr 127.0.0.11:1883 --sub-addr "$2" -o json 2>/dev/null |
		python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["lost"]==0 and d["duplicates"]==0 and d["out_of_order"]==0, d; print(int(d["receive_rate"]), int(d["latency_us"]["p99"]))'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| QoS | single node msg/s | cross-node msg/s | cross/single | p99 latency single / cross (ms) |"
echo "|---|---|---|---|---|"
for q in 0 1; do
	: >"$work/s" ; : >"$work/c"; : >"$work/sl"; : >"$work/cl"
	for _ in $(seq 1 "$RUNS"); do
		read -r rate p99 < <(run "$q" 127.0.0.11:1883); echo "$rate" >>"$work/s"; echo "$p99" >>"$work/sl"
		read -r rate p99 < <(run "$q" 127.0.0.12:1883); echo "$rate" >>"$work/c"; echo "$p99" >>"$work/cl"
	done
	s=$(median <"$work/s"); c=$(median <"$work/c")
	sl=$(median <"$work/sl"); cl=$(median <"$work/cl")
	python3 -c "print('| $q | $s | $c | %.2f | %.1f / %.1f |' % ($c / $s, $sl / 1000, $cl / 1000))"
done
