#!/usr/bin/env bash
# Install the Debian packages Hito's local stack needs, only those whose command is missing
# (a warm machine skips apt entirely). Go and Rust come from the machine's own toolchains
# (Debian's are too old for InfluxDB 2.9 and Prometheus 3): the build scripts check for them.
# Prometheus and Alertmanager are built from the Go module proxy (infra/prometheus/build.sh,
# infra/alertmanager/build.sh), not taken from Debian (2.42 and 0.25, built with Go 1.19).
# Runs as root, or through sudo when it is available.
set -euo pipefail

sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"

# Nothing Hito's setup leaves behind may start by itself at boot, on all interfaces. Debian's
# prometheus packages (installed by earlier versions of this script) enable their units:
# disable them. Hito runs its own instances, on loopback, when asked.
for unit in prometheus prometheus-alertmanager prometheus-node-exporter; do
  if dpkg-query -W -f='${Status}' "$unit" 2>/dev/null | grep -q "ok installed"; then
    if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled "$unit" >/dev/null 2>&1; then
      echo "[debian] disabling the $unit unit (Hito runs its own Prometheus 3 and Alertmanager)" >&2
      $sudo systemctl disable "$unit" >/dev/null 2>&1 || true
    fi
  fi
done

declare -A need=(
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
echo "[debian] installing: ${pkgs[*]}" >&2
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${pkgs[@]}"
