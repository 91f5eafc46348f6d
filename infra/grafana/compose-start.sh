#!/usr/bin/env bash
# docker-compose entrypoint of the Grafana service (grafana/grafana-oss image); its arguments
# are the image's own entrypoint, /run.sh (itself a bash script: the image has bash).
#
# Grafana starts only with what it needs, or says what is missing:
# - The InfluxDB datasource (provisioning/datasources/hito.yml) takes its token from
#   $HITO_INFLUXDB_TOKEN. The token is the bucket's read-only one, which `hito provision
#   --grafana-token FILE` wrote before Grafana starts (compose orders it): read into the
#   variable here, so no operator copies it into .env. Without it, Grafana used to start and
#   every InfluxDB panel failed with "unauthorized", which is noticed later than a container
#   that exits and says why. Its checksum is kept for the healthcheck: a token provision
#   replaced later (a wiped InfluxDB, new token scopes) turns Grafana unhealthy until restarted.
# - The admin password file: /run.sh reads it without checking, and Grafana ignores an empty
#   value, so an unreadable, empty or blank file used to leave the admin with the password
#   "admin".
#
# `compose-start.sh --token-unchanged` (the healthcheck's second half) fails once the token
# file differs from the one Grafana started with.
set -euo pipefail
token_file="${HITO_GRAFANA_TOKEN_FILE:?set HITO_GRAFANA_TOKEN_FILE}"
checksum_file="${HITO_GRAFANA_TOKEN_CHECKSUM:-/tmp/hito-influxdb-token.cksum}"

if [ "${1:-}" = "--token-unchanged" ]; then
  if [ "$(cksum <"$token_file")" != "$(cat "$checksum_file")" ]; then
    echo "the read-only InfluxDB token changed since Grafana started:" \
      "docker compose restart grafana" >&2
    exit 1
  fi
  exit 0
fi

refuse() {
  echo "grafana not started: $*" >&2
  exit 1
}

# readable FILE WHAT: the file exists, this user can read it, and it is not empty.
readable() {
  [ -e "$1" ] || refuse "no $2 at $1"
  [ -r "$1" ] || refuse "$2 $1 is not readable by uid $(id -u) (groups $(id -G));" \
    "docker-compose.yml gives Grafana group 10001: the file must be readable by that group"
  [ -s "$1" ] || refuse "$2 $1 is empty"
}

why="the provision job writes it; docker compose logs provision says why it did not"
readable "$token_file" "read-only InfluxDB token ($why)"
if [ -n "${GF_SECURITY_ADMIN_PASSWORD__FILE:-}" ]; then
  readable "$GF_SECURITY_ADMIN_PASSWORD__FILE" "admin password file"
  # /run.sh's $(< file) drops trailing newlines: a file of a newline alone (echo "$UNSET" >
  # file) passes -s and reads as empty, which leaves "admin" too.
  [ -n "$(tr -d '[:space:]' <"$GF_SECURITY_ADMIN_PASSWORD__FILE")" ] ||
    refuse "admin password file $GF_SECURITY_ADMIN_PASSWORD__FILE is blank"
fi
token="$(cat "$token_file")"
[ -n "$token" ] || refuse "the read-only InfluxDB token in $token_file is blank"
cksum <"$token_file" >"$checksum_file"
HITO_INFLUXDB_TOKEN="$token"
export HITO_INFLUXDB_TOKEN
[ "$#" -gt 0 ] || set -- /run.sh
exec "$@"
