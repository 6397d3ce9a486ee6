#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) on loopback,
# fetched from Maven Central. Used by the test suite and .ci/run.
#
#   scripts/kafka/broker.sh fetch   # collect jars into .kafka/lib (once)
#   scripts/kafka/broker.sh start   # format storage, start, wait until it answers
#   scripts/kafka/broker.sh stop
#   scripts/kafka/broker.sh status
#   scripts/kafka/broker.sh scram-user NAME PASSWORD   # SCRAM-SHA-256 and -512 credentials
#
# Environment: VIGIL_KAFKA_PORT (default 19092), VIGIL_KAFKA_HOME (default <repo>/.kafka).
# VIGIL_KAFKA_SSL_DIR=DIR adds a SASL_SSL listener on port+2 (the controller has port+1):
# DIR holds server.crt and server.key (PEM, unencrypted PKCS#8) for the broker, ca.crt
# (the CA that client certificates must be signed by: mutual TLS is required) and
# optionally plain-users (lines NAME:PASSWORD for SASL PLAIN). SCRAM users are added
# with scram-user, through the PLAINTEXT listener that stays on the first port.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/daemon.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
home="${VIGIL_KAFKA_HOME:-$repo/.kafka}"
port="${VIGIL_KAFKA_PORT:-19092}"
cport="$((port + 1))"
sport="$((port + 2))"
ssl_dir="${VIGIL_KAFKA_SSL_DIR:-}"
lib="$home/lib"
run="$home/run-$port"
pidfile="$run/broker.pid"

fetch() {
  if [ -f "$lib/.complete" ]; then return 0; fi
  mkdir -p "$lib"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$lib"
  touch "$lib/.complete"
}

answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

start() {
  fetch
  if already_running "kafka on 127.0.0.1:$port" "$pidfile"; then
    return 0
  fi
  rm -rf "$run"
  mkdir -p "$run/data"
  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
  local advertised="PLAINTEXT://127.0.0.1:$port"
  if [ -n "$ssl_dir" ]; then
    listeners="$listeners,SASL_SSL://127.0.0.1:$sport"
    advertised="$advertised,SASL_SSL://127.0.0.1:$sport"
  fi
  cat >"$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=PLAINTEXT
log.dirs=$run/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=24
PROPS
  if [ -n "$ssl_dir" ]; then secure_listener >>"$run/server.properties"; fi
  cat >"$run/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/broker.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
PROPS
  local opts=(-Xms256m -Xmx512m -XX:+UseG1GC -Dkafka.logs.dir="$run"
    -Dlog4j.configuration="file:$run/log4j.properties")
  java "${opts[@]}" -cp "$lib/*" kafka.tools.StorageTool format \
    -t vigil-local-cluster-0001 -c "$run/server.properties" >"$run/format.log" 2>&1
  nohup java "${opts[@]}" -cp "$lib/*" kafka.Kafka "$run/server.properties" \
    >"$run/stdout.log" 2>&1 &
  echo $! >"$pidfile"
  await_start "kafka on 127.0.0.1:$port" "$pidfile" "$run/stdout.log" 60 answers
}

secure_listener() {
  # The broker's key and certificate chain in one PEM keystore; clients must present a
  # certificate signed by ca.crt, then authenticate with SASL.
  cat "$ssl_dir/server.key" "$ssl_dir/server.crt" >"$run/keystore.pem"
  chmod 600 "$run/keystore.pem"
  local plain="" name password
  if [ -f "$ssl_dir/plain-users" ]; then
    while IFS=: read -r name password; do
      [ -n "$name" ] && plain="$plain user_$name=\"$password\""
    done <"$ssl_dir/plain-users"
  fi
  cat <<PROPS
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$run/keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$ssl_dir/ca.crt
ssl.client.auth=required
PROPS
}

scram_user() {
  local name="$1" password="$2" mechanism
  for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do  # one mechanism per request
    java -Xmx256m -Dlog4j.configuration="file:$run/log4j.properties" -Dkafka.logs.dir="$run" \
      -cp "$lib/*" kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$port" \
      --alter --entity-type users --entity-name "$name" \
      --add-config "$mechanism=[password=$password]" >/dev/null
  done
}

stop() {
  stop_pid "$pidfile"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  scram-user) scram_user "${2:?user name}" "${3:?password}" ;;
  status) if answers; then echo "up on 127.0.0.1:$port"; else echo "down"; exit 1; fi ;;
  *) echo "usage: $0 fetch|start|stop|status|scram-user NAME PASSWORD" >&2; exit 2 ;;
esac
