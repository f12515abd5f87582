#!/usr/bin/env bash
# Install everything, lint, and run the test suite against the embedded emulator, then list the 15 slowest tests.
#   scripts/test.sh              every test (what CI runs)
#   scripts/test.sh --quick      the fast layer, marked quick: tests/unit (no emulator) and one up/destroy
#                                (tests/test_smoke.py), in under a minute
#   scripts/test.sh [--quick] ARGS   more pytest arguments, such as tests/test_network.py or -k subnets
# Tests run side by side (pytest-xdist), each worker with its own emulator: they mostly wait on it, so more
# workers than cores pay (PROVISION_TEST_WORKERS, default 4, measured on 2 cores; 0 runs in one process).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
# The guards first, in seconds: lint and type findings fail the run before the tests start (pyproject.toml
# [tool.ruff], [tool.mypy]; mypy's cache in .venv keeps a run after a small change to a few seconds).
.venv/bin/ruff check provisioner steps state
scripts/typecheck.sh
workers="${PROVISION_TEST_WORKERS:-4}"
if [ "${1:-}" = "--quick" ]; then
  # The tests marked quick live in these two places; collecting only them saves the rest's import.
  shift
  set -- -m quick tests/unit tests/test_smoke.py "$@"
  workers="${PROVISION_TEST_WORKERS:-2}"
fi
exec .venv/bin/python -m pytest -n "$workers" --dist loadgroup --durations=15 "$@"
