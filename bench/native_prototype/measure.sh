#!/usr/bin/env bash
# Build the native prototype (Rust + PyO3, crates from crates.io) and measure it against
# Hito's own stages on the same events (README.md). Not part of the product or of CI.
#
#   bench/native_prototype/measure.sh [EVENTS [ROUNDS]]     # default 20000 5
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/hito/native-prototype}"
cargo build --release --locked --quiet --manifest-path "$here/Cargo.toml" --target-dir "$target"
lib="$(mktemp -d)"
trap 'rm -rf "$lib"' EXIT
cp "$target/release/libhito_native_proto.so" "$lib/hito_native_proto.so"
HITO_PROFILE="${HITO_PROFILE:-development}" PYTHONPATH="$lib" \
    "$root/.venv/bin/python" "$here/measure.py" "$@"
