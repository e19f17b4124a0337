#!/usr/bin/env bash
# A/B benchmark: two builds alternating, one scenario, medians of each.
#
#   scripts/bench-ab.sh A B [--rounds N] [--scenario flash-sale|catalog] [--baseline]
#   scripts/bench-ab.sh A B --smoke   bench.sh --smoke runs (2 s, small sizes):
#                                     proves the tool works (scripts/test.sh
#                                     runs it on the debug build against itself)
#
# A and B are each a directory holding a stockd and a stockd-bench (release
# builds copied aside), or a git revision, built here into target/ab/<commit>
# (the first build of a revision takes a few minutes). Runs scripts/bench.sh
# --bin for A, B, A, B, ... N rounds each (default 3; --scenario, default
# flash-sale; without the baseline phase unless --baseline), then prints each
# run and the medians. This machine's speed drifts from hour to hour by more
# than most changes move the figures, so only alternating runs compare two
# builds; see README "Performance".
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STOCKD_REPO"

usage="usage: scripts/bench-ab.sh A B [--rounds N] [--scenario flash-sale|catalog] [--baseline] [--smoke]"
[ $# -ge 2 ] || die "$usage"
a=$1 b=$2
shift 2
rounds=3 scenario=flash-sale baseline=false smoke=false
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=${2:-}; shift 2 ;;
    --scenario) scenario=${2:-}; shift 2 ;;
    --baseline) baseline=true; shift ;;
    --smoke) smoke=true; shift ;;
    *) die "$usage" ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive whole number"
case $scenario in flash-sale | catalog) ;; *) die "--scenario: flash-sale or catalog" ;; esac

# A directory with both binaries, or a revision built into target/ab/<commit>.
binaries() {
  if [ -d "$1" ]; then
    [ -x "$1/stockd" ] && [ -x "$1/stockd-bench" ] || die "$1 has no stockd and stockd-bench"
    echo "$1"
    return
  fi
  local commit dir
  commit=$(git rev-parse --verify --quiet "$1^{commit}") || die "$1 is neither a directory nor a git revision"
  dir=target/ab/$commit
  if [ ! -x "$dir/stockd" ] || [ ! -x "$dir/stockd-bench" ]; then
    # In a subshell with its own trap: this function runs inside $(...), so
    # a cleanup registered with stockd_on_exit would not reach the script's.
    (
      tree=$(mktemp -d "${TMPDIR:-/tmp}/stockd-ab.XXXXXX")
      trap "git worktree remove --force '$tree' >/dev/null 2>&1 || rm -rf '$tree'" EXIT
      git worktree add --detach --quiet "$tree" "$commit"
      say "building $1 ($commit)"
      (cd "$tree" && CARGO_TARGET_DIR="$STOCKD_REPO/target/ab/build" cargo build --release --bins --quiet) >&2
      mkdir -p "$dir"
      cp target/ab/build/release/stockd target/ab/build/release/stockd-bench "$dir/"
    )
  fi
  echo "$dir"
}

stockd_trap_cleanup
ensure_packages
dir_a=$(binaries "$a")
dir_b=$(binaries "$b")
opts=(--scenario "$scenario")
$baseline || opts+=(--skip-baseline)
$smoke && opts+=(--smoke)

results=$(mktemp "${TMPDIR:-/tmp}/stockd-ab.XXXXXX")
stockd_on_exit "rm -f '$results'"
for round in $(seq 1 "$rounds"); do
  for side in A B; do
    dir=$dir_a
    [ "$side" = B ] && dir=$dir_b
    say "round $round/$rounds: $side ($dir)"
    summary=$(scripts/bench.sh --bin "$dir" "${opts[@]}" | grep '^{' | tail -n 1)
    [ -n "$summary" ] || die "scripts/bench.sh printed no summary"
    printf '%s\t%s\n' "$side" "$summary" >>"$results"
  done
done

python3 - "$results" "$a" "$b" <<'PY'
import json, statistics, sys
path, names = sys.argv[1], {'A': sys.argv[2], 'B': sys.argv[3]}
runs = {'A': [], 'B': []}
for line in open(path):
    side, _, summary = line.rstrip('\n').partition('\t')
    runs[side].append(json.loads(summary))
def figures(d):
    cpu = d.get('cpu', {}).get('by_process', {})
    lag = d.get('reconcile_lag_ms') or {}
    return {
        'req/s': d['throughput_rps'], 'p50 ms': d['p50_ms'], 'p99 ms': d['p99_ms'],
        'lag p50 ms': lag.get('p50', float('nan')),
        'stockd %': cpu.get('stockd', 0.0), 'redis %': cpu.get('redis-server', 0.0),
        'postgres %': cpu.get('postgres', 0.0), 'bench %': cpu.get('stockd-bench', 0.0),
        'ratio': d.get('ratio_vs_baseline') or float('nan'),
    }
cols = list(figures(runs['A'][0]).keys())
print('run  ' + ''.join(f'{c:>12}' for c in cols))
for side in 'AB':
    for i, d in enumerate(runs[side], 1):
        f = figures(d)
        print(f'{side}{i:<4}' + ''.join(f'{f[c]:>12,.1f}' for c in cols))
for side in 'AB':
    med = {c: statistics.median(figures(d)[c] for d in runs[side]) for c in cols}
    print(f'{side} med' + ''.join(f'{med[c]:>12,.1f}' for c in cols) + f'   {names[side]}')
a = statistics.median(d['throughput_rps'] for d in runs['A'])
b = statistics.median(d['throughput_rps'] for d in runs['B'])
print(f'B against A: {100 * (b - a) / a:+.1f}% req/s (medians of {len(runs["A"])} alternating runs each)')
PY
