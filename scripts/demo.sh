#!/usr/bin/env bash
# The main job on the embedded AWS emulator, no AWS account needed:
# install, start the emulator, provision up, status, outputs, destroy, stop the emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
PATH="$PWD/.venv/bin:$PATH"
port="${PROVISION_EMULATOR_PORT:-4566}"
config="${PROVISION_CONFIG:-config.example.toml}"

eval "$(provision emulator start --port "$port")"
trap 'provision emulator stop' EXIT

provision grafana-secret --config "$config"
provision plan --config "$config"
provision up --config "$config"
provision up --config "$config"          # a second run changes nothing
provision status --config "$config"
provision outputs --config "$config"
provision destroy --config "$config" --yes
