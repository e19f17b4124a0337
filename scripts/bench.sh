#!/usr/bin/env bash
# Benchmarks: the flash sale and the catalog mix, each against the seed's
# Postgres SELECT ... FOR UPDATE baseline in the same run (stockd-bench).
#
#   scripts/bench.sh           release build, 64 buyers, 10 s each, 100,000 SKUs
#   scripts/bench.sh --smoke   debug build, 2 s each, small sizes: proves the
#                              binary works (scripts/test.sh runs this); asserts
#                              nothing about speed, only no errors and no oversell
#   scripts/bench.sh --bin DIR the stockd and stockd-bench in DIR, not built
#                              here (A/B runs: copy each build's binaries aside)
#   scripts/bench.sh --scenario flash-sale|catalog   that scenario only
#   scripts/bench.sh --skip-baseline                 stockd only, no baseline phase
#   scripts/bench.sh --scenario S -- ARGS...         ARGS go to stockd-bench (over the
#                              defaults above; with both scenarios, to each), e.g.
#                              the catalog's order mix:
#                              -- --skus 10 --max-lines 1 --fulfil-pct 0 --release-pct 0
#   (scripts/bench-ab.sh alternates two builds with these options)
#
# Starts its own redis-server on a free port (so nothing else on a shared Redis
# skews the figures) and stockd local on a fresh database of the Postgres at
# BENCH_DATABASE_URL (default: TEST_DATABASE_URL's server, else
# postgres://postgres@127.0.0.1:5432); stops and drops both at the end.
# Each scenario prints a JSON summary as its last line.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STOCKD_REPO"

smoke=false
bin=
scenarios="flash-sale catalog"
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) smoke=true; shift ;;
    --bin) bin=${2:?--bin needs a directory}; shift 2 ;;
    --scenario)
      case ${2:-} in flash-sale | catalog) scenarios=$2 ;; *) die "--scenario: flash-sale or catalog" ;; esac
      shift 2 ;;
    --skip-baseline) extra+=(--skip-baseline); shift ;;
    --) shift; extra+=("$@"); set --; break ;;
    *) die "usage: scripts/bench.sh [--smoke] [--bin DIR] [--scenario flash-sale|catalog] [--skip-baseline] [-- ARGS...]" ;;
  esac
done

stockd_trap_cleanup
ensure_packages

profile=release
$smoke && profile=debug
bench_binaries "$bin" "$profile"
bin=$BENCH_BIN

bench_database stockd_bench
db_url=$BENCH_DB_URL
bench_redis stockd-bench
redis_port=$BENCH_REDIS_PORT
redis_url=redis://127.0.0.1:$redis_port

grpc_port=$(free_port)
log=$(mktemp "${TMPDIR:-/tmp}/stockd-bench.XXXXXX.log")
REDIS_URL=$redis_url DATABASE_URL=$db_url STOCKD_GRPC_ADDR=127.0.0.1:$grpc_port STOCKD_HTTP_ADDR=127.0.0.1:0 \
  STOCKD_LOG=warn "$bin/stockd" local >"$log" 2>&1 &
server=$!
stockd_on_exit "kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f '$log'"
wait_for_port "$grpc_port" "$server" "$log" "stockd local"

common=(--grpc "127.0.0.1:$grpc_port" --database-url "$db_url")
passed=0
for scenario in $scenarios; do
  if $smoke; then
    args=(--smoke --strict)
  else
    args=()
    # The defaults, each unless ARGS name it (stockd-bench takes a flag once).
    for default in --concurrency=64 --duration=10s --skus=100000 --locations=3; do
      flag=${default%%=*}
      case $flag in --skus | --locations) [ "$scenario" = catalog ] || continue ;; esac
      [[ " ${extra[*]-} " == *" $flag "* || " ${extra[*]-} " == *" $flag="* ]] || args+=("$flag" "${default#*=}")
    done
  fi
  [ "$scenario" = catalog ] && args+=(--redis-url "$redis_url" --redis-prefix stockd)
  "$bin/stockd-bench" "$scenario" "${common[@]}" "${args[@]}" ${extra[@]+"${extra[@]}"}
  passed=$((passed + 1))
done
if $smoke; then echo "bench smoke: $passed passed, 0 failed"; fi
