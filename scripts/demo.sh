#!/usr/bin/env bash
# The main job on the embedded AWS emulator, no AWS account needed:
# install, start the emulator, plan, up (services at 0 tasks), up again, scale up, status, outputs,
# scale down, destroy, stop the emulator.
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
provision scale up --config "$config"    # staged deployment: in AWS, apply the DSQL schema before this
provision up --config "$config"          # keeps the recorded task counts
provision status --config "$config"
provision outputs --config "$config"
provision scale down --config "$config"
provision destroy --config "$config" --yes
