#!/usr/bin/env bash
# Build Hito's wheel from a source tree with the locked build backend (no build isolation:
# setuptools and wheel come from lock/build.txt, hashes checked). The Dockerfile's build
# stage runs exactly this; so do `make image-check` (infra/image/check.sh) and the packaging
# test (tests/integration/packaging/test_wheel.py, which is how CI builds it).
# Usage: build-wheel.sh <source-dir> <out-dir> [<python>]     -> <out-dir>/hito-<version>-*.whl
set -euo pipefail
src="$(cd "${1:?usage: build-wheel.sh <source-dir> <out-dir> [python]}" && pwd)"
out="${2:?usage: build-wheel.sh <source-dir> <out-dir> [python]}"
python="${3:-python3.11}"
mkdir -p "$out"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
"$python" -m venv "$tools/venv"
"$tools/venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps \
  -r "$src/lock/build.txt"
# A copy of the tree: setuptools writes build/ and *.egg-info next to the sources.
mkdir "$tools/src"
(cd "$src" && tar -cf - --exclude=./build --exclude=./.venv --exclude=./.git \
  --exclude='*.egg-info' --exclude=__pycache__ --exclude=./.hito .) | tar -xf - -C "$tools/src"
"$tools/venv/bin/pip" wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  -w "$out" "$tools/src"
ls "$out"/hito-*.whl
