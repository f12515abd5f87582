#!/usr/bin/env bash
# The main job on the embedded AWS emulator, no AWS account needed:
# install, start the emulator, plan, up (services at 0 tasks), up again, schema, scale up, status,
# outputs, scale down, destroy (keeping the data, then with it), stop the emulator.
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
provision schema --config "$config"      # staged deployment: the DSQL schema and the visibility index first
provision scale up --config "$config"
provision up --config "$config"          # keeps the recorded task counts
provision status --config "$config"
provision outputs --config "$config"
provision scale down --config "$config"
provision destroy --config "$config" --yes                 # keeps the DSQL cluster (the data)
provision destroy --config "$config" --yes --delete-data   # and now the data too
