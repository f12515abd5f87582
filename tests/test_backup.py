"""Backups and restore (README: "Backups and restore"): the vault, plan, selection and role `up` sends, checked
against botocore's backup model and the AWS Backup rules; the opt-in refusal; `backup now` and `backup list`;
`restore` end to end on the emulator, interrupted at each of its points; `destroy` with and without --delete-data.

One stack for the module (built once); the tests that change it run in the order of the file, after those
that only read it, and each reads what it needs from the emulator.
"""
from __future__ import annotations

import json

import boto3
import pytest

from provisioner.config import ConfigError, parse_config
from provisioner.steps.backup import DSQL_RESOURCE_TYPE, OPT_IN_COMMAND
from tests import aws_shapes
from tests.conftest import (
    PROJECT,
    REGION,
    CallLog,
    Requests,
    config_text,
    make_config,
    new_aws,
    record_cli_calls,
    reset_account,
    run_cli,
    up_ok,
)

VAULT = f"{PROJECT}-backups"
ROLE = f"{PROJECT}-{REGION}-backup-role"


# One stack for the module, built once on one worker; each test makes the backups it reads itself, so it
# passes alone and in any order. Destroying is tested on a stack of its own (tests/test_backup_destroy.py).
pytestmark = pytest.mark.xdist_group("backup")


def built_stack(folder):
    """A stack, with every request `up` sent and the shape check of each against botocore's model."""
    config_file, state = folder / "provision.toml", folder / "state.json"
    config_file.write_text(config_text())
    sent, shapes = Requests(), aws_shapes.RequestRecorder()
    up_ok(make_config(), new_aws(("provide-client-params", sent), ("provide-client-params", shapes)), state)
    return config_file, state, sent, shapes


@pytest.fixture(scope="module")
def stack(moto_endpoint, tmp_path_factory):
    reset_account(moto_endpoint)
    return built_stack(tmp_path_factory.mktemp("backup"))


@pytest.fixture
def own_stack(endpoint, tmp_path):
    """A stack of its own, for a test that changes it (the module's `stack` is only read, or added backups to)."""
    return built_stack(tmp_path)


def backup_now(config_file, state) -> str:
    """`provision backup now`: the recovery point it made."""
    made = run_cli("backup", "now", "--json", config_file=config_file, state=state)
    assert made.exit_code == 0, made.output
    return json.loads(made.stdout)["recovery_point"]


def records(state) -> dict:
    return json.loads(state.read_text())["resources"]


def backup_client():
    return boto3.client("backup", region_name=REGION)


def test_every_backup_request_is_one_botocore_accepts(stack):
    _, _, sent, shapes = stack
    shapes.assert_clean()
    sent_operations = {name for name, _ in sent.sent}
    assert {"backup.CreateBackupVault", "backup.CreateBackupPlan", "backup.CreateBackupSelection",
            "backup.DescribeRegionSettings"} <= sent_operations


def test_the_vault_uses_aws_backups_default_key_and_the_project_tags(stack):
    _, _, sent, _ = stack
    (vault,) = sent.of("backup.CreateBackupVault")
    assert vault["BackupVaultName"] == VAULT
    # No EncryptionKeyArn: AWS Backup encrypts with its default key, aws/backup (CreateBackupVault).
    assert "EncryptionKeyArn" not in vault
    assert vault["BackupVaultTags"]["Project"] == PROJECT and vault["BackupVaultTags"]["ProvisionStep"] == "backup"
    assert vault["CreatorRequestId"]


def test_the_plan_backs_up_daily_into_the_vault_and_keeps_the_configured_days(stack):
    _, _, sent, _ = stack
    (plan,) = sent.of("backup.CreateBackupPlan")
    (rule,) = plan["BackupPlan"]["Rules"]
    assert rule["TargetBackupVaultName"] == VAULT
    assert rule["ScheduleExpression"] == "cron(0 5 ? * * *)"  # daily, 05:00 UTC
    # No cold storage (DSQL recovery points have none), so any DeleteAfterDays from 1 is valid.
    assert rule["Lifecycle"] == {"DeleteAfterDays": 35}
    assert "CopyActions" not in rule


