#!/usr/bin/env bash
# Install the Debian packages Hito's local stack needs, only those whose command is missing
# (a warm machine skips apt entirely). Go and Rust come from the machine's own toolchains
# (Debian's are too old for InfluxDB 2.9): infra/influxdb/build.sh checks for them. Runs as root, or through sudo when it is available.
set -euo pipefail

declare -A need=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [pkg-config]=pkg-config
  [mvn]=maven
  [java]=openjdk-17-jre-headless
  [gcc]=gcc
  [g++]=g++
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
if ((${#missing[@]} == 0)); then
  echo "[debian] all packages present" >&2
  exit 0
fi
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "[debian] installing: ${pkgs[*]}" >&2
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${pkgs[@]}"
# The packages may start system services on the default ports; Hito runs its own instances.
for svc in prometheus prometheus-alertmanager; do
  if command -v service >/dev/null 2>&1; then $sudo service "$svc" stop >/dev/null 2>&1 || true; fi
done
