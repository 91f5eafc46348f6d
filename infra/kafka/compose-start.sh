#!/usr/bin/env bash
# docker-compose entrypoint of the Kafka service (apache/kafka image). `hito up` does the same in
# Python (streams/stack/services.py): the shared server.properties plus the JAAS lines that
# carry the admin password, in a private copy; the storage formatted once with the admin's
# SCRAM credential (the broker needs it to authenticate its own connections). Users, topics and
# ACLs are then created from the host with `hito kafka provision`.
set -euo pipefail
admin_user="${HITO_KAFKA_ADMIN_USER:-hito-admin}"
admin_password="${HITO_KAFKA_ADMIN_PASSWORD:?set HITO_KAFKA_ADMIN_PASSWORD}"
umask 077
conf="$(mktemp -d)/server.properties"
cp /etc/hito/kafka/server.properties "$conf"
cat >>"$conf" <<PROPS
super.users=User:${admin_user}
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${admin_user}" password="${admin_password}";
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="${admin_user}" password="${admin_password}" user_${admin_user}="${admin_password}";
PROPS
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  # The password reaches the tool through a private argument file (the java launcher expands
  # @file), not through a command line that `ps` on the host would show.
  args="$(dirname "$conf")/format.args"
  printf '%s\n' --add-scram "SCRAM-SHA-512=[name=${admin_user},password=${admin_password}]" >"$args"
  /opt/kafka/bin/kafka-storage.sh format -c "$conf" \
    -t "$(/opt/kafka/bin/kafka-storage.sh random-uuid)" "@${args}"
  rm -f "$args"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$conf"
