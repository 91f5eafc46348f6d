#!/usr/bin/env bash
# Resolve Apache Kafka's runtime classpath from Maven Central into <libs-dir>.
# Maven's own cache (~/.m2) makes a second run fast; a marker file says the copy is complete.
# Usage: install.sh <kafka-version> <libs-dir>
set -euo pipefail
version="${1:?usage: install.sh <kafka-version> <libs-dir>}"
libs="${2:?usage: install.sh <kafka-version> <libs-dir>}"
here="$(cd "$(dirname "$0")" && pwd)"

if [[ -f "$libs/.complete" ]]; then
  echo "kafka $version jars already in $libs" >&2
  exit 0
fi
command -v mvn >/dev/null || { echo "mvn is required (infra/install-debian.sh installs it)" >&2; exit 1; }
rm -rf "$libs.tmp"
echo "[kafka] resolving kafka_2.13:$version and its runtime dependencies from Maven Central" >&2
mvn -B -q -f "$here/pom.xml" -Dkafka.version="$version" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs.tmp"
ls "$libs.tmp"/kafka_2.13-"$version".jar >/dev/null
touch "$libs.tmp/.complete"
rm -rf "$libs"
mv "$libs.tmp" "$libs"
echo "[kafka] $(ls "$libs" | wc -l) jars in $libs" >&2
