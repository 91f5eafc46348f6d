#!/usr/bin/env bash
# Build Prometheus 3 (prometheus, promtool) from the Go module proxy and cache the binaries.
#
# Prometheus 3.x.y is published as the Go module version v0.3xx.y (3.16.0 = v0.316.0); the
# module's VERSION file says which 3.x it is. The web UI is built with npm and is not needed
# (API, rules, promtool): upstream's release build adds the `builtinassets` tag, which embeds
# a generated file the module does not contain, so it is left out and the server serves its
# API with no UI pages. Pure Go: no cgo (`netgo`, as upstream).
#
# Usage: build.sh                                 -> $HITO_CACHE/bin/{prometheus,promtool}-v<version>
#        (and the stable names $HITO_CACHE/bin/{prometheus,promtool} linked to them: the Makefile
#        puts that bin/ on PATH)
#        build.sh <out-dir>                       -> <out-dir>/prometheus, <out-dir>/promtool
#        build.sh <prometheus-out> <promtool-out>
# Skips the build when both binaries exist and print the expected version. Progress on stderr.
set -euo pipefail

PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-3.16.0}"
IFS=. read -r major minor patch <<<"$PROMETHEUS_VERSION"
module_version="v0.$((major * 100 + minor)).$patch"
cache="${HITO_CACHE:-${HITO_CACHE_DIR:-$HOME/.cache/hito}}"
work="$cache/build/prometheus-$module_version"

case $# in
  0) prom="$cache/bin/prometheus-v$PROMETHEUS_VERSION" tool="$cache/bin/promtool-v$PROMETHEUS_VERSION" link=1 ;;
  1) prom="$1/prometheus" tool="$1/promtool" ;;
  2) prom="$1" tool="$2" ;;
  *) echo "usage: build.sh [<out-dir> | <prometheus-out> <promtool-out>]" >&2; exit 2 ;;
esac

# Stable names for people and the PATH (`hito up` and the tests run the versioned files).
link_stable() {
  if [[ -n "${link:-}" ]]; then
    ln -sfn "$(basename "$prom")" "$cache/bin/prometheus"
    ln -sfn "$(basename "$tool")" "$cache/bin/promtool"
  fi
}
built() { [[ -x "$1" ]] && "$1" --version 2>&1 | grep -q "version $PROMETHEUS_VERSION "; }
if built "$prom" && built "$tool"; then
  echo "[prometheus] $PROMETHEUS_VERSION already built: $prom $tool" >&2
  link_stable
  exit 0
fi

# Never let Go fetch another toolchain (go.mod of 3.16 asks for go 1.26.7). The module zip
# ships upstream's go.work, which lists modules the zip leaves out: build the module alone.
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
command -v go >/dev/null || { echo "go is required" >&2; exit 1; }

mkdir -p "$work" "$(dirname "$prom")" "$(dirname "$tool")"
echo "[prometheus] downloading module source github.com/prometheus/prometheus@$module_version" >&2
src_ro=$(cd "$work" && go mod download -json "github.com/prometheus/prometheus@$module_version" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d "$src_ro" ]] || { echo "go mod download gave no source directory" >&2; exit 1; }
found=$(cat "$src_ro/VERSION")
[[ "$found" == "$PROMETHEUS_VERSION" ]] ||
  { echo "module $module_version is Prometheus $found, not $PROMETHEUS_VERSION" >&2; exit 1; }

src="$work/src"
if [[ ! -f "$src/go.mod" ]]; then
  rm -rf "$src.tmp"
  cp -r "$src_ro" "$src.tmp"
  chmod -R u+w "$src.tmp"
  mv "$src.tmp" "$src"
fi

# The version variables upstream's promu sets (prometheus/common/version); the module zip has
# no git metadata, so the revision names the module version it was built from.
v=github.com/prometheus/common/version
ldflags="-X $v.Version=$PROMETHEUS_VERSION -X $v.Revision=$module_version -X $v.Branch=go-module-proxy
  -X $v.BuildUser=hito -X $v.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)"

echo "[prometheus] building prometheus and promtool $PROMETHEUS_VERSION (no UI; ~10 min cold on 2 cores)" >&2
for pair in "prometheus:$prom" "promtool:$tool"; do
  name=${pair%%:*} out=${pair#*:}
  echo "[prometheus] go build ./cmd/$name" >&2
  (cd "$src" && nice -n "${HITO_BUILD_NICE:-10}" go build -trimpath -tags netgo \
    -ldflags "$ldflags" -o "$out.tmp" "./cmd/$name")
  mv "$out.tmp" "$out"
  "$out" --version 2>&1 | head -1 >&2
done
link_stable
echo "[prometheus] built $prom $tool" >&2
