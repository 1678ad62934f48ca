#!/usr/bin/env bash
# Load benchmark (not part of scripts/test.sh): wrk at CONNECTIONS connections for DURATION on
# GET /api/dashboard, /api/costs and /test-cost (round robin, one tenant's token) against a real
# `cloudspend serve`, while the scheduler collects TENANTS other tenants (role connections to
# moto accounts, one-minute intervals, so collections run through the whole measurement).
# Prints errors (non-2xx and socket errors), p50/p90/p99 latency, requests/s, and the server's
# RSS before and after (and its peak). Figures go to docs/RELIABILITY.md.
#
# Needs what scripts/test.sh starts: CLOUDSPEND_TEST_POSTGRES_URL (a server where we may CREATE
# DATABASE), CLOUDSPEND_TEST_MOTO_URL, and psql (CLOUDSPEND_TEST_PG_BINDIR or PATH). Installs
# Debian's wrk when missing.
#
# usage: scripts/load-test.sh     env: DURATION=60s CONNECTIONS=64 THREADS=2 TENANTS=50
#                                      PROFILE=debug|release (which build of cloudspend to run)
set -euo pipefail

DURATION=${DURATION:-60s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
TENANTS=${TENANTS:-50}
PROFILE=${PROFILE:-debug}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
work=$(mktemp -d "${TMPDIR:-/tmp}/cloudspend-load.XXXXXX")
server_pid=""

log() { printf '\033[1m[load-test.sh]\033[0m %s\n' "$*" >&2; }
cleanup() {
    local rc=$?
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT INT TERM

: "${CLOUDSPEND_TEST_POSTGRES_URL:?set it to a PostgreSQL URL where we may CREATE DATABASE (scripts/test.sh starts one)}"
: "${CLOUDSPEND_TEST_MOTO_URL:?set it to a running moto_server URL (scripts/test.sh starts one)}"
psql_bin=psql
[ -n "${CLOUDSPEND_TEST_PG_BINDIR:-}" ] && psql_bin="$CLOUDSPEND_TEST_PG_BINDIR/psql"
if ! command -v wrk >/dev/null 2>&1; then
    log "installing Debian's wrk"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }
fi

if [ "$PROFILE" = release ]; then cargo build -q --release -p cloudspend; else cargo build -q -p cloudspend; fi
bin="$target_dir/$PROFILE/cloudspend"

db="cs_load_$(date +%s)_$$"
"$psql_bin" "$CLOUDSPEND_TEST_POSTGRES_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null
export DATABASE_URL="${CLOUDSPEND_TEST_POSTGRES_URL%/*}/$db"
export CLOUDSPEND_MASTER_KEY=6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f
"$bin" migrate >/dev/null
"$bin" user create load@example.com --tenant "Load Inc" --password "a long enough password" >"$work/user.txt"
load_tenant=$(sed -n 's/^created tenant Load Inc (\(.*\))$/\1/p' "$work/user.txt")
[ -n "$load_tenant" ] || { cat "$work/user.txt" >&2; log "no tenant id printed"; exit 1; }

# The measured tenant: 90 days x 5 services of Cost Explorer data preset in its moto account.
load_account=555500000000
python3 - "$CLOUDSPEND_TEST_MOTO_URL" "$load_account" <<'EOF'
import datetime, json, sys, urllib.request
moto, account = sys.argv[1], sys.argv[2]
today = datetime.date.today()
services = ["Amazon Elastic Compute Cloud - Compute", "Amazon Simple Storage Service",
            "Amazon Relational Database Service", "AWS Lambda", "Amazon CloudWatch"]
results = []
for n in range(90, 0, -1):
    day = today - datetime.timedelta(days=n)
    results.append({
        "TimePeriod": {"Start": day.isoformat(), "End": (day + datetime.timedelta(days=1)).isoformat()},
        "Total": {}, "Estimated": n < 3,
        "Groups": [{"Keys": [s, account], "Metrics": {
            "UnblendedCost": {"Amount": f"{(i + 1) * 3.25 + n % 7:.2f}", "Unit": "USD"},
            "AmortizedCost": {"Amount": f"{(i + 1) * 3.25 + n % 7:.2f}", "Unit": "USD"}}}
            for i, s in enumerate(services)]})
body = json.dumps({"account_id": account, "results": [
    {"GroupDefinitions": [], "ResultsByTime": results, "DimensionValueAttributes": []}]}).encode()
urllib.request.urlopen(urllib.request.Request(
    moto + "/moto-api/static/ce/cost-and-usage-results", data=body, method="POST")).read()
EOF

# TENANTS more tenants, each with a role connection to a moto account of its own. Seeded in SQL
# (sign-up is rate limited per address, which is the point of it).
"$psql_bin" "$DATABASE_URL" -q -v ON_ERROR_STOP=1 <<EOF >/dev/null
INSERT INTO tenants (id, name, external_id, created_at)
SELECT gen_random_uuid(), 'Load tenant ' || n, 'load-ext-' || n, now() FROM generate_series(1, $TENANTS) n;
INSERT INTO aws_connections (tenant_id, display_name, account_id, account_type, auth_method, role_arn,
                             regions, status, warnings, created_at, updated_at)
SELECT id, name, account, 'linked', 'role', 'arn:aws:iam::' || account || ':role/CloudSpendReadOnly',
       '["us-east-1"]', 'connected', '[]', now(), now()
FROM (SELECT id, name, lpad((444400000000 + row_number() OVER (ORDER BY id))::text, 12, '0') AS account
      FROM tenants WHERE name LIKE 'Load tenant %') t;
INSERT INTO aws_connections (tenant_id, display_name, account_id, account_type, auth_method, role_arn,
                             regions, status, warnings, created_at, updated_at)
VALUES ('$load_tenant', 'load', '$load_account', 'linked', 'role',
        'arn:aws:iam::$load_account:role/CloudSpendReadOnly', '["us-east-1"]', 'connected', '[]', now(), now());
EOF

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
(
    cd "$work"
    export CLOUDSPEND_BIND="127.0.0.1:$port" CLOUDSPEND_LOG=warn CLOUDSPEND_SCHEDULER_POLL_SECONDS=1
    export CLOUDSPEND_EC2_INTERVAL_MINUTES=1 CLOUDSPEND_CLOUDWATCH_INTERVAL_MINUTES=1 CLOUDSPEND_COSTEXPLORER_INTERVAL_MINUTES=1
    export AWS_ENDPOINT_URL="$CLOUDSPEND_TEST_MOTO_URL" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
    exec "$bin" serve
) >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    curl -sf "$base/healthz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
    sleep 0.2
done
token=$(curl -sf "$base/api/auth/login" -H 'content-type: application/json' \
    -d '{"email": "load@example.com", "password": "a long enough password"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

runs() {
    "$psql_bin" "$DATABASE_URL" -tA -c "SELECT count(*) FILTER (WHERE status = 'succeeded') || ' succeeded, ' || count(*) FILTER (WHERE status = 'failed') || ' failed, ' || count(*) FILTER (WHERE status = 'running') || ' running' FROM collection_runs"
}
# Wait for the first collection of the measured tenant (its costs) before measuring.
for _ in $(seq 1 120); do
    n=$("$psql_bin" "$DATABASE_URL" -tA -c "SELECT count(*) FROM daily_costs WHERE tenant_id = '$load_tenant'")
    [ "$n" -gt 0 ] && break
    sleep 1
done
from=$(date -u -d '-30 days' +%F); to=$(date -u +%F)
for path in "/api/dashboard" "/api/costs?from=$from&to=$to&group_by=service" "/test-cost?from=$from&to=$to"; do
    printf '%s -> %s\n' "$path" "$(curl -s -o /dev/null -w '%{http_code}' "$base$path" -H "authorization: Bearer $token")" >&2
done

rss() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$server_pid/status"; }
rss_before=$(rss VmRSS)
runs_before=$(runs)
cat >"$work/rotate.lua" <<EOF
local paths = {"/api/dashboard", "/api/costs?from=$from&to=$to&group_by=service", "/test-cost?from=$from&to=$to"}
local i = 0
request = function()
    i = i + 1
    return wrk.format("GET", paths[(i % #paths) + 1], {["authorization"] = "Bearer $token"})
end
EOF
log "wrk -t$THREADS -c$CONNECTIONS -d$DURATION on 3 paths while $TENANTS tenants are collected ($PROFILE build)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency -s "$work/rotate.lua" "$base" | tee "$work/wrk.txt"
rss_after=$(rss VmRSS)
rss_peak=$(rss VmHWM)
echo "collection runs before: $runs_before; after: $(runs)"
echo "server RSS: before ${rss_before} kB, after ${rss_after} kB, peak ${rss_peak} kB"
errors=$(grep -E 'Non-2xx|Socket errors' "$work/wrk.txt" || true)
echo "errors: ${errors:-none}"
