#!/usr/bin/env bash
# The image's build, without a Docker engine (`make image-check`; CI checks the same in its
# test command: tests/unit/infra/test_compose.py, tests/integration/packaging/test_wheel.py).
# In a clean temporary directory:
#   1. every file and folder the Dockerfile COPYs exists, and .dockerignore keeps infra/dev out;
#   2. the wheel builds from a clean copy of the tree (the files git knows) with the locked
#      build backend (infra/image/build-wheel.sh, the Dockerfile's build stage);
#   3. it installs into a fresh venv from the runtime lock (infra/image/install-wheel.sh, the
#      runtime stage), and `hito` answers from an empty directory.
# tests/integration/packaging/test_wheel.py runs the same scripts and checks the commands' output.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-python3.11}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say() { echo "[image-check] $*" >&2; }

say "Dockerfile inputs"
while read -r line; do
  # COPY <src>... <dest> (build-stage copies are checked by the build itself)
  read -ra words <<<"${line#COPY }"
  for src in "${words[@]:0:${#words[@]}-1}"; do
    [[ -e "$root/$src" ]] || { say "Dockerfile copies $src, which does not exist"; exit 1; }
  done
done < <(grep -E '^COPY ' "$root/Dockerfile" | grep -v -- '--from=')
grep -qx 'infra/dev/' "$root/.dockerignore" || { say ".dockerignore must exclude infra/dev/"; exit 1; }
grep -q '^USER hito' "$root/Dockerfile" || { say "the image must run as the hito user"; exit 1; }

say "clean copy of the tree"
mkdir "$work/src"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard \
    | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
    | tar --null -T - -cf -) | tar -xf - -C "$work/src"
else
  cp -r "$root/." "$work/src"
fi

say "wheel (locked build backend)"
bash "$work/src/infra/image/build-wheel.sh" "$work/src" "$work/dist" "$python" >/dev/null
wheel=$(ls "$work"/dist/hito-*.whl)
say "$(basename "$wheel")"

say "fresh venv from lock/runtime.txt, then the wheel"
bash "$work/src/infra/image/install-wheel.sh" "$work/venv" "$work/src/lock/runtime.txt" "$wheel" "$python"

say "commands from an empty directory"
mkdir "$work/empty"
cd "$work/empty"
"$work/venv/bin/hito" --version
"$work/venv/bin/hito" worker --help >/dev/null
"$work/venv/bin/hito" schema export --dir "$work/empty/contract" >/dev/null
ls "$work/empty/contract/jsonschema"/*.schema.json >/dev/null
say "ok"
