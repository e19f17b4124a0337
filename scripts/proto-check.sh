#!/usr/bin/env bash
# Guards the gRPC contract (proto/, names in ../shared/API.md that callers
# depend on):
#   - buf lint: the Google API style (buf's STANDARD rules, except the two
#     that forbid returning a resource itself, as AIP's Get and Upsert do);
#   - buf breaking: the protos against their previous version, so that a
#     field renumbered, renamed or removed by accident, or a method dropped,
#     fails the suite. The previous version is HEAD when proto/ has
#     uncommitted changes, else the parent of the last commit that changed
#     proto/ (on a clean clone of main: the change that commit made).
# buf comes from npm (@bufbuild/buf's platform package), cached like the
# tools of helm-check.sh. Ends with "proto check: passed"; exits 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

BUF_VERSION=1.75.0
CACHE=${STOCKD_TOOLS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/stockd-tools}
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

log() { printf '%s\n' "$*" >&2; }
die() {
    log "proto-check: $*"
    exit 1
}

ensure_buf() {
    local arch
    case "$(uname -m)" in
        x86_64 | amd64) arch=linux-x64 ;;
        aarch64 | arm64) arch=linux-aarch64 ;;
        *) die "no buf package for $(uname -m)" ;;
    esac
    local dir=$CACHE/buf-$BUF_VERSION-$arch
    BUF=$dir/buf
    if [ -f "$dir/.complete" ] && "$BUF" --version >/dev/null 2>&1; then
        return
    fi
    command -v npm >/dev/null || die "npm is needed to fetch buf (@bufbuild/buf-$arch)"
    log "proto-check: installing buf $BUF_VERSION from npm into $dir"
    rm -rf "$dir"
    mkdir -p "$dir/tmp"
    (cd "$dir/tmp" && npm pack --silent "@bufbuild/buf-$arch@$BUF_VERSION" >/dev/null) ||
        die "npm pack @bufbuild/buf-$arch@$BUF_VERSION failed"
    tar -xzf "$dir"/tmp/*.tgz -C "$dir/tmp" package/bin/buf
    mv "$dir/tmp/package/bin/buf" "$BUF"
    rm -rf "$dir/tmp"
    chmod 0755 "$BUF"
    "$BUF" --version >/dev/null || die "the buf binary from npm does not run"
    touch "$dir/.complete"
}

ensure_buf
"$BUF" lint || die "buf lint failed (see above)"

git rev-parse --git-dir >/dev/null 2>&1 || die "not a git checkout: buf breaking needs the previous protos"
if ! git diff --quiet HEAD -- proto || [ -n "$(git ls-files --others --exclude-standard proto)" ]; then
    against=HEAD
else
    last=$(git log -1 --format=%H -- proto)
    if ! git rev-parse --verify --quiet "$last^" >/dev/null; then
        log "proto-check: proto/ has only its first version ($last); nothing to compare with"
        echo "proto check: passed (lint; breaking: no previous version)"
        exit 0
    fi
    against=$last^
fi
"$BUF" breaking --against ".git#ref=$against,subdir=proto" ||
    die "buf breaking: proto/ changed incompatibly since $(git rev-parse --short "$against") (see above)"
echo "proto check: passed (lint, breaking against $(git rev-parse --short "$against"))"
