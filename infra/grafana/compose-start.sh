#!/bin/sh
# docker-compose entrypoint of the Grafana service (grafana/grafana-oss image, whose own
# entrypoint, /run.sh, is this script's arguments). POSIX sh: the image has no bash.
#
# The InfluxDB datasource (provisioning/datasources/hito.yml) takes its token from
# $HITO_INFLUXDB_TOKEN, and Grafana's provisioning expands environment variables only. The
# token is the bucket's read-only one, which `hito provision --grafana-token FILE` wrote before
# Grafana starts (compose orders it): it is read into the variable here, so no operator has to
# copy it into .env. Without it Grafana does not start: dashboards whose every InfluxDB panel
# fails with "unauthorized" are noticed later than a container that exits and says why.
set -eu
token_file="${HITO_GRAFANA_TOKEN_FILE:?set HITO_GRAFANA_TOKEN_FILE}"
if [ ! -s "$token_file" ] || ! token="$(cat "$token_file")" || [ -z "$token" ]; then
  echo "grafana not started: no read-only InfluxDB token in $token_file; the provision job" \
    "writes it (docker compose up runs it first; docker compose logs provision says why" \
    "it did not)" >&2
  exit 1
fi
HITO_INFLUXDB_TOKEN="$token"
export HITO_INFLUXDB_TOKEN
exec "$@"
