#!/usr/bin/env bash
# Creates (or refreshes) the bench's own virtualenv, <cache>/venv-bench (HITO_CACHE_DIR,
# default ~/.cache/hito; BENCH_VENV overrides the path): the Quix Streams peer and py-spy.
# Idempotent: does nothing when the stamp is newer than bench/requirements.txt; pip's cache
# makes a rebuild take seconds. Usage: bash bench/setup.sh [PYTHON]   (default python3.11)
# Hito itself is not installed here: the venv is shared by every clone under the cache, so an
# install would run whichever clone set it up last. The harness puts the hito package it runs
# (and only that) on the peer's path for each run (hito.bench.contenders.peer_pythonpath).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-${PYTHON:-python3.11}}"
VENV="${BENCH_VENV:-${HITO_CACHE_DIR:-$HOME/.cache/hito}/venv-bench}"
REQ=bench/requirements.txt
STAMP="$VENV/.installed-stamp"
if [[ -f "$STAMP" && "$STAMP" -nt "$REQ" ]]; then
  exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
touch "$STAMP"
echo "bench: $VENV ready ($("$VENV/bin/python" -W ignore -c 'import quixstreams; print("quixstreams", quixstreams.__version__)' 2>/dev/null))"
