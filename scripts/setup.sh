#!/usr/bin/env bash
# Create .venv and install Vigil with the pinned dependency set.
#   scripts/setup.sh         runtime only
#   scripts/setup.sh dev     plus the test and lint tools
# The install compiles the detectors (setup.py), so it is repeated only when what it
# builds from changed, or its compiled modules are gone; VIGIL_PURE_PYTHON=1 skips
# compiling.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
extra=""
if [ "${1:-}" = "dev" ]; then extra="[dev]"; fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
inputs=$(
  {
    echo "${extra} ${VIGIL_PURE_PYTHON:-}"
    cat pyproject.toml constraints.txt setup.py
    find detectors -name '*.py' -print0 | sort -z | xargs -0 cat
  } | sha256sum | cut -d' ' -f1
)
compiled=$(find detectors -name '*.so' | head -n 1)
touched=""  # a source written since the last install (a checkout), even if its bytes are the same
if [ -f .venv/.vigil-install ]; then touched=$(find detectors -name '*.py' -newer .venv/.vigil-install | head -n 1); fi
if [ "$(cat .venv/.vigil-install 2>/dev/null)" != "$inputs" ] || [ -n "$touched" ] \
  || { [ -z "${VIGIL_PURE_PYTHON:-}" ] && [ -z "$compiled" ]; }; then
  .venv/bin/pip install -q -c constraints.txt -e ".${extra}"
  echo "$inputs" > .venv/.vigil-install
fi
