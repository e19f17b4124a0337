#!/usr/bin/env bash
# The machine's floor under the flash sale: the same buyers (stockd-bench, 64
# workers on 8 connections) against, in turn,
#   grpc-only     a server that answers Reserve at once (stockd-bench floor-server)
#   grpc+script   the same server running one bare hold script in Redis per
#                 Reserve (src/bin/stockd_bench/floor_hold.lua: one EVALSHA
#                 per request on one multiplexed connection)
#   stockd-norec  stockd with STOCKD_RECONCILER=off (Redis only, no Postgres writes)
#   stockd        stockd as it runs (reconciler on)
# in rounds, in the same sitting, then each run and the medians. stockd's
# latency is to be read against the floors': the first two do none of stockd's
# work, so what they reach is what this machine gives any server at this load.
#
#   scripts/bench-floor.sh [--rounds N] [--bin DIR]   release build, 10 s each, 3 rounds
#   scripts/bench-floor.sh --smoke   debug build, 2 s each, 1 round, 8 workers:
#                                    proves the tool works (scripts/test.sh runs it)
#
# The stockd phases are scripts/bench.sh --scenario flash-sale --skip-baseline.
# Starts its own redis-server and servers on free ports; touches no other.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STOCKD_REPO"

rounds=3
bin=
smoke=false
usage="usage: scripts/bench-floor.sh [--rounds N] [--bin DIR] [--smoke]"
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
    --bin) bin=${2:?--bin needs a directory}; shift 2 ;;
    --smoke) smoke=true; rounds=1; shift ;;
    *) die "$usage" ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive whole number"

stockd_trap_cleanup
ensure_packages
profile=release
$smoke && profile=debug
bench_binaries "$bin" "$profile"
bin=$(cd "$BENCH_BIN" && pwd)
bench_opts=(--bin "$bin" --scenario flash-sale --skip-baseline)
floor_opts=()
if $smoke; then
  bench_opts+=(--smoke)
  floor_opts+=(--smoke --strict)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/stockd-floor.XXXXXX")
stockd_on_exit "rm -rf '$work'"
# Under its own name, so the CPU figures tell the server from the load generator.
ln -s "$bin/stockd-bench" "$work/stockd-floor"
bench_redis stockd-floor
floor_redis=redis://127.0.0.1:$BENCH_REDIS_PORT

results=$work/results
# One floor phase: serve (with the extra arguments), drive, stop; appends
# "label<TAB>summary" to the results. (Not run in $(...): a failure must stop
# the script, and the server must be stopped by its cleanup.)
floor() {
  local label=$1 port pid summary
  shift
  port=$(free_port)
  "$work/stockd-floor" floor-server --listen "127.0.0.1:$port" "$@" 2>"$work/server.log" &
  pid=$!
  stockd_on_exit "kill $pid 2>/dev/null || true"
  wait_for_port "$port" "$pid" "$work/server.log" floor-server
  summary=$("$bin/stockd-bench" floor --grpc "127.0.0.1:$port" --label "$label" --json \
    ${floor_opts[@]+"${floor_opts[@]}"} | tail -n 1) || die "stockd-bench floor ($label) failed"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  printf '%s\t%s\n' "$label" "$summary" >>"$results"
}

# One stockd phase (scripts/bench.sh, which fails on errors or oversold in
# --smoke); appends its summary like floor.
stockd_phase() {
  local label=$1 summary
  summary=$(scripts/bench.sh "${bench_opts[@]}" | grep '^{' | tail -n 1) || die "scripts/bench.sh ($label) failed"
  [ -n "$summary" ] || die "scripts/bench.sh ($label) printed no summary"
  printf '%s\t%s\n' "$label" "$summary" >>"$results"
}

for round in $(seq 1 "$rounds"); do
  say "round $round/$rounds: grpc-only"
  floor grpc-only
  say "round $round/$rounds: grpc+script"
  floor grpc+script --redis-url "$floor_redis"
  say "round $round/$rounds: stockd, reconciler off"
  STOCKD_RECONCILER=off stockd_phase stockd-norec
  say "round $round/$rounds: stockd"
  stockd_phase stockd
done

python3 - "$results" <<'PY'
import json, statistics, sys
order = ['grpc-only', 'grpc+script', 'stockd-norec', 'stockd']
runs = {k: [] for k in order}
for line in open(sys.argv[1]):
    label, _, summary = line.rstrip('\n').partition('\t')
    d = json.loads(summary)
    if d['errors'] or d.get('oversold'):
        sys.exit(f'{label}: {d["errors"]} errors, {d.get("oversold")} oversold')
    runs[label].append(d)
def figures(d):
    cpu = (d.get('cpu') or {}).get('by_process') or {}
    return {
        'req/s': d['throughput_rps'], 'p50 ms': d['p50_ms'], 'p99 ms': d['p99_ms'], 'p99.9 ms': d['p999_ms'],
        'server %': cpu.get('stockd', 0.0) + cpu.get('stockd-floor', 0.0), 'redis %': cpu.get('redis-server', 0.0),
        'postgres %': cpu.get('postgres', 0.0), 'bench %': cpu.get('stockd-bench', 0.0),
    }
cols = list(figures(runs['grpc-only'][0]).keys())
print(f'{"run":<16}' + ''.join(f'{c:>11}' for c in cols))
for k in order:
    for i, d in enumerate(runs[k], 1):
        f = figures(d)
        print(f'{k + " " + str(i):<16}' + ''.join(f'{f[c]:>11,.1f}' for c in cols))
print(f'medians of {len(runs["stockd"])} round(s):')
for k in order:
    med = {c: statistics.median(figures(d)[c] for d in runs[k]) for c in cols}
    print(f'{k:<16}' + ''.join(f'{med[c]:>11,.1f}' for c in cols))
PY
if $smoke; then echo "bench-floor smoke: 4 phases passed"; fi
