#!/usr/bin/env bash
# A cold `make setup`, `make up` and `make demo` (issue #20): a fresh clone with every build
# and download cache empty (Hito's cache with Kafka's jars and the InfluxDB, Prometheus and
# Alertmanager builds; Go's module and build caches; Maven's repository; pip's and npm's
# caches; Cargo's registry) and its own state directory. Prints each step's seconds.
#
#   bench/cold_start.sh [CLONE_FROM]        # default: this repository
#   COLD_COMMIT=e7b9439 bench/cold_start.sh  # an earlier commit (the "before" of a change)
#
# The local stack's ports must be free (`hito down` first) and the machine quiet: the builds
# use every core. Debian packages (make setup's apt step) stay installed: they cannot be
# removed for a measurement, so their install time is not in the figure.
set -uo pipefail

from="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
root="${COLD_DIR:-/tmp/hito-cold}"
rm -rf "$root"
mkdir -p "$root/cache"
git clone -q "$from" "$root/repo"
if [[ -n "${COLD_COMMIT:-}" ]]; then git -C "$root/repo" checkout -q "$COLD_COMMIT" || exit 1; fi
export HITO_CACHE_DIR="$root/cache/hito" HITO_STATE_DIR="$root/state"
export GOMODCACHE="$root/cache/gomod" GOCACHE="$root/cache/gobuild" GOPATH="$root/cache/gopath"
export CARGO_HOME="$root/cache/cargo" PIP_CACHE_DIR="$root/cache/pip"
export npm_config_cache="$root/cache/npm" MAVEN_OPTS="-Dmaven.repo.local=$root/cache/m2"
export PATH="$HITO_CACHE_DIR/bin:$HOME/.cargo/bin:$PATH"
cd "$root/repo" || exit 1

started=$(date +%s)
status=0
for target in setup up demo; do
    t=$(date +%s)
    make "$target" > "$root/$target.log" 2>&1
    rc=$?
    echo "make $target: exit $rc, $(($(date +%s) - t)) s (log: $root/$target.log)"
    if ((rc != 0)); then status=$rc; break; fi
done
echo "cold make setup + up + demo: $(($(date +%s) - started)) s"
.venv/bin/hito down > /dev/null 2>&1
exit "$status"
