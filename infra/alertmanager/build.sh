#!/usr/bin/env bash
# Build Alertmanager (alertmanager, amtool) from the Go module proxy and cache the binaries.
#
# The web UI is built with npm and embedded from ui/app/dist, which the module does not
# contain (`//go:embed app/dist` would not compile). The writable source copy gets a one-page
# placeholder there instead; the API (/api/v2), /-/ready and /-/healthy do not need the UI.
# Pure Go: no cgo (`netgo`, as upstream).
#
# Usage: build.sh                                 -> $HITO_CACHE/bin/{alertmanager,amtool}-v<version>
#        (and the stable names $HITO_CACHE/bin/{alertmanager,amtool} linked to them: the Makefile
#        puts that bin/ on PATH)
#        build.sh <out-dir>                       -> <out-dir>/alertmanager, <out-dir>/amtool
#        build.sh <alertmanager-out> <amtool-out>
# Skips the build when both binaries exist and print the expected version. Progress on stderr.
set -euo pipefail

ALERTMANAGER_VERSION="${ALERTMANAGER_VERSION:-0.35.0}"
module_version="v$ALERTMANAGER_VERSION"
cache="${HITO_CACHE:-${HITO_CACHE_DIR:-$HOME/.cache/hito}}"
work="$cache/build/alertmanager-$module_version"

case $# in
  0) am="$cache/bin/alertmanager-v$ALERTMANAGER_VERSION" tool="$cache/bin/amtool-v$ALERTMANAGER_VERSION" link=1 ;;
  1) am="$1/alertmanager" tool="$1/amtool" ;;
  2) am="$1" tool="$2" ;;
  *) echo "usage: build.sh [<out-dir> | <alertmanager-out> <amtool-out>]" >&2; exit 2 ;;
esac

# Stable names for people and the PATH (`hito up` and the tests run the versioned files).
link_stable() {
  if [[ -n "${link:-}" ]]; then
    ln -sfn "$(basename "$am")" "$cache/bin/alertmanager"
    ln -sfn "$(basename "$tool")" "$cache/bin/amtool"
  fi
}
built() { [[ -x "$1" ]] && "$1" --version 2>&1 | grep -q "version $ALERTMANAGER_VERSION "; }
if built "$am" && built "$tool"; then
  echo "[alertmanager] $ALERTMANAGER_VERSION already built: $am $tool" >&2
  link_stable
  exit 0
fi

export GOTOOLCHAIN=local CGO_ENABLED=0
command -v go >/dev/null || { echo "go is required" >&2; exit 1; }

mkdir -p "$work" "$(dirname "$am")" "$(dirname "$tool")"
echo "[alertmanager] downloading module source github.com/prometheus/alertmanager@$module_version" >&2
src_ro=$(cd "$work" && go mod download -json "github.com/prometheus/alertmanager@$module_version" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d "$src_ro" ]] || { echo "go mod download gave no source directory" >&2; exit 1; }
found=$(cat "$src_ro/VERSION")
[[ "$found" == "$ALERTMANAGER_VERSION" ]] ||
  { echo "module $module_version is Alertmanager $found, not $ALERTMANAGER_VERSION" >&2; exit 1; }

src="$work/src"
if [[ ! -f "$src/go.mod" ]]; then
  rm -rf "$src.tmp"
  cp -r "$src_ro" "$src.tmp"
  chmod -R u+w "$src.tmp"
  # ui/web.go serves index.html from index.html.gz under app/dist/{elm,mantine}.
  page='<!doctype html><title>Alertmanager</title><p>Web UI not built (Hito builds the API only): see /api/v2/status.</p>'
  for ui in elm mantine; do
    mkdir -p "$src.tmp/ui/app/dist/$ui"
    printf '%s\n' "$page" | gzip -9n >"$src.tmp/ui/app/dist/$ui/index.html.gz"
  done
  mv "$src.tmp" "$src"
fi

# The version variables upstream's promu sets (prometheus/common/version); the module zip has
# no git metadata, so the revision names the module version it was built from.
v=github.com/prometheus/common/version
ldflags="-X $v.Version=$ALERTMANAGER_VERSION -X $v.Revision=$module_version -X $v.Branch=go-module-proxy
  -X $v.BuildUser=hito -X $v.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)"

echo "[alertmanager] building alertmanager and amtool $ALERTMANAGER_VERSION (no UI; a few min cold on 2 cores)" >&2
for pair in "alertmanager:$am" "amtool:$tool"; do
  name=${pair%%:*} out=${pair#*:}
  echo "[alertmanager] go build ./cmd/$name" >&2
  (cd "$src" && nice -n "${HITO_BUILD_NICE:-10}" go build -trimpath -tags netgo \
    -ldflags "$ldflags" -o "$out.tmp" "./cmd/$name")
  mv "$out.tmp" "$out"
  "$out" --version 2>&1 | head -1 >&2
done
link_stable
echo "[alertmanager] built $am $tool" >&2
