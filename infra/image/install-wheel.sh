#!/usr/bin/env bash
# Install Hito into a fresh virtual environment the way the image does: the locked runtime
# tree first (exact versions, hashes checked, nothing resolved), then the wheel itself with no
# dependency resolution, then `pip check`. The Dockerfile's runtime stage runs exactly this.
# Usage: install-wheel.sh <venv-dir> <lock-file> <wheel> [<python>]
set -euo pipefail
venv="${1:?usage: install-wheel.sh <venv-dir> <lock-file> <wheel> [python]}"
lock="${2:?usage: install-wheel.sh <venv-dir> <lock-file> <wheel> [python]}"
wheel="${3:?usage: install-wheel.sh <venv-dir> <lock-file> <wheel> [python]}"
python="${4:-python3.11}"
"$python" -m venv "$venv"
pip=("$venv/bin/pip" --quiet --disable-pip-version-check --no-input)
"${pip[@]}" install --require-hashes --no-deps -r "$lock"
"${pip[@]}" install --no-deps "$wheel"
"$venv/bin/pip" check
"$venv/bin/hito" --version
