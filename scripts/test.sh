#!/usr/bin/env bash
# The whole test suite on a fresh machine: install dev dependencies, fetch and start
# the local Kafka broker and install and start Alertmanager (each stopped again
# afterwards if this script started it), then run unit, property and integration
# tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh dev
scripts/prometheus/prometheus.sh install  # the metrics tests scrape a worker with a real Prometheus
started=""
if ! scripts/kafka/broker.sh status >/dev/null 2>&1; then
  scripts/kafka/broker.sh start
  started=1
fi
alertmanager_started=""
if ! scripts/alertmanager.sh status >/dev/null 2>&1; then
  scripts/alertmanager.sh start
  alertmanager_started=1
fi
cleanup() {
  if [ -n "$started" ]; then scripts/kafka/broker.sh stop; fi
  if [ -n "$alertmanager_started" ]; then scripts/alertmanager.sh stop; fi
}
trap cleanup EXIT
.venv/bin/pytest "$@"
