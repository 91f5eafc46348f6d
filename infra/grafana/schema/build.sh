#!/usr/bin/env bash
# Grafana's dashboard JSON Schema, generated from @grafana/schema's TypeScript types (the same
# version as the Grafana image in docker-compose.yml) with ts-json-schema-generator. Packages
# come from the npm registry at the versions in package-lock.json; the result is cached under
# ~/.cache/hito/grafana-schema/<lock hash>/ and its path printed. A second run is instant.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache="${HITO_CACHE_DIR:-$HOME/.cache/hito}/grafana-schema"
key=$(sha256sum "$here/package-lock.json" | cut -c1-16)
work="$cache/$key"
out="$work/dashboard.schema.json"
if [ -s "$out" ]; then
  echo "$out"
  exit 0
fi
command -v npm >/dev/null || { echo "npm is missing (Node.js 18+ with npm)" >&2; exit 1; }
mkdir -p "$work"
cp "$here/package.json" "$here/package-lock.json" "$work/"
(cd "$work" && npm ci --no-audit --no-fund --loglevel=error >&2)
(cd "$work" && ./node_modules/.bin/ts-json-schema-generator \
  --path node_modules/@grafana/schema/dist/esm/raw/dashboard/x/dashboard_types.gen.d.ts \
  --type Dashboard --no-type-check -o "$out.tmp" >&2)
mv "$out.tmp" "$out"
echo "$out"