def test_the_selection_holds_exactly_this_stacks_cluster(stack):
    _, state, sent, _ = stack
    (selection,) = sent.of("backup.CreateBackupSelection")
    cluster = records(state)["dsql"]["cluster"]["id"]
    body = selection["BackupSelection"]
    assert body["Resources"] == [cluster]
    assert not {"ListOfTags", "Conditions", "NotResources"} & set(body)  # nothing else can join it
    assert body["IamRoleArn"] == records(state)["backup"]["backup-role"]["id"]


def test_the_backup_role_trusts_only_aws_backup_and_backs_up_only_this_cluster(stack):
    _, state, sent, _ = stack
    (created,) = [r for r in sent.of("iam.CreateRole") if r["RoleName"] == ROLE]
    (trust,) = json.loads(created["AssumeRolePolicyDocument"])["Statement"]
    assert trust["Principal"] == {"Service": "backup.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"]
    (put,) = [p for p in sent.of("iam.PutRolePolicy") if p["RoleName"] == ROLE]
    statements = {s["Sid"]: s for s in json.loads(put["PolicyDocument"])["Statement"]}
    cluster = records(state)["dsql"]["cluster"]["id"]
    assert statements["DsqlBackupThisCluster"]["Resource"] == cluster
    assert "dsql:StartBackupJob" in statements["DsqlBackupThisCluster"]["Action"]
    # A restore makes a cluster whose ARN nobody knows before: the region's clusters of this account.
    assert statements["DsqlJobsAndRestores"]["Resource"].endswith(":cluster/*")
    assert f":dsql:{REGION}:" in statements["DsqlJobsAndRestores"]["Resource"]
    assert [s for s in statements.values() if s["Resource"] == "*"] == [statements["DsqlList"]]


def test_a_second_plan_changes_nothing_in_the_backups(stack):
    from provisioner import operations

    _, state, _, _ = stack
    planned = operations.plan(make_config(), new_aws(), state, quiet=True)
    assert planned.ok, planned.errors
    assert [c for c in planned.changes if c.step == "backup"] == []


def test_a_changed_schedule_and_retention_update_the_plan_in_place(stack):
    from provisioner import operations

    _, state, _, _ = stack
    changed = make_config(backup={"schedule": "cron(30 2 ? * * *)", "retention_days": 7})
    planned = operations.plan(changed, new_aws(), state, quiet=True)
    assert [c.describe() for c in planned.changes if c.step == "backup"] == ["update backup plan plan (Rules)"]


def test_a_selection_made_again_under_its_name_is_found_by_it_and_then_read_by_its_new_id_alone(own_stack):
    """The recorded ID holds the SelectionId, so a run reads the selection in one call; one made again (AWS
    Backup replaces, never updates, a selection) is found by its name in the plan and recorded anew."""
    _, state, _, _ = own_stack
    plan_id = records(state)["backup"]["plan"]["id"]
    client = backup_client()
    (listed,) = client.list_backup_selections(BackupPlanId=plan_id)["BackupSelectionsList"]
    old = client.get_backup_selection(BackupPlanId=plan_id, SelectionId=listed["SelectionId"])
    assert records(state)["backup"]["selection"]["id"] == f"{plan_id}/{listed['SelectionName']}/{listed['SelectionId']}"
    client.delete_backup_selection(BackupPlanId=plan_id, SelectionId=listed["SelectionId"])
    remade = client.create_backup_selection(BackupPlanId=plan_id, BackupSelection=old["BackupSelection"])["SelectionId"]

    assert up_ok(make_config(), new_aws(), state).changes == []
    assert records(state)["backup"]["selection"]["id"] == f"{plan_id}/{listed['SelectionName']}/{remade}"
    log = CallLog()
    up_ok(make_config(), new_aws(("before-call", log)), state)
    assert [c for c in log.calls if "BackupSelection" in c] == ["backup.GetBackupSelection"]


