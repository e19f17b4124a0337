#!/usr/bin/env bash
# How fast the reconciler writes a backlog of events to Postgres (events/s),
# and what each process spent meanwhile.
#
#   scripts/reconcile-drain.sh [--seconds S] [--bin DIR]
#                                        DIR: prebuilt stockd and stockd-bench
#                                        (A/B runs), else a release build
#   scripts/reconcile-drain.sh --smoke   debug build, 2 s: proves the tool works
#                                        (scripts/test.sh runs this); asserts only
#                                        that every event reached the ledger
#
# Builds release binaries, starts its own redis-server on a free port and a
# fresh database on the Postgres at BENCH_DATABASE_URL (as scripts/bench.sh),
# runs stockd with STOCKD_RECONCILER=off under an S-second flash sale
# (default 8) so that its events pile up in the streams, stops it, then
# starts a stockd that reconciles and times it from start to the last event
# in the ledger (its start-up, about 0.3 s, included). Prints the backlog,
# the rate, and each process's share of a core while it drained (from
# /proc). Stops and drops everything it started.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STOCKD_REPO"

seconds=8
profile=release
bin=
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=${2:-}; shift 2 ;;
    --smoke) seconds=2; profile=debug; shift ;;
    --bin) bin=${2:?--bin needs a directory}; shift 2 ;;
    *) die "usage: scripts/reconcile-drain.sh [--seconds S] [--bin DIR] | --smoke" ;;
  esac
done
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "--seconds must be a positive whole number"

stockd_trap_cleanup
ensure_packages
bench_binaries "$bin" "$profile"
bin=$BENCH_BIN

bench_database stockd_drain
db_url=$BENCH_DB_URL
bench_redis stockd-drain
redis_port=$BENCH_REDIS_PORT

log=$(mktemp "${TMPDIR:-/tmp}/stockd-drain.XXXXXX.log")
stockd_on_exit "rm -f '$log'"
# Starts stockd local with the given extra environment; sets $server and $grpc_port.
start_stockd() {
  grpc_port=$(free_port)
  env "$@" REDIS_URL="redis://127.0.0.1:$redis_port" DATABASE_URL="$db_url" STOCKD_GRPC_ADDR="127.0.0.1:$grpc_port" \
    STOCKD_HTTP_ADDR=127.0.0.1:0 STOCKD_LOG=warn "$bin/stockd" local >>"$log" 2>&1 &
  server=$!
  stockd_on_exit "kill $server 2>/dev/null || true"
}
ledger_rows() { psql "$db_url" -X -A -t -q -c 'SELECT count(*) FROM ledger'; }
# Events waiting in the streams: an entry holds one per field (a script call
# writes one entry per partition with all its events there), so they are
# counted by their fields, not by XLEN.
count_events='local n, from = 0, "-"
while true do
  local es = redis.call("XRANGE", KEYS[1], from, "+", "COUNT", 1000)
  if #es == 0 then return n end
  for _, e in ipairs(es) do n = n + #e[2] / 2 end
  from = "(" .. es[#es][1]
end'
backlog() {
  redis-cli -p "$redis_port" --scan --pattern '*:ev' | while read -r key; do
    redis-cli -p "$redis_port" eval "$count_events" 1 "$key"
  done | awk '{ n += $1 } END { print n + 0 }'
}
# user + system ticks per process name, from /proc.
cpu_ticks() {
  for stat in /proc/[0-9]*/stat; do cat "$stat" 2>/dev/null || true; done |
    sed -E 's/^[0-9]+ \((.*)\) /\1\t/' | awk -F'\t' '{ split($2, f, " "); t[$1] += f[12] + f[13] } END { for (n in t) print n, t[n] }'
}

start_stockd STOCKD_RECONCILER=off
for _ in $(seq 1 150); do port_in_use "$grpc_port" && break; sleep 0.2; done
port_in_use "$grpc_port" || { cat "$log" >&2; die "stockd did not start"; }
say "filling the streams: a ${seconds}s flash sale with the reconciler off"
"$bin/stockd-bench" flash-sale --grpc "127.0.0.1:$grpc_port" --database-url "$db_url" --concurrency 64 \
  --duration "${seconds}s" --skip-baseline --json >/dev/null
kill "$server"
wait "$server" 2>/dev/null || true

before=$(ledger_rows)
events=$(backlog)
[ "$events" -gt 0 ] || die "no events in the streams"
say "draining $events events"
ticks_before=$(cpu_ticks)
started=$(date +%s.%N)
start_stockd
deadline=$((SECONDS + 300))
while [ "$(ledger_rows)" -lt $((before + events)) ]; do
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; die "stockd exited"; }
  [ $SECONDS -lt $deadline ] || die "the ledger has $(ledger_rows) of $((before + events)) rows after 300 s"
  sleep 0.1
done
[ "$(ledger_rows)" -eq $((before + events)) ] || die "the ledger has $(ledger_rows) rows, expected $((before + events))"
ended=$(date +%s.%N)
ticks_after=$(cpu_ticks)
python3 - "$events" "$started" "$ended" "$ticks_before" "$ticks_after" <<'EOF'
import sys
events, started, ended = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
took = ended - started
def ticks(text):
    out = {}
    for line in text.splitlines():
        name, _, n = line.rpartition(' ')
        out[name] = int(n)
    return out
a, b = ticks(sys.argv[4]), ticks(sys.argv[5])
use = {n: (b[n] - a.get(n, 0)) / took for n in b if n in ('stockd', 'postgres', 'redis-server')}
print(f"{events} events written in {took:.2f} s: {events / took:,.0f} events/s")
print("CPU meanwhile (share of one core): " + ", ".join(f"{n} {v:.0f}%" for n, v in sorted(use.items(), key=lambda x: -x[1])))
print("CPU per event: " + ", ".join(f"{n} {v * took / events * 1e4:.1f} µs" for n, v in sorted(use.items(), key=lambda x: -x[1])))
EOF
