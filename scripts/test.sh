#!/usr/bin/env bash
# The one test command. Starts what the tests need, runs them, stops everything on exit:
#   - a throwaway PostgreSQL cluster (initdb in a temp dir, a free port, run as the `postgres`
#     user when we are root, because initdb and postgres refuse to run as root),
#   - the moto AWS emulator, pinned, from PyPI, in a virtualenv under the cargo target dir,
# and runs these stages (a full run, no arguments, runs them all; CI runs it that way):
#   checks   cargo fmt --check, rust-version against the lock file, the crate map
#            (docs/ARCHITECTURE.md), docker-compose.yml, cfn-lint
#   build    every target (libraries, binaries, tests, benches, examples) with clippy's lints
#            as errors: clippy-driver is the workspace's compiler wrapper, so the test build and
#            the lint share every compiled dependency instead of building them twice
#   test     cargo test --locked --workspace against PostgreSQL and moto
#   browser  the dashboard in headless Chromium (scripts/browser-test.sh)
#   fuzz     the API fuzzed from its OpenAPI document for a fixed time (scripts/schemathesis.sh),
#            beside the test and browser stages, against its own server, database and moto
# Arguments go to `cargo test` instead (e.g. -p cloudspend-store); only build and test run then,
# and the stages skipped are named on one line.
#
# usage: scripts/test.sh [extra arguments for cargo test]
set -euo pipefail

MOTO_VERSION="5.2.5"
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
mkdir -p "$target_dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/cloudspend-test.XXXXXX")
pg_root=""
pids=()

log() { printf '\033[1m[test.sh]\033[0m %s\n' "$*" >&2; }

cleanup() {
    local rc=$?
    for pid in "${pids[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    if [ -n "${pg_ctl:-}" ] && [ -d "$pg_root/data" ]; then
        as_pg "$pg_ctl" -D "$pg_root/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    case "$pg_root" in "$work"/*|"") ;; *) rm -rf "$pg_root" ;; esac
    exit $rc
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

as_pg() {
    # From /, because the postgres user may not be allowed into the current directory.
    if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

find_pg_bindir() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir 2>/dev/null || true)
        [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    done
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
}

start_postgres() {
    local bindir
    bindir=$(find_pg_bindir)
    if [ -z "$bindir" ] && command -v apt-get >/dev/null 2>&1; then
        log "PostgreSQL not found: installing Debian's postgresql package"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
        bindir=$(find_pg_bindir)
    fi
    [ -n "$bindir" ] || { log "PostgreSQL binaries not found and cannot be installed"; exit 1; }
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    pg_ctl="$bindir/pg_ctl"
    local port; port=$(free_port)
    # Everything the server writes lives in one folder the postgres user owns. As root, that
    # user must be able to reach it: a TMPDIR in root's home (mode 700) is out of its reach, and
    # then the cluster lives under /tmp instead.
    chmod 755 "$work"
    pg_root="$work/pg"
    if [ "$(id -u)" = 0 ] && ! (cd / && runuser -u postgres -- test -x "$work"); then
        pg_root=$(mktemp -d /tmp/cloudspend-pg.XXXXXX)
        chmod 755 "$pg_root"
    fi
    mkdir -p "$pg_root"
    if [ "$(id -u)" = 0 ]; then chown postgres "$pg_root"; fi
    as_pg "$bindir/initdb" -D "$pg_root/data" -U postgres -A trust -E UTF8 --no-locale >"$work/initdb.log" 2>&1 \
        || { cat "$work/initdb.log" >&2; exit 1; }
    # Durability off: a throwaway cluster, and tests are much faster without fsync.
    as_pg "$pg_ctl" -D "$pg_root/data" -l "$pg_root/postgres.log" -w -t 60 \
        -o "-p $port -k $pg_root -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null || { cat "$pg_root/postgres.log" >&2; exit 1; }
    export CLOUDSPEND_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    # Tests that inspect a database dump run this cluster's pg_dump.
    export CLOUDSPEND_TEST_PG_BINDIR="$bindir"
    log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on port $port"
}

# Starts a moto server and sets moto_url; `start_moto NAME` logs to $work/NAME.log.
start_moto() {
    local name=$1
    local venv="$target_dir/moto-venv-$MOTO_VERSION"
    if [ ! -x "$venv/bin/moto_server" ]; then
        log "installing moto[server]==$MOTO_VERSION into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    fi
    local port; port=$(free_port)
    # From its own folder: moto's request recorder writes its file into the current directory.
    mkdir -p "$work/$name"
    (cd "$work/$name" && exec "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/$name.log" 2>&1) &
    pids+=($!)
    for _ in $(seq 1 100); do
        if curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
            log "moto $MOTO_VERSION ($name) on port $port"
            moto_url="http://127.0.0.1:$port"
            return
        fi
        sleep 0.2
    done
    cat "$work/$name.log" >&2
    log "moto ($name) did not start"; exit 1
}

check_compose() {
    # docker-compose validates the file where it is installed; elsewhere (an ordinary user
    # cannot apt-get it) the file's structure and variables are checked without Docker.
    if command -v docker-compose >/dev/null 2>&1; then
        # .env.example supplies every variable the compose file uses.
        docker-compose --env-file .env.example -f docker-compose.yml config -q
        log "docker-compose.yml is valid (docker-compose config)"
    else
        "$target_dir/cfn-lint-venv/bin/python" scripts/check-compose.py docker-compose.yml .env.example
    fi
}

# clippy-driver wraps rustc for the workspace's own crates only: the lints run during the test
# build, and dependencies are compiled once for both. (This is how `cargo clippy` itself works,
# with a full build instead of `cargo check`.)
clippy_build() {
    RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)" \
    CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
        "$@"
}

