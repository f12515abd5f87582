"""The emulator's AWS Backup additions (provisioner/emulator/backup_patches.py), one test each, through boto3
against the embedded emulator: they answer in the shapes of botocore's backup model and keep AWS's rules."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.conftest import REGION

ROLE_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def backup(endpoint):
    return boto3.client("backup", region_name=REGION)


@pytest.fixture
def cluster(endpoint) -> str:
    return boto3.client("dsql", region_name=REGION).create_cluster(deletionProtectionEnabled=True)["arn"]


@pytest.fixture
def role(endpoint) -> str:
    return boto3.client("iam").create_role(RoleName="backup-test", AssumeRolePolicyDocument=ROLE_TRUST)["Role"]["Arn"]


def plan_of(backup) -> str:
    backup.create_backup_vault(BackupVaultName="v")
    return backup.create_backup_plan(BackupPlan={"BackupPlanName": "p", "Rules": [
        {"RuleName": "r", "TargetBackupVaultName": "v", "Lifecycle": {"DeleteAfterDays": 3}}]})["BackupPlanId"]


def completed_point(backup, cluster: str, role: str) -> str:
    job = backup.start_backup_job(BackupVaultName="v", ResourceArn=cluster, IamRoleArn=role)
    while backup.describe_backup_job(BackupJobId=job["BackupJobId"])["State"] != "COMPLETED":
        pass
    return job["RecoveryPointArn"]


def test_the_region_settings_answer_and_take_an_opt_out(backup):
    assert backup.describe_region_settings()["ResourceTypeOptInPreference"]["DSQL"] is True
    backup.update_region_settings(ResourceTypeOptInPreference={"DSQL": False})
    assert backup.describe_region_settings()["ResourceTypeOptInPreference"]["DSQL"] is False


def test_a_plan_is_updated_in_place_and_a_deleted_plans_name_is_free_again(backup):
    plan_id = plan_of(backup)
    backup.update_backup_plan(BackupPlanId=plan_id, BackupPlan={"BackupPlanName": "p", "Rules": [
        {"RuleName": "r", "TargetBackupVaultName": "v", "ScheduleExpression": "cron(0 1 ? * * *)"}]})
    (rule,) = backup.get_backup_plan(BackupPlanId=plan_id)["BackupPlan"]["Rules"]
    assert rule["ScheduleExpression"] == "cron(0 1 ? * * *)"
    backup.delete_backup_plan(BackupPlanId=plan_id)
    assert backup.create_backup_plan(BackupPlan={"BackupPlanName": "p", "Rules": [
        {"RuleName": "r", "TargetBackupVaultName": "v"}]})["BackupPlanId"] != plan_id


def test_a_selection_needs_an_existing_role_and_holds_its_plan_until_deleted(backup, cluster, role):
    plan_id = plan_of(backup)
    with pytest.raises(ClientError, match="InvalidParameterValue"):
        backup.create_backup_selection(BackupPlanId=plan_id, BackupSelection={
            "SelectionName": "s", "IamRoleArn": role + "-missing", "Resources": [cluster]})
    made = backup.create_backup_selection(BackupPlanId=plan_id, BackupSelection={
        "SelectionName": "s", "IamRoleArn": role, "Resources": [cluster]})
    (listed,) = backup.list_backup_selections(BackupPlanId=plan_id)["BackupSelectionsList"]
    assert listed["SelectionName"] == "s" and listed["SelectionId"] == made["SelectionId"]
    got = backup.get_backup_selection(BackupPlanId=plan_id, SelectionId=made["SelectionId"])
    assert got["BackupSelection"]["Resources"] == [cluster]
    with pytest.raises(ClientError, match="InvalidRequest"):
        backup.delete_backup_plan(BackupPlanId=plan_id)
    backup.delete_backup_selection(BackupPlanId=plan_id, SelectionId=made["SelectionId"])
    backup.delete_backup_plan(BackupPlanId=plan_id)


def test_a_backup_job_runs_then_completes_with_a_recovery_point_of_the_cluster(backup, cluster, role):
    plan_of(backup)
    job = backup.start_backup_job(BackupVaultName="v", ResourceArn=cluster, IamRoleArn=role)
    assert backup.describe_backup_job(BackupJobId=job["BackupJobId"])["State"] == "RUNNING"
    done = backup.describe_backup_job(BackupJobId=job["BackupJobId"])
    assert done["State"] == "COMPLETED" and done["BackupSizeInBytes"] > 0
    (point,) = backup.list_recovery_points_by_resource(ResourceArn=cluster)["RecoveryPoints"]
    assert point["RecoveryPointArn"] == job["RecoveryPointArn"] and point["Status"] == "COMPLETED"
    (in_vault,) = backup.list_recovery_points_by_backup_vault(BackupVaultName="v")["RecoveryPoints"]
    assert in_vault["ResourceArn"] == cluster


def test_a_backup_job_is_refused_without_the_opt_in(backup, cluster, role):
    plan_of(backup)
    backup.update_region_settings(ResourceTypeOptInPreference={"DSQL": False})
    with pytest.raises(ClientError, match="InvalidRequest"):
        backup.start_backup_job(BackupVaultName="v", ResourceArn=cluster, IamRoleArn=role)


def test_a_vault_holding_recovery_points_is_deleted_only_once_they_are(backup, cluster, role):
    plan_of(backup)
    point = completed_point(backup, cluster, role)
    with pytest.raises(ClientError, match="InvalidRequest"):
        backup.delete_backup_vault(BackupVaultName="v")
    backup.delete_recovery_point(BackupVaultName="v", RecoveryPointArn=point)
    backup.delete_backup_vault(BackupVaultName="v")
    assert backup.list_backup_vaults()["BackupVaultList"] == []


def test_a_restore_job_yields_a_new_protected_cluster(backup, cluster, role):
    plan_of(backup)
    point = completed_point(backup, cluster, role)
    metadata = {"regionalConfig": json.dumps([{"region": REGION, "isDeletionProtectionEnabled": True}])}
    job = backup.start_restore_job(RecoveryPointArn=point, Metadata=metadata, IamRoleArn=role, ResourceType="DSQL")
    assert backup.describe_restore_job(RestoreJobId=job["RestoreJobId"])["Status"] == "RUNNING"
    done = backup.describe_restore_job(RestoreJobId=job["RestoreJobId"])
    assert done["Status"] == "COMPLETED" and done["CreatedResourceArn"] != cluster
    restored = boto3.client("dsql", region_name=REGION).get_cluster(identifier=done["CreatedResourceArn"].rsplit("/", 1)[-1])
    assert restored["deletionProtectionEnabled"] is True


def test_a_restore_without_this_regions_config_is_refused(backup, cluster, role):
    plan_of(backup)
    point = completed_point(backup, cluster, role)
    with pytest.raises(ClientError, match="InvalidParameterValue"):
        backup.start_restore_job(RecoveryPointArn=point, IamRoleArn=role, Metadata={
            "regionalConfig": json.dumps([{"region": "us-east-1", "isDeletionProtectionEnabled": True}])})
