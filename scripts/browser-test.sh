#!/usr/bin/env bash
# The dashboard in a real browser: builds `cloudspend`, serves it against a fresh PostgreSQL
# database with moto behind it, and drives headless Chromium (Debian's package, through
# playwright-core from npm) through sign-up → connect AWS → refresh → dashboard → anomaly →
# CSV. Screenshots of every page land in target/screenshots/ under the repository (not under
# CARGO_TARGET_DIR, so they are easy to find whatever the target dir is).
#
# Needs CLOUDSPEND_TEST_POSTGRES_URL (a server URL) and CLOUDSPEND_TEST_MOTO_URL, as
# scripts/test.sh exports them. usage: scripts/browser-test.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
screenshots="$repo/target/screenshots"
work=$(mktemp -d "${TMPDIR:-/tmp}/cloudspend-browser.XXXXXX")
serve_pid=""
database=""

log() { printf '\033[1m[browser-test]\033[0m %s\n' "$*" >&2; }

: "${CLOUDSPEND_TEST_POSTGRES_URL:?is not set: run through scripts/test.sh, which starts PostgreSQL}"
: "${CLOUDSPEND_TEST_MOTO_URL:?is not set: run through scripts/test.sh, which starts moto}"

psql_bin() {
    if [ -n "${CLOUDSPEND_TEST_PG_BINDIR:-}" ] && [ -x "$CLOUDSPEND_TEST_PG_BINDIR/psql" ]; then
        echo "$CLOUDSPEND_TEST_PG_BINDIR/psql"
    else
        command -v psql || { log "psql not found (set CLOUDSPEND_TEST_PG_BINDIR)"; exit 1; }
    fi
}

cleanup() {
    local rc=$?
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
    if [ -n "$database" ]; then
        "$(psql_bin)" -q "$CLOUDSPEND_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    [ -f "$work/serve.log" ] && cp "$work/serve.log" "$repo/target/browser-test-serve.log"
    if [ $rc -ne 0 ] && [ -f "$work/serve.log" ]; then
        log "the last lines of the server's log (all of it: target/browser-test-serve.log):"
        tail -n 40 "$work/serve.log" >&2 || true
    fi
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT INT TERM

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        log "$* missing: install Debian's $* (apt-get install $*) or run as root, which installs them"
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

if [ ! -x /usr/bin/chromium ]; then
    command -v apt-get >/dev/null 2>&1 || { log "/usr/bin/chromium is missing and apt-get is not available"; exit 1; }
    log "installing Debian's chromium"
    apt_install chromium
fi
if ! command -v npm >/dev/null 2>&1; then
    log "installing Debian's nodejs and npm"
    apt_install nodejs npm
fi
log "$(/usr/bin/chromium --version 2>/dev/null | head -n1), node $(node --version)"

(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

# scripts/test.sh passes the binary its `cargo test --workspace` just built (CLOUDSPEND_BIN):
# a plain `cargo build -p cloudspend` resolves the dependencies' features differently from the
# test build and would compile the AWS SDK a second time.
if [ -n "${CLOUDSPEND_BIN:-}" ] && [ -x "$CLOUDSPEND_BIN" ]; then
    bin="$CLOUDSPEND_BIN"
else
    cargo build -q -p cloudspend
    bin="$target_dir/debug/cloudspend"
fi

database="cloudspend_browser_$(date +%s)_$$"
"$(psql_bin)" -q "$CLOUDSPEND_TEST_POSTGRES_URL" -c "CREATE DATABASE $database" >/dev/null
database_url="${CLOUDSPEND_TEST_POSTGRES_URL%/*}/$database"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
# moto checks no trust policy on AssumeRole: to it every role may be assumed without the external
# ID, so the connect check's proof that the role requires one is off for this server.
(
    cd "$work"
    exec env -u CLOUDSPEND_TEST_ENDPOINTS \
        DATABASE_URL="$database_url" \
        CLOUDSPEND_MASTER_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(32))')" \
        CLOUDSPEND_BIND="127.0.0.1:$port" \
        CLOUDSPEND_SCHEDULER_POLL_SECONDS=1 \
        CLOUDSPEND_EGRESS_ALLOW=127.0.0.1/32 \
        CLOUDSPEND_REQUIRE_EXTERNAL_ID=false \
        CLOUDSPEND_LOG="${CLOUDSPEND_LOG:-info,sqlx=warn,aws=warn,hyper=warn}" \
        AWS_ENDPOINT_URL="$CLOUDSPEND_TEST_MOTO_URL" \
        AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
        "$bin" serve >"$work/serve.log" 2>&1
) &
serve_pid=$!
for _ in $(seq 1 300); do
    curl -sf "$base/healthz" >/dev/null 2>&1 && break
    kill -0 "$serve_pid" 2>/dev/null || { log "cloudspend serve exited"; exit 1; }
    sleep 0.2
done
curl -sf "$base/healthz" >/dev/null || { log "cloudspend serve did not become healthy at $base"; exit 1; }
log "cloudspend serve on $base (database $database)"

mkdir -p "$screenshots"
CLOUDSPEND_BASE_URL="$base" \
CLOUDSPEND_SCREENSHOTS="$screenshots" \
CLOUDSPEND_BROWSER_WORK="$work" \
CLOUDSPEND_BROWSER_DATABASE_URL="$database_url" \
CLOUDSPEND_BROWSER_PSQL="$(psql_bin)" \
    node --test --test-reporter=spec tests/browser/flow.test.mjs
log "screenshots in $screenshots"
