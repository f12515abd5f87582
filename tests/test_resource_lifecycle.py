"""Kinds that create and update (converge() in provisioner/aws/converge.py): a step declares a resource and
its settings; the kind makes it with them, and a changed setting is updated in place, once, by name."""
from __future__ import annotations

import boto3
import pytest
from rich.console import Console

from provisioner.engine import Engine
from provisioner.progress import Reporter
from provisioner.state import StateStore
from provisioner.steps.ecr import Ecr
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


@pytest.fixture
def run_ecr(endpoint, tmp_path):
    """Plan or apply the image repositories step alone, on one state file."""
    store = StateStore(tmp_path / "state.json", PROJECT, REGION)

    def run(action: str):
        with store.locked("test"):
            engine = Engine([Ecr()], make_config(), new_aws(), store, Reporter(Console(quiet=True), quiet=True))
            return getattr(engine, action)()

    return run


def test_a_setting_changed_out_of_band_is_planned_and_put_back_as_one_update_naming_it(run_ecr):
    assert run_ecr("apply").ok
    ecr = boto3.client("ecr", region_name=REGION)
    ecr.put_image_scanning_configuration(repositoryName=f"{PROJECT}/temporal-server",
                                         imageScanningConfiguration={"scanOnPush": False})
    planned = run_ecr("plan")
    assert [(c.action, c.key, c.detail) for c in planned.changes] == [
        ("update", "repo-server", "imageScanningConfiguration")]
    assert [(c.action, c.key, c.detail) for c in run_ecr("apply").changes] == [
        (c.action, c.key, c.detail) for c in planned.changes]
    (repository,) = ecr.describe_repositories(repositoryNames=[f"{PROJECT}/temporal-server"])["repositories"]
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert run_ecr("apply").changes == []


def test_a_setting_aws_cannot_change_in_place_is_refused_naming_both_values(run_ecr):
    """ECR cannot change a repository's encryption after create: a repository of the project's found
    with KMS, where AES256 is asked for, is refused by plan and up, and left as it is."""
    ecr = boto3.client("ecr", region_name=REGION)
    ecr.create_repository(
        repositoryName=f"{PROJECT}/temporal-server", encryptionConfiguration={"encryptionType": "KMS"},
        tags=[{"Key": "Project", "Value": PROJECT}, {"Key": "ManagedBy", "Value": "provision"},
              {"Key": "ProvisionStep", "Value": "ecr"}, {"Key": "ProvisionKey", "Value": "repo-server"}])
    for action in ("plan", "apply"):
        result = run_ecr(action)
        assert not result.ok
        (message,) = [str(error) for _, error in result.errors]
        assert "encryptionConfiguration" in message and "KMS" in message and "AES256" in message
        assert "cannot change that in place" in message
    (repository,) = ecr.describe_repositories(repositoryNames=[f"{PROJECT}/temporal-server"])["repositories"]
    assert repository["encryptionConfiguration"]["encryptionType"] == "KMS"
