"""The quick layer's one run against the emulator: `provision up` builds the stack, `provision destroy`
removes all of it. The rest of the suite checks each part; this shows the whole still stands up and goes."""
from __future__ import annotations

import json

import pytest

from tests.conftest import config_text, run_cli, world

pytestmark = pytest.mark.quick


def test_up_builds_the_stack_and_destroy_removes_everything(endpoint, tmp_path):
    config_file, state = tmp_path / "provision.toml", tmp_path / "state.json"
    config_file.write_text(config_text())
    built = run_cli("up", config_file=config_file, state=state)
    assert built.exit_code == 0, built.output
    recorded = json.loads(state.read_text())["resources"]
    assert {"network", "cluster", "services", "opensearch", "prometheus", "dsql"} <= set(recorded), sorted(recorded)
    removed = run_cli("destroy", "--yes", "--delete-data", config_file=config_file, state=state)
    assert removed.exit_code == 0, removed.output
    assert world() == []
