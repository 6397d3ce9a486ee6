#!/usr/bin/env bash
# A local Prometheus Alertmanager on loopback, from Debian's prometheus-alertmanager
# package (installed with apt-get when missing). Used by the test suite for the
# `alertmanager` receiver: the suite starts it like the Kafka broker.
#
#   scripts/alertmanager.sh install   # apt-get install prometheus-alertmanager (once, as root)
#   scripts/alertmanager.sh start     # start with a minimal configuration, wait until it answers
#   scripts/alertmanager.sh stop
#   scripts/alertmanager.sh status
#
# Environment: VIGIL_ALERTMANAGER_PORT (default 19593), VIGIL_ALERTMANAGER_HOME
# (default <repo>/.alertmanager; the run directory is per port).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/daemon.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
home="${VIGIL_ALERTMANAGER_HOME:-$repo/.alertmanager}"
port="${VIGIL_ALERTMANAGER_PORT:-19593}"
run="$home/run-$port"
pidfile="$run/alertmanager.pid"

install() {
  if command -v prometheus-alertmanager >/dev/null; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "prometheus-alertmanager is not installed; run: sudo apt-get install -y prometheus-alertmanager" >&2
    return 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager >/dev/null
}

answers() {
  curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1
}

start() {
  install
  if already_running "alertmanager on 127.0.0.1:$port" "$pidfile"; then
    return 0
  fi
  rm -rf "$run"
  mkdir -p "$run/data"
  cat >"$run/alertmanager.yml" <<'YAML'
route:
  receiver: nobody
  group_wait: 1s
receivers:
  - name: nobody
YAML
  nohup prometheus-alertmanager --config.file="$run/alertmanager.yml" --storage.path="$run/data" \
    --web.listen-address="127.0.0.1:$port" --cluster.listen-address= \
    >"$run/stdout.log" 2>&1 &
  echo $! >"$pidfile"
  await_start "alertmanager on 127.0.0.1:$port" "$pidfile" "$run/stdout.log" 30 answers
}

stop() {
  stop_pid "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "up on 127.0.0.1:$port"; else echo "down"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
