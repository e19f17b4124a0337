#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests, and the
# README smoke test (the README's grpcurl examples against a real server).
#
# Needs Redis and PostgreSQL. It uses TEST_REDIS_URL (default
# redis://127.0.0.1:6379) and TEST_DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/test) when they answer, and otherwise
# starts private throw-away servers (stopped and deleted at the end). It never
# flushes or stops a server it did not start. Missing packages are installed
# with apt-get (see scripts/lib.sh).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STOCKD_REPO"

started=$SECONDS
stockd_trap_cleanup

ensure_packages
ensure_rust_components

# Private servers (only started if the shared ones do not answer) live in a
# temporary directory that goes away at the end.
STOCKD_PRIVATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/stockd-test.XXXXXX")
chmod 755 "$STOCKD_PRIVATE_DIR"
stockd_on_exit "rm -rf '$STOCKD_PRIVATE_DIR'"

ensure_redis TEST_REDIS_URL 6379
ensure_postgres TEST_DATABASE_URL postgres://postgres@127.0.0.1:5432/test
export TEST_REDIS_URL TEST_DATABASE_URL

# Each test makes its own schema t_<16 hex> and drops it when done; a crashed
# run leaves some behind. Drop those, unless another session is connected to
# the test database at any of three looks over two seconds (a test run in
# progress elsewhere may own them).
drop_stale_test_schemas() {
  local others=0 n schemas s i
  for i in 1 2 3; do
    n=$(psql "$TEST_DATABASE_URL" -X -A -t -q -c \
      "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()")
    [ "${n:-0}" -gt "$others" ] && others=$n
    [ "$i" = 3 ] || sleep 1
  done
  schemas=$(psql "$TEST_DATABASE_URL" -X -A -t -q -c \
    "select nspname from pg_namespace where nspname ~ '^t_[0-9a-f]{16}\$' order by 1")
  [ -n "$schemas" ] || return 0
  if [ "${others:-0}" != 0 ]; then
    say "leaving $(wc -l <<<"$schemas") old test schemas alone: $others other session(s) use the test database"
    return 0
  fi
  say "dropping $(wc -l <<<"$schemas") test schemas left by earlier runs"
  while IFS= read -r s; do
    [[ $s =~ ^t_[0-9a-f]{16}$ ]] || continue
    PGOPTIONS="-c client_min_messages=warning" psql "$TEST_DATABASE_URL" -X -q -c "DROP SCHEMA IF EXISTS \"$s\" CASCADE" >/dev/null
  done <<<"$schemas"
}
drop_stale_test_schemas

step() {
  local t=$SECONDS
  say "$*"
  "$@"
  say "ok: $* ($((SECONDS - t)) s)"
}

step cargo fmt --check
step cargo clippy --all-targets -- -D warnings
step scripts/proto-check.sh
step cargo test --all-targets --no-fail-fast
step scripts/readme-smoke.sh
step scripts/helm-check.sh
step scripts/bench.sh --smoke
step scripts/bench-ab.sh target/debug target/debug --rounds 1 --smoke
step scripts/lua-cost.sh --smoke
step scripts/reconcile-drain.sh --smoke
step scripts/bench-floor.sh --smoke

say "scripts/test.sh: all checks passed (fmt, clippy, proto lint and breaking, tests, README smoke, helm, bench smoke, A/B smoke, Lua cost smoke, drain smoke, floor smoke) in $((SECONDS - started)) s"
