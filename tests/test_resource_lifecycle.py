"""Kinds that create and update (converge() in provisioner/aws/converge.py): a step declares a resource and
its settings; the kind makes it with them, and a changed setting is updated in place, once, by name."""
from __future__ import annotations

import boto3
import pytest
from rich.console import Console

from provisioner.engine import Engine
from provisioner.progress import Reporter
from provisioner.state import StateStore
from provisioner.steps.logs import LOGGED, Logs
from tests.conftest import PROJECT, REGION, make_config, new_aws


@pytest.fixture
def run_logs(endpoint, tmp_path):
    """Plan or apply the log groups step alone, with the given retention, on one state file."""
    store = StateStore(tmp_path / "state.json", PROJECT, REGION)

    def run(retention: int, action: str):
        with store.locked("test"):
            engine = Engine([Logs()], make_config(logs={"retention_days": retention}), new_aws(), store,
                            Reporter(Console(quiet=True), quiet=True))
            result = getattr(engine, action)()
        assert result.ok, result.errors
        return [(c.action, c.key, c.detail) for c in result.changes]

    return run


def retentions() -> set[int]:
    logs = boto3.client("logs", region_name=REGION)
    return {g.get("retentionInDays") for g in logs.describe_log_groups(logGroupNamePrefix=f"/ecs/{PROJECT}/")["logGroups"]}


def test_a_created_resource_has_its_settings_from_the_start(run_logs):
    created = run_logs(30, "apply")
    assert [action for action, _, _ in created] == ["create"] * len(LOGGED)
    assert retentions() == {30}
    assert run_logs(30, "apply") == []


def test_a_changed_setting_is_one_update_naming_the_field_and_a_rerun_changes_nothing(run_logs):
    run_logs(30, "apply")
    planned = run_logs(90, "plan")
    assert planned == [("update", f"log-{s}", "retentionInDays") for s in LOGGED]
    assert sorted(run_logs(90, "apply")) == sorted(planned)
    assert retentions() == {90}
    assert run_logs(90, "apply") == []
