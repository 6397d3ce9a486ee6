#!/usr/bin/env bash
# Create .venv and install Vigil with the pinned dependency set.
#   scripts/setup.sh         runtime only
#   scripts/setup.sh dev     plus the test and lint tools
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
extra=""
if [ "${1:-}" = "dev" ]; then extra="[dev]"; fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
.venv/bin/pip install -q -c constraints.txt -e ".${extra}"
