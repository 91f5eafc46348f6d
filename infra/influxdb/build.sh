#!/usr/bin/env bash
# Build InfluxDB 2 OSS (influxd) from the Go module proxy and cache the binary.
#
# Why not `go install`: every 2.x go.mod has `replace` directives, so the module is built
# from a writable copy of its source. Flux needs libflux (Rust); InfluxData's pkg-config
# wrapper builds it with cargo when Go asks for the `flux` package.
#
# Usage: build.sh <output-binary>   (prints progress lines on stderr; full log in $HITO_CACHE)
set -euo pipefail

INFLUXDB_VERSION="${INFLUXDB_VERSION:-v2.9.1}"
PKG_CONFIG_VERSION="${PKG_CONFIG_VERSION:-v0.3.0}"
out="${1:?usage: build.sh <output-binary>}"
cache="${HITO_CACHE:-$HOME/.cache/hito}"
work="$cache/build/influxdb-$INFLUXDB_VERSION"

if [[ -x "$out" ]] && "$out" version >/dev/null 2>&1; then
  echo "influxd already built: $out" >&2
  exit 0
fi

# Flux pins an old Rust in rust-toolchain.toml that rustup cannot download here; flux crates
# deny(warnings) and newer compilers add lints; never let Go fetch another toolchain.
export RUSTUP_TOOLCHAIN=stable RUSTFLAGS="--cap-lints=warn" GOTOOLCHAIN=local
export GOFLAGS=-mod=mod CGO_ENABLED=1
command -v pkg-config >/dev/null || { echo "the real pkg-config must be on PATH (apt-get install pkg-config)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "cargo (Rust) is required to build libflux" >&2; exit 1; }

mkdir -p "$work" "$(dirname "$out")"
echo "[influxdb] downloading module source $INFLUXDB_VERSION" >&2
src_ro=$(cd "$work" && go mod download -json "github.com/influxdata/influxdb/v2@$INFLUXDB_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d "$src_ro" ]] || { echo "go mod download gave no source directory" >&2; exit 1; }

src="$work/src"
if [[ ! -f "$src/go.mod" ]]; then
  rm -rf "$src.tmp"
  cp -r "$src_ro" "$src.tmp"
  chmod -R u+w "$src.tmp"
  mv "$src.tmp" "$src"
fi

echo "[influxdb] building InfluxData pkg-config wrapper $PKG_CONFIG_VERSION" >&2
(cd "$src" && go build -o "$work/bin/pkg-config" "github.com/influxdata/pkg-config")
export PKG_CONFIG="$work/bin/pkg-config"

echo "[influxdb] building influxd (libflux with cargo, then Go; 15-30 min cold on 2 cores)" >&2
# Tags as upstream's release build, minus `assets` (no UI is served).
(cd "$src" && go build -v -tags sqlite_foreign_keys,sqlite_json \
  -ldflags "-X main.version=${INFLUXDB_VERSION#v} -X main.commit=go-module-proxy" \
  -o "$out.tmp" ./cmd/influxd)
mv "$out.tmp" "$out"
"$out" version >&2
echo "[influxdb] built $out" >&2
