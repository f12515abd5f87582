#!/usr/bin/env bash
# Create .venv and install provision into it, with the embedded emulator (and the test tools when given "test").
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "${1:-}" = "test" ]; then
  .venv/bin/python -m pip install --quiet -e '.[test,emulator]'
else
  .venv/bin/python -m pip install --quiet -e '.[emulator]'
fi
