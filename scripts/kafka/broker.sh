#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) on loopback,
# fetched from Maven Central. Used by the test suite and .ci/run.
#
#   scripts/kafka/broker.sh fetch   # collect jars into .kafka/lib (once)
#   scripts/kafka/broker.sh start   # format storage, start, wait until it answers
#   scripts/kafka/broker.sh stop
#   scripts/kafka/broker.sh status
#
# Environment: VIGIL_KAFKA_PORT (default 19092), VIGIL_KAFKA_HOME (default <repo>/.kafka).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
home="${VIGIL_KAFKA_HOME:-$repo/.kafka}"
port="${VIGIL_KAFKA_PORT:-19092}"
cport="$((port + 1))"
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
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "kafka already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
    return 0
  fi
  rm -rf "$run"
  mkdir -p "$run/data"
  cat >"$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
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
  for _ in $(seq 1 120); do
    if answers; then
      echo "kafka running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
      return 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "kafka exited during start-up; see $run/stdout.log" >&2
      tail -n 40 "$run/stdout.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
  echo "kafka did not answer on 127.0.0.1:$port within 60 s" >&2
  return 1
}

stop() {
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 1 40); do
      kill -0 "$(cat "$pidfile")" 2>/dev/null || break
      sleep 0.25
    done
    kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "up on 127.0.0.1:$port"; else echo "down"; exit 1; fi ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
