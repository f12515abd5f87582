"""The same project in several regions: IAM is account-wide, so each region's stack has its own roles and
instance profile, named and tagged with its region, and never adopts, changes or deletes another's."""
from __future__ import annotations

import json

import boto3
import pytest

from provisioner import operations
from provisioner.naming import GLOBAL_NAME_LIMIT, Naming
from tests.conftest import (
    GRAFANA_SECRET,
    PROJECT,
    REGION,
    make_config,
    new_aws,
    up_ok,
    world,
)

OTHER_REGION = "us-east-1"  # moto serves DSQL there without the nonexistent-region setting (notes/moto.md)
# The iam step's roles; AWS Backup's role came later, with region-named IAM.
IAM_KEYS = ("ecs-execution", "grafana-execution", "collector-execution", "temporal-task", "grafana-task",
            "collector-task", "ui-task", "schema-task", "ecs-instance")
ROLE_KEYS = (*IAM_KEYS, "backup-role")
ACCOUNT = "123456789012"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{PROJECT}/{name}"


def iam_of(region: str) -> tuple[set[str], set[str]]:
    """(role names, instance profile names) tagged as `region`'s stack of the project."""
    iam = boto3.client("iam", region_name=REGION)

    def tags(raw) -> dict:
        return {t["Key"]: t["Value"] for t in raw or []}

    roles = {r["RoleName"] for r in iam.list_roles(PathPrefix=f"/{PROJECT}/")["Roles"]
             if tags(iam.get_role(RoleName=r["RoleName"])["Role"].get("Tags")).get("ProvisionRegion") == region}
    profiles = {p["InstanceProfileName"] for p in iam.list_instance_profiles(PathPrefix=f"/{PROJECT}/")["InstanceProfiles"]
                if tags(p.get("Tags")).get("ProvisionRegion") == region}
    return roles, profiles


def task_definition_roles(region: str) -> set[str]:
    ecs = boto3.client("ecs", region_name=region)
    arns = ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]
    found = set()
    for arn in arns:
        definition = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        found |= {definition[field] for field in ("taskRoleArn", "executionRoleArn") if field in definition}
    return found


def launch_template_profiles(region: str) -> set[str]:
    """The instance profile of every project launch template's latest version (what the Auto Scaling groups launch)."""
    ec2 = boto3.client("ec2", region_name=region)
    templates = ec2.describe_launch_templates(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["LaunchTemplates"]
    return {
        version["LaunchTemplateData"]["IamInstanceProfile"]["Arn"]
        for template in templates
        for version in ec2.describe_launch_template_versions(
            LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Latest"])["LaunchTemplateVersions"]
    }


def test_every_global_name_fits_iam_for_the_longest_project_and_region():
    naming = Naming("p" * 20, "ap-southeast-4")  # config allows 20 characters; the longest region names have 14
    for key in (*ROLE_KEYS, "ecs-instance-profile"):
        assert len(naming.global_name(key)) <= GLOBAL_NAME_LIMIT
    assert naming.global_tags("iam", "ui-task")["ProvisionRegion"] == "ap-southeast-4"


def test_destroying_one_region_leaves_the_same_project_in_another_region_untouched(endpoint, tmp_path):
    boto3.client("secretsmanager", region_name=OTHER_REGION).create_secret(
        Name=GRAFANA_SECRET, SecretString='{"admin_user": "admin", "admin_password": "not-a-real-one"}')
    config = make_config()
    here, there = tmp_path / "eu.json", tmp_path / "us.json"
    up_ok(config, new_aws(), here)
    up_ok(config, new_aws(region=OTHER_REGION), there)
    before = world(region=REGION)

    ours_roles, ours_profiles = iam_of(REGION)
    assert ours_roles == {f"{PROJECT}-{REGION}-{key}" for key in ROLE_KEYS}
    assert ours_profiles == {f"{PROJECT}-{REGION}-ecs-instance-profile"}
    assert iam_of(OTHER_REGION)[0] == {f"{PROJECT}-{OTHER_REGION}-{key}" for key in ROLE_KEYS}
    assert task_definition_roles(OTHER_REGION) & {role_arn(name) for name in ours_roles} == set()

    result = operations.destroy(config, new_aws(region=OTHER_REGION), there, delete_data=True, quiet=True)
    assert result.ok, result.errors
    assert world(region=OTHER_REGION) == []
    assert iam_of(OTHER_REGION) == (set(), set())
    assert world(region=REGION) == before
    assert iam_of(REGION) == (ours_roles, ours_profiles)
    rows = operations.status(config, new_aws(), here)
    assert rows and [r for r in rows if r.status != "ok"] == []


@pytest.fixture
def legacy_naming(monkeypatch):
    """IAM named and tagged as versions before region-named roles did: <project>-<key>, no region tag."""
    monkeypatch.setattr(Naming, "global_name", Naming.legacy_global_name)
    monkeypatch.setattr(Naming, "global_tags", Naming.tags)
    return monkeypatch


def test_a_stack_from_before_region_named_iam_moves_to_its_own_roles_and_keeps_the_old(
        endpoint, tmp_path, legacy_naming):
    # Such a stack had no backups (they came with region-named IAM): its roles are the iam step's.
    config, state = make_config(backup={"enabled": False}), tmp_path / "state.json"
    up_ok(config, new_aws(), state)
    legacy_roles = {f"{PROJECT}-{key}" for key in IAM_KEYS}
    legacy_profile = role_arn(f"{PROJECT}-ecs-instance-profile").replace(":role/", ":instance-profile/")
    assert task_definition_roles(REGION) <= {role_arn(name) for name in legacy_roles}
    assert launch_template_profiles(REGION) == {legacy_profile}
    legacy_naming.undo()

    result = up_ok(config, new_aws(), state)
    roles, profiles = iam_of(REGION)
    assert roles == {f"{PROJECT}-{REGION}-{key}" for key in IAM_KEYS}
    assert task_definition_roles(REGION) <= {role_arn(name) for name in roles}
    new_profile = role_arn(f"{PROJECT}-{REGION}-ecs-instance-profile").replace(":role/", ":instance-profile/")
    assert launch_template_profiles(REGION) == {new_profile}
    recorded = json.loads(state.read_text())["resources"]["iam"]
    assert all(f"/{PROJECT}-{REGION}-" in record["id"] for record in recorded.values())
    (note,) = [n for n in result.notes if "IAM from before region-named roles is left in place" in n]
    assert all(name in note for name in legacy_roles) and f"{PROJECT}-ecs-instance-profile" in note
    rows = operations.status(config, new_aws(), state)
    assert [r for r in rows if r.status != "ok"] == []

    result = operations.destroy(config, new_aws(), state, delete_data=True, quiet=True)
    assert result.ok, result.errors
    assert any("IAM from before region-named roles is left in place" in n for n in result.notes)
    iam = boto3.client("iam", region_name=REGION)
    assert {r["RoleName"] for r in iam.list_roles(PathPrefix=f"/{PROJECT}/")["Roles"]} == legacy_roles
    assert [p["InstanceProfileName"] for p in iam.list_instance_profiles(PathPrefix=f"/{PROJECT}/")["InstanceProfiles"]] \
        == [f"{PROJECT}-ecs-instance-profile"]
    assert world() == sorted([("InstanceProfile", "ecs-instance-profile")] + [("Role", key) for key in IAM_KEYS])
