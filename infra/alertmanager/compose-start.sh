#!/bin/sh
# docker-compose entrypoint of the Alertmanager service (prom/alertmanager image: busybox sh,
# no bash); its arguments are the command to run, /bin/alertmanager and its flags.
#
# Every webhook sends the pager's bearer token from pager.token (credentials_file in
# alertmanager.yml), which Alertmanager reads when it sends, not when it starts. A token file
# its user could not read (mode 0600 for uid 10001, the pager's user) left Alertmanager
# healthy while every notification failed, which only the pager's AlertPathSilent told,
# minutes later. Here it refuses to start and says why: `docker compose logs alertmanager`.
set -eu
token_file="${HITO_PAGER_TOKEN_FILE:?set HITO_PAGER_TOKEN_FILE}"

refuse() {
  echo "alertmanager not started: $*" >&2
  exit 1
}

[ -e "$token_file" ] || refuse "no pager token at $token_file (docs/deployment.md says how to make it)"
[ -r "$token_file" ] || refuse "the pager token $token_file is not readable by uid $(id -u)" \
  "(groups $(id -G)); docker-compose.yml gives Alertmanager group 10001: the file must be" \
  "readable by that group (owner 10001:10001, mode 0440)"
# Not only empty: a token of blanks would be sent as an empty bearer, which the pager refuses.
[ -n "$(tr -d ' \t\r\n' <"$token_file")" ] || refuse "the pager token $token_file is empty"
[ "$#" -gt 0 ] || refuse "no command: docker-compose.yml runs /bin/alertmanager with its flags"
exec "$@"
