#!/usr/bin/env bash
# Type-check provisioner/, steps/ and state/ with mypy (settings in pyproject.toml [tool.mypy]).
#   scripts/typecheck.sh [MYPY ARGS]
# steps/ and state/ are installed as provisioner.steps and provisioner.state (pyproject.toml package-dir), and
# mypy can neither follow that mapping nor the import hook of the editable install (setuptools issue 3518):
# it would see modules named steps.x, or none at all. So this builds, under .venv, the package as it is
# installed, out of symlinks to the repository's files (rebuilt each run: a new module needs no step), and
# checks that. Paths in mypy's messages are mapped back to the repository's. The cache stays in .venv, so a
# run after a small change takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=.venv/typecheck
rm -rf "$tree"
mkdir -p "$tree/provisioner"
for entry in provisioner/*; do
  case "$entry" in */__pycache__) continue ;; esac
  ln -s "$PWD/$entry" "$tree/$entry"
done
ln -s "$PWD/steps" "$tree/provisioner/steps"
ln -s "$PWD/state" "$tree/provisioner/state"
status=0
( cd "$tree" && "$OLDPWD/.venv/bin/mypy" --config-file "$OLDPWD/pyproject.toml" --cache-dir "$OLDPWD/.venv/mypy_cache" \
    -p provisioner "$@" ) > "$tree.out" 2>&1 || status=$?
sed -e 's#^provisioner/steps/#steps/#' -e 's#^provisioner/state/#state/#' "$tree.out"
exit "$status"
