#!/usr/bin/env bash
# Create .venv and install provision into it, with the embedded emulator (and the test tools when given "test").
# The install is editable: code changes need no reinstall. It is skipped when .venv already holds this very
# pyproject.toml's install (pip takes most of a minute even with nothing to do); delete .venv to force one.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
stamp=".venv/.installed"
if [ "$extras" = "test" ]; then
  # The real peers of tests/real_peers.py from Debian: prometheus (the real-server check of the dashboards,
  # promtool for rules) and prometheus-alertmanager (amtool). Only as root with apt (CI runs as root);
  # elsewhere the tests that need them skip, naming the package. Checked on every run: it costs nothing.
  missing=""
  for tool in prometheus:prometheus promtool:prometheus amtool:prometheus-alertmanager; do
    command -v "${tool%%:*}" > /dev/null || missing="$missing ${tool#*:}"
  done
  if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing > /dev/null
  fi
fi
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1) ${extras}"
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "$extras" = "test" ]; then
  .venv/bin/python -m pip install --quiet -e '.[test,emulator]'
else
  .venv/bin/python -m pip install --quiet -e '.[emulator]'
fi
echo "$wanted" > "$stamp"
