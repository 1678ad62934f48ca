#!/usr/bin/env bash
# Lint the CloudFormation templates in cfn/ with cfn-lint (pinned, from PyPI).
#
# cfn-lint is installed once into a virtualenv under the cargo target dir and reused. Only PyPI
# must be reachable, and only the first time: the resource specs cfn-lint checks against ship
# inside the package, nothing else is downloaded.
#
# Exit status: non-zero when cfn-lint reports an error (E) or cannot run. Warnings (W) and
# informational findings (I) are printed but do not fail the check.
#
# usage: scripts/check-cfn.sh [template ...]     (default: cfn/*.yml)
set -euo pipefail

CFN_LINT_VERSION="1.58.0"
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
venv="$target_dir/cfn-lint-venv"

log() { printf '\033[1m[check-cfn]\033[0m %s\n' "$*" >&2; }

installed_version() {
    "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("cfn-lint"))' 2>/dev/null || true
}

if [ ! -x "$venv/bin/cfn-lint" ] || [ "$(installed_version)" != "$CFN_LINT_VERSION" ]; then
    log "installing cfn-lint==$CFN_LINT_VERSION into $venv"
    mkdir -p "$target_dir"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "cfn-lint==$CFN_LINT_VERSION" \
        || { log "could not install cfn-lint==$CFN_LINT_VERSION from PyPI"; exit 1; }
fi

if [ $# -eq 0 ]; then
    shopt -s nullglob
    set -- cfn/*.yml cfn/*.yaml
    shopt -u nullglob
fi
[ $# -gt 0 ] || { log "no templates found in cfn/"; exit 1; }

# cfn-lint's exit code is a bit mask: 2 = error, 4 = warning, 8 = informational (1 = it crashed).
# Lint all regions the template is meant for: the role is global, the CUR export is us-east-1.
set +e
"$venv/bin/cfn-lint" --format parseable --regions us-east-1 eu-west-1 -- "$@"
rc=$?
set -e

if [ $rc -eq 0 ]; then
    log "cfn-lint $CFN_LINT_VERSION: $* clean"
elif [ $((rc & 3)) -ne 0 ]; then
    log "cfn-lint $CFN_LINT_VERSION: errors in $* (exit $rc)"
    exit 1
else
    log "cfn-lint $CFN_LINT_VERSION: warnings only in $* (exit $rc), not failing"
fi
