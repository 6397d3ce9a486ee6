#!/usr/bin/env bash
# Install Vigil into .venv (once) and run the demo on the embedded store.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
exec .venv/bin/vigil demo "$@"