def test_backup_settings_aws_refuses_are_refused_by_name():
    for settings, key in (({"schedule": "cron(*/5 * * * ? *)"}, "backup.schedule"),
                          ({"schedule": "rate(1 day)"}, "backup.schedule"),
                          ({"retention_days": 0}, "backup.retention_days"),
                          ({"kms_key_id": "alias/aws/backup"}, "backup.kms_key_id"),
                          ({"copy_to_vault_arn": "my-vault"}, "backup.copy_to_vault_arn")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            parse_config({"project": PROJECT, "backup": settings})


def test_an_account_not_opted_in_to_dsql_backups_is_refused_and_nothing_is_created(stack, tmp_path, monkeypatch):
    config_file, state = tmp_path / "provision.toml", tmp_path / "state.json"
    config_file.write_text(config_text(project="optout"))
    backup_client().update_region_settings(ResourceTypeOptInPreference={DSQL_RESOURCE_TYPE: False})
    try:
        calls = record_cli_calls(monkeypatch)
        refused = run_cli("up", config_file=config_file, state=state)
    finally:
        backup_client().update_region_settings(ResourceTypeOptInPreference={DSQL_RESOURCE_TYPE: True})
    assert refused.exit_code == 2, refused.output
    assert OPT_IN_COMMAND in " ".join(refused.output.split())
    assert calls.mutating == []
    # Without backups, the same account is fine: the check belongs to backup.enabled.
    config_file.write_text(config_text(project="optout", extra="[backup]\nenabled = false\n"))
    backup_client().update_region_settings(ResourceTypeOptInPreference={DSQL_RESOURCE_TYPE: False})
    try:
        planned = run_cli("plan", config_file=config_file, state=state)
    finally:
        backup_client().update_region_settings(ResourceTypeOptInPreference={DSQL_RESOURCE_TYPE: True})
    assert planned.exit_code == 0, planned.output


def test_plan_shows_the_role_vault_plan_and_selection_it_would_create(stack, tmp_path):
    config_file, state = tmp_path / "provision.toml", tmp_path / "state.json"
    config_file.write_text(config_text(project="planned"))
    planned = run_cli("plan", config_file=config_file, state=state)
    assert planned.exit_code == 0, planned.output
    text = " ".join(planned.output.split())
    for change in ("IAM role backup-role", "backup vault vault", "backup plan plan", "backup selection selection"):
        assert f"create backup: {change}" in text, change


def test_backup_now_makes_a_recovery_point_that_backup_list_shows(stack):
    config_file, state, _, _ = stack
    made = run_cli("backup", "now", "--json", config_file=config_file, state=state)
    assert made.exit_code == 0, made.output
    job = json.loads(made.stdout)
    assert job["state"] == "COMPLETED" and job["size_bytes"] > 0
    listed = run_cli("backup", "list", "--json", config_file=config_file, state=state)
    assert listed.exit_code == 0, listed.output
    points = {p["arn"]: p for p in json.loads(listed.stdout)}
    assert points[job["recovery_point"]]["status"] == "COMPLETED"
    assert points[job["recovery_point"]]["cluster"] == records(state)["dsql"]["cluster"]["id"]
    table = run_cli("backup", "list", config_file=config_file, state=state)
    assert "COMPLETED" in table.stdout and "MiB" in table.stdout


def test_backup_now_without_wait_returns_the_started_job(stack):
    config_file, state, _, _ = stack
    started = run_cli("backup", "now", "--no-wait", config_file=config_file, state=state)
    assert started.exit_code == 0, started.output
    assert "started" in started.stdout and "recovery-point:" in started.stdout


def test_restore_dry_run_prints_every_action_and_changes_nothing(stack, monkeypatch):
    config_file, state, _, _ = stack
    point = backup_now(config_file, state)
    calls = record_cli_calls(monkeypatch)
    shown = run_cli("restore", point, "--dry-run", config_file=config_file, state=state)
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    for action in ("start an AWS Backup restore job", "point the stack at", "check the schema"):
        assert action in text
    assert "Visibility (OpenSearch) is not restored" in text
    assert calls.mutating == []


class Killed(BaseException):
    """A kill of the process at a point of the restore (BaseException: nothing in the tool catches it)."""


def test_restore_killed_at_each_point_finishes_on_rerun_onto_the_new_cluster(own_stack, monkeypatch):
    config_file, state, _, _ = own_stack
    scaled = run_cli("scale", "history=1", "frontend=1", config_file=config_file, state=state)
    assert scaled.exit_code == 0, scaled.output
    old = records(state)["dsql"]["cluster"]["id"]
    made = run_cli("backup", "now", "--json", config_file=config_file, state=state)
    point = json.loads(made.stdout)["recovery_point"]

    # Each phase recorded (restore job started, cluster restored, services down, stack pointed, schema checked)
    # and the middle of moving the stack (the new cluster recorded, the converging `up` not yet run).
    from provisioner.commands.backup import Restore
    from provisioner.engine import Engine

    armed = {"save": False, "apply": False}
    original_save, original_apply = Restore.save, Engine.apply

    def save(self, progress, **changes):
        saved = original_save(self, progress, **changes)
        if armed["save"]:
            raise Killed()
        return saved

    def apply(self):
        if armed["apply"]:
            raise Killed()
        return original_apply(self)

    monkeypatch.setattr(Restore, "save", save)
    monkeypatch.setattr(Engine, "apply", apply)
    # Each run is killed at its first save, so the next run resumes one point further; one is killed inside
    # the converging `up` instead (the new cluster recorded, the stack not yet moved onto it).
    for where in ("save", "save", "save", "save", "apply", "save", "save"):
        armed.update(save=where == "save", apply=where == "apply")
        with pytest.raises(Killed):
            run_cli("restore", point, config_file=config_file, state=state)
    armed.update(save=False, apply=False)
    finished = run_cli("restore", point, config_file=config_file, state=state)
    assert finished.exit_code == 0, finished.output

    new = records(state)["dsql"]["cluster"]["id"]
    assert new != old
    dsql = boto3.client("dsql", region_name=REGION)
    clusters = {c["arn"]: dsql.get_cluster(identifier=c["identifier"]) for c in dsql.list_clusters()["clusters"]}
    assert len(clusters) == 2  # one restore, however often it was interrupted
    assert clusters[new]["deletionProtectionEnabled"] and clusters[old]["deletionProtectionEnabled"]
    assert clusters[new]["tags"]["ProvisionKey"] == "cluster"
    assert (clusters[old]["tags"]["ProvisionKey"], clusters[old]["tags"]["ProvisionStep"]) == ("replaced-cluster",
                                                                                                "restore")
    text = " ".join(finished.stdout.split())
    assert f"Kept the old cluster {old}" in text and "aws dsql delete-cluster" in text
    assert "Visibility (OpenSearch) is not restored" in text

    ecs = boto3.client("ecs", region_name=REGION)
    services = ecs.describe_services(cluster=f"{PROJECT}-cluster",
                                     services=[f"{PROJECT}-{s}" for s in ("history", "frontend", "matching")])
    counts = {s["serviceName"].removeprefix(f"{PROJECT}-"): s["desiredCount"] for s in services["services"]}
    assert counts == {"history": 1, "frontend": 1, "matching": 0}
    host = f"{new.rsplit('/', 1)[-1]}.dsql.{REGION}.on.aws"
    history = next(s for s in services["services"] if s["serviceName"].endswith("-history"))
    definition = ecs.describe_task_definition(taskDefinition=history["taskDefinition"])["taskDefinition"]
    assert host in json.dumps(definition["containerDefinitions"])
    iam = boto3.client("iam", region_name=REGION)
    policy = json.dumps([iam.get_role_policy(RoleName=f"{PROJECT}-{REGION}-temporal-task", PolicyName=name)
                         ["PolicyDocument"] for name in iam.list_role_policies(
                             RoleName=f"{PROJECT}-{REGION}-temporal-task")["PolicyNames"]])
    assert new in policy and old not in policy
    plan_id = records(state)["backup"]["plan"]["id"]
    (selection,) = backup_client().list_backup_selections(BackupPlanId=plan_id)["BackupSelectionsList"]
    described = backup_client().get_backup_selection(BackupPlanId=plan_id, SelectionId=selection["SelectionId"])
    assert described["BackupSelection"]["Resources"] == [new]
    assert json.loads(state.read_text())["settings"].get("restore") is None
