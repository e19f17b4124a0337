#!/usr/bin/env bash
# What the Lua scripts cost Redis, in instructions (valgrind's callgrind):
# the same on a busy machine as on an idle one, so a change to a script can be
# judged by a few percent where the end-to-end benchmark varies by tens.
#
#   scripts/lua-cost.sh [--base REV] [--orders N]
#   scripts/lua-cost.sh --smoke   110 orders; when the working tree's scripts are
#                                 REV's, both counts must agree within 1%
#                                 (scripts/test.sh runs this)
#
# Runs benches/lua_cost.py's flash and catalog workloads against a
# redis-server under callgrind, once with the scripts of REV (default HEAD)
# and once with the working tree's, and prints instructions per order for
# both. Only the workload is counted (the counters are zeroed after setup).
# Starts its own redis-server on a free port; touches no other.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STOCKD_REPO"

base=HEAD
orders=200
smoke=false
while [ $# -gt 0 ]; do
  case $1 in
    --base) base=$2; shift 2 ;;
    --orders) orders=$2; shift 2 ;;
    --smoke) smoke=true; orders=110; shift ;;
    *) die "usage: scripts/lua-cost.sh [--base REV] [--orders N] | --smoke" ;;
  esac
done
[[ $orders =~ ^[1-9][0-9]*$ ]] || die "--orders must be a positive whole number"

stockd_trap_cleanup
command -v redis-server >/dev/null 2>&1 || ensure_packages
command -v valgrind >/dev/null 2>&1 || apt_install valgrind
command -v python3 >/dev/null 2>&1 || apt_install python3

work=$(mktemp -d "${TMPDIR:-/tmp}/stockd-lua-cost.XXXXXX")
stockd_on_exit "rm -rf '$work'"
mkdir -p "$work/base" "$work/tree"
cp src/reservation/lua/*.lua "$work/tree/"
for f in src/reservation/lua/*.lua; do
  git show "$base:$f" >"$work/base/$(basename "$f")" 2>/dev/null || die "$f is not in $base"
done
same=false
diff -rq "$work/base" "$work/tree" >/dev/null && same=true

# Instructions Redis spends on one workload: callgrind counts from the zeroing
# after setup to the dump after the workload. --hz 1: Redis's timer work
# (serverCron) runs per wall-clock second, and under valgrind a workload takes
# seconds, so at the default 10 Hz the timer's share would vary from run to run.
count() {
  local lua=$1 mode=$2 n=$3 port pid i
  port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" \
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --hz 1 --dir "$work" \
    >"$work/valgrind.log" 2>&1 &
  pid=$!
  for i in $(seq 1 200); do
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/valgrind.log" >&2; die "redis-server under valgrind exited"; }
    sleep 0.2
  done
  python3 benches/lua_cost.py "$port" "$lua" setup
  callgrind_control -z "$pid" >/dev/null 2>&1
  python3 benches/lua_cost.py "$port" "$lua" "$mode" "$n"
  callgrind_control -d "$pid" >/dev/null 2>&1
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" 2>/dev/null || true
  # The dump taken on request is cg.<pid>.1 (cg.<pid> is the one at exit).
  awk '/^summary:|^totals:/ {print $2; exit}' "$work/cg.$pid.1"
  rm -f "$work"/cg.*
}

say "Lua cost: $base's scripts against the working tree's, $orders orders per workload"
printf '%-8s %16s %16s %8s\n' workload "base instr/order" "tree instr/order" change
for mode in flash catalog; do
  n=$orders
  per=1
  # A flash batch carries 11 orders.
  if [ "$mode" = flash ]; then n=$(((orders + 10) / 11)); per=11; fi
  b=$(count "$work/base" "$mode" "$n")
  t=$(count "$work/tree" "$mode" "$n")
  python3 - "$mode" "$b" "$t" "$((n * per))" "$($smoke && $same && echo check)" <<'PY'
import sys
mode, b, t, orders, check = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
change = 100 * (t - b) / b
print(f'{mode:<8} {b / orders:>16,.0f} {t / orders:>16,.0f} {change:>+7.1f}%')
# The same scripts twice: the counts must agree, or this measure is no use.
if check and abs(change) > 1:
    sys.exit(f'lua-cost: the same scripts counted {change:+.1f}% apart; the measure is not repeatable here')
PY
done
if $smoke; then
  if $same; then say "lua-cost smoke: the same scripts counted alike"; else say "lua-cost smoke: the scripts differ from $base; not comparing"; fi
fi