full_run=0
skipped=""
if [ $# -eq 0 ]; then
    full_run=1
    set -- --workspace --no-fail-fast
else
    skipped="checks (fmt, rust-version, crate map, compose, cfn-lint), benches and examples build, browser, fuzz"
    log "arguments given: skipping $skipped"
fi
command -v clippy-driver >/dev/null 2>&1 || { log "clippy-driver not found: rustup component add clippy"; exit 1; }

# How long each stage took, printed at the end.
stage_times=""
stage_started=$SECONDS
stage_done() {
    stage_times="$stage_times $1 $((SECONDS - stage_started)) s;"
    stage_started=$SECONDS
}

if [ "$full_run" = 1 ]; then
    log "cargo fmt --check"
    cargo fmt --all --check
    cargo metadata --format-version 1 --locked | python3 scripts/check-msrv.py
    # The crate map of docs/ARCHITECTURE.md: no dependency a crate's layer forbids.
    cargo metadata --format-version 1 --locked | python3 scripts/check-architecture.py
    # The tenant-side CloudFormation template must lint clean (cfn-lint from PyPI, pinned).
    "$repo/scripts/check-cfn.sh"
    check_compose
    stage_done checks
fi

start_postgres
start_moto tests
export CLOUDSPEND_TEST_MOTO_URL="$moto_url"
stage_done services

if [ "$full_run" = 1 ]; then
    # Every target, benches and examples included (in the test profile: the same code `cargo
    # bench --no-run` compiles, without a second, optimised build of every dependency).
    log "building every target with clippy's lints as errors"
    clippy_build cargo test --locked --workspace --all-targets --no-run
    stage_done build
fi
# The workspace test build includes the cloudspend binary (its integration tests run it).
export CLOUDSPEND_BIN="$target_dir/debug/cloudspend"

fuzz_pid=""
if [ "$full_run" = 1 ]; then
    # The fuzzer runs for a fixed time budget against its own server, database and moto (so
    # nothing it creates reaches a test's AWS), beside the test suite: much of the suite waits
    # on clocks, PostgreSQL and moto (the scale-out test alone watches two one-minute
    # intervals), and run one after the other the two took about nine minutes of a warm CI run.
    start_moto fuzz
    log "fuzzing the API beside the tests (output: $work/fuzz.log, printed when it ends)"
    CLOUDSPEND_TEST_MOTO_URL="$moto_url" "$repo/scripts/schemathesis.sh" >"$work/fuzz.log" 2>&1 &
    fuzz_pid=$!
    pids+=("$fuzz_pid")
fi

log "cargo test --locked $*"
test_rc=0
clippy_build cargo test --locked "$@" || test_rc=$?
stage_done test

browser_rc=0
if [ "$full_run" = 1 ]; then
    "$repo/scripts/browser-test.sh" || browser_rc=$?
    stage_done browser
fi

fuzz_rc=0
if [ -n "$fuzz_pid" ]; then
    wait "$fuzz_pid" || fuzz_rc=$?
    stage_done "fuzz (rest)"
    log "fuzz output:"
    cat "$work/fuzz.log" >&2
fi
[ -n "$stage_times" ] && log "stage times:$stage_times"
if [ $test_rc -ne 0 ] || [ $browser_rc -ne 0 ] || [ $fuzz_rc -ne 0 ]; then
    if [ "$full_run" = 1 ]; then
        log "FAILED: cargo test exit $test_rc, browser exit $browser_rc, fuzz exit $fuzz_rc"
    else
        log "FAILED: cargo test exit $test_rc"
    fi
    exit 1
fi
if [ -n "$skipped" ]; then log "done; skipped: $skipped"; fi
