#!/usr/bin/env bash
# Prometheus (Debian's package) for the tests that scrape Vigil's metrics.
# Used by the test suite and .ci/run, like scripts/kafka/broker.sh.
#
#   scripts/prometheus/prometheus.sh install             # apt-get install prometheus, once
#   scripts/prometheus/prometheus.sh start CONFIG DIR    # serve with CONFIG, data in DIR; wait until ready
#   scripts/prometheus/prometheus.sh stop DIR
#
# Environment: VIGIL_PROMETHEUS_PORT (default 19090), listening on 127.0.0.1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/daemon.sh"

port="${VIGIL_PROMETHEUS_PORT:-19090}"

install() {
  if command -v prometheus >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "prometheus is not installed: run 'apt-get install prometheus' as root" >&2
    return 1
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null
}

ready() {
  python3 - "$port" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/-/ready", timeout=1) as r:
        sys.exit(0 if r.status == 200 else 1)
except OSError:
    sys.exit(1)
PY
}

start() {
  local config="$1" dir="$2"
  install
  mkdir -p "$dir/tsdb"
  nohup prometheus --config.file="$config" --storage.tsdb.path="$dir/tsdb" \
    --web.listen-address="127.0.0.1:$port" >"$dir/prometheus.log" 2>&1 &
  echo $! >"$dir/prometheus.pid"
  await_start "prometheus on 127.0.0.1:$port" "$dir/prometheus.pid" "$dir/prometheus.log" 60 ready
}

stop() {
  stop_pid "$1/prometheus.pid"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:?config file}" "${3:?data directory}" ;;
  stop) stop "${2:?data directory}" ;;
  *) echo "usage: $0 install | start CONFIG DIR | stop DIR" >&2; exit 2 ;;
esac
