#!/usr/bin/env bash
# The Compose Specification's JSON Schema (compose-spec.json, the one `docker compose` itself
# validates with), from the compose-go module on the Go module proxy, cached: the unit tests
# check docker-compose.yml against it where no Docker engine runs. Prints the cached path.
# Usage: compose-schema.sh      -> $HITO_CACHE_DIR/compose-spec/compose-spec-<version>.json
set -euo pipefail
version="${COMPOSE_GO_VERSION:-v2.17.0}"
cache="${HITO_CACHE_DIR:-$HOME/.cache/hito}/compose-spec"
out="$cache/compose-spec-$version.json"
if [[ -s "$out" ]]; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "go is required" >&2; exit 1; }
mkdir -p "$cache"
# The module's zip (the proxy's own artifact, checked against the checksum database); only one
# file of it is needed, so it is read from the zip rather than built or extracted. (go reports
# an error when the module asks for a newer Go than this machine's, after downloading the zip.)
zip=$(cd "$cache" && { GOTOOLCHAIN=local GOFLAGS=-mod=mod \
  go mod download -json "github.com/compose-spec/compose-go/v2@$version" || true; } \
  | sed -n 's/^[[:space:]]*"Zip": "\(.*\)",$/\1/p')
[[ -f "$zip" ]] || { echo "go mod download gave no zip for compose-go $version" >&2; exit 1; }
python3 - "$zip" "github.com/compose-spec/compose-go/v2@$version/schema/compose-spec.json" \
  "$out.tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], "wb") as out:
    out.write(z.read(sys.argv[2]))
PY
mv "$out.tmp" "$out"
echo "$out"
