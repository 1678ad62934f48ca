#!/usr/bin/env bash
# Login flood benchmark (issue 16; not part of scripts/test.sh): a release `cloudspend demo` on
# its embedded SQLite store, then CONNECTIONS concurrent wrong logins for the demo user for
# DURATION (wrk from Debian), each from another (forwarded) address, while a signed-in user asks
# for the dashboard once a second.
# Prints: the server's peak RSS, how many guesses were judged (401) against refused (429/503),
# and the dashboard's slowest answer during the flood. Everything stays on 127.0.0.1.
#
# usage: scripts/login-flood.sh        env: CONNECTIONS=1000 DURATION=15s
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-1000}
DURATION=${DURATION:-15s}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
work=$(mktemp -d "${TMPDIR:-/tmp}/cloudspend-flood.XXXXXX")
server_pid=""
log() { printf '\033[1m[login-flood]\033[0m %s\n' "$*" >&2; }
cleanup() {
    local rc=$?
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT INT TERM

if ! command -v wrk >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { log "wrk is missing: apt-get install wrk"; exit 1; }
    log "installing Debian's wrk"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }
fi
ulimit -n 8192 2>/dev/null || true

cargo build -q --release -p cloudspend
bin="$target_dir/release/cloudspend"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
(cd "$work" && exec env -u DATABASE_URL CLOUDSPEND_BIND="127.0.0.1:$port" CLOUDSPEND_LOG=warn \
    CLOUDSPEND_TRUSTED_PROXY_HOPS=1 \
    "$bin" demo) >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do curl -sf "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
token=$(curl -sf "$base/api/auth/login" -H 'content-type: application/json' \
    -d '{"email": "demo@cloudspend.local", "password": "cloudspend-demo"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

# Each guess comes from a different address (X-Forwarded-For, the server trusting one proxy hop),
# as from a botnet: the per-address limits never trigger, and only the bound on concurrent
# password hashing stands between the flood and the machine.
cat >"$work/flood.lua" <<'LUA'
local counter = 0
request = function()
  counter = counter + 1
  local ip = string.format("10.%d.%d.%d", (counter / 65536) % 256, (counter / 256) % 256, counter % 256)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["X-Forwarded-For"] = ip},
    '{"email": "demo@cloudspend.local", "password": "a wrong guess 12345"}')
end
LUA
# Answers are counted on the server side, from its per-route Prometheus counters.
( while kill -0 "$server_pid" 2>/dev/null; do
      rss=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
      echo "$rss"
      sleep 0.2
  done ) >"$work/rss.txt" &
sampler=$!
( slowest=0
  while kill -0 "$server_pid" 2>/dev/null; do
      t=$(curl -s -o /dev/null -w '%{time_total}' -m 30 "$base/api/dashboard" -H "authorization: Bearer $token" || echo 30)
      echo "$t"
      sleep 1
  done ) >"$work/dashboard.txt" &
prober=$!
sleep 2
rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
log "$CONNECTIONS concurrent wrong logins for $DURATION against $base"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --timeout 10s -s "$work/flood.lua" "$base/api/auth/login" >"$work/wrk.txt" 2>&1 || true
sleep 2
kill "$sampler" "$prober" 2>/dev/null || true
metrics=$(curl -sf "$base/metrics")
status_count() {
    printf '%s\n' "$metrics" | grep '^http_requests_total' | grep 'route="/api/auth/login"' |
        grep "status=\"$1\"" | awk '{s += $NF} END {print s + 0}'
}
rss_peak=$(sort -n "$work/rss.txt" | tail -1)
cat "$work/wrk.txt"
echo "login answers: 401 (judged) $(status_count 401), 429 $(status_count 429), 503 $(status_count 503), 200 $(status_count 200)"
echo "overloaded (503 at the in-flight bound, before any route): $(printf '%s\n' "$metrics" | grep '^http_requests_overloaded_total' | awk '{print $NF}')"
echo "server RSS: $((rss_before / 1024)) MiB before the flood, peak $((rss_peak / 1024)) MiB"
echo "dashboard during the flood: $(wc -l <"$work/dashboard.txt") probes, slowest $(sort -n "$work/dashboard.txt" | tail -1) s"
