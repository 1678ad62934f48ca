#!/usr/bin/env bash
# Fuzzes the API from its own OpenAPI document with schemathesis (PyPI, pinned, in a virtualenv
# under the cargo target dir): a real `cloudspend serve` on a fresh database, the owner of one
# signed-up tenant (A) on every request, and these checks on every response:
#   not_a_server_error            no 5xx
#   status_code_conformance       the status is one the document lists for the operation
#   content_type_conformance      the content type is the documented one
#   response_schema_conformance   the body matches the documented schema
#   ignored_auth                  an operation that documents the bearer token refuses the same
#                                 request without a token and with an invalid one
#   object_level_authorization    what A reads of its own (an id it created or listed) is
#                                 replayed as the owner of a second tenant (B), who must not get it
#
# Database: a fresh PostgreSQL database on CLOUDSPEND_TEST_POSTGRES_URL when it is set (as
# scripts/test.sh sets it), else a SQLite file. AWS: the moto server at CLOUDSPEND_TEST_MOTO_URL,
# required: without it the fuzzed server would call real AWS endpoints, so the script refuses to
# start. Nothing leaves the machine: alerts may go only to 127.0.0.1 (CLOUDSPEND_EGRESS_ALLOW), so
# a fuzzed webhook subscription to any other address is refused, and so is its delivery.
# Bounded: SCHEMATHESIS_MAX_EXAMPLES cases per operation (default 30) and
# SCHEMATHESIS_MAX_TIME seconds in all (default 240).
#
# usage: scripts/schemathesis.sh            (scripts/test.sh runs it after cargo test)
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
if [ -z "${CLOUDSPEND_TEST_MOTO_URL:-}" ]; then
    printf '\033[1m[schemathesis.sh]\033[0m %s\n' "CLOUDSPEND_TEST_MOTO_URL is not set: refusing to fuzz a server that would call real AWS; run scripts/test.sh, which starts moto" >&2
    exit 1
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
work=$(mktemp -d "${TMPDIR:-/tmp}/cloudspend-schemathesis.XXXXXX")
server_pid=""

log() { printf '\033[1m[schemathesis.sh]\033[0m %s\n' "$*" >&2; }

cleanup() {
    local rc=$?
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

venv="$target_dir/schemathesis-venv-$SCHEMATHESIS_VERSION"
if [ ! -x "$venv/bin/st" ]; then
    log "installing schemathesis==$SCHEMATHESIS_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# scripts/test.sh passes the binary its `cargo test --workspace` just built (CLOUDSPEND_BIN):
# a plain `cargo build -p cloudspend` resolves the dependencies' features differently from the
# test build and would compile the AWS SDK a second time.
if [ -n "${CLOUDSPEND_BIN:-}" ] && [ -x "$CLOUDSPEND_BIN" ]; then
    bin="$CLOUDSPEND_BIN"
else
    cargo build -q -p cloudspend
    bin="$target_dir/debug/cloudspend"
fi

if [ -n "${CLOUDSPEND_TEST_POSTGRES_URL:-}" ]; then
    db="cs_schemathesis_$(date +%s)_$$"
    psql_bin="psql"
    [ -n "${CLOUDSPEND_TEST_PG_BINDIR:-}" ] && psql_bin="$CLOUDSPEND_TEST_PG_BINDIR/psql"
    "$psql_bin" "$CLOUDSPEND_TEST_POSTGRES_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null
    database_url="${CLOUDSPEND_TEST_POSTGRES_URL%/*}/$db"
else
    database_url="sqlite://$work/cloudspend.db"
fi

port=$(free_port)
base="http://127.0.0.1:$port"
(
    cd "$work"
    export DATABASE_URL="$database_url"
    export CLOUDSPEND_BIND="127.0.0.1:$port"
    export CLOUDSPEND_MASTER_KEY=6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f
    export CLOUDSPEND_LOG="warn"
    export CLOUDSPEND_EGRESS_ALLOW="127.0.0.1/32"
    export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
    export AWS_ENDPOINT_URL="$CLOUDSPEND_TEST_MOTO_URL"
    exec "$bin" serve
) >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    curl -sf "$base/healthz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log" >&2; log "serve exited"; exit 1; }
    sleep 0.2
done

signup() {
    curl -sf "$base/api/auth/signup" -H 'content-type: application/json' \
        -d "{\"email\": \"$1\", \"password\": \"a long enough password\", \"tenant_name\": \"$2\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}
token_a=$(signup fuzz@example.com "Fuzz Inc")
token_b=$(signup peer@example.com "Peer Inc")
# The two tenants' owners as Web Fuzzing Commons identities: every case goes out as tenant-a;
# tenant-b is the peer object_level_authorization replays A's reads as.
cat >"$work/auth.json" <<JSON
{"auth": [
  {"name": "tenant-a", "fixedHeaders": [{"name": "Authorization", "value": "Bearer $token_a"}]},
  {"name": "tenant-b", "fixedHeaders": [{"name": "Authorization", "value": "Bearer $token_b"}]}
]}
JSON
cat >"$work/schemathesis.toml" <<TOML
[auth.wfc]
path = "$work/auth.json"
user = "tenant-a"
peers = ["tenant-a", "tenant-b"]
TOML

log "fuzzing $base/api/openapi.json"
# Logging out (here or everywhere) would revoke the token every later case uses. From the temp dir: schemathesis
# keeps a .schemathesis cache folder in the current directory.
set +e
(cd "$work" && exec "$venv/bin/st" --config-file "$work/schemathesis.toml" run "$base/api/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth,object_level_authorization \
    --exclude-path /api/auth/logout \
    --exclude-path /api/auth/logout-everywhere \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" \
    --max-time "${SCHEMATHESIS_MAX_TIME:-240}" \
    --workers 2 \
    --request-timeout 30 \
    --seed 8 \
    --report junit --report-dir "$target_dir/schemathesis-report" \
    --warnings off)
rc=$?
set -e
if [ $rc -ne 0 ]; then
    log "schemathesis found problems (report: $target_dir/schemathesis-report); server errors logged:"
    grep -i '"status":5\|ERROR' "$work/serve.log" | tail -20 >&2 || true
fi
exit $rc
