#!/usr/bin/env bash
# Install everything and run the whole test suite against the embedded emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
