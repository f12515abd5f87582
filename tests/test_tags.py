"""Tags reconciled: tags removed or edited out of band are shown by status and plan, restored by up, and a
lost state afterwards is rebuilt from them without a twin (AGENTS.md: tags are the truth when the state is lost)."""
from __future__ import annotations

import json

import boto3
import pytest

from provisioner import operations
from provisioner.naming import Naming
from tests.conftest import REGION, CallLog, Requests, build_stack, new_aws, up_ok, world

OTHER = "someone-else"
USERS_OWN = {"CostCentre": "42"}

# (step, key) of each resource drifted below, and the noun its change names.
DRIFTED = {
    ("network", "private-eu-west-1a"): "subnet",
    ("endpoints", "endpoints-sg"): "security group",
    ("iam", "ecs-execution"): "IAM role",
    ("logs", "log-history"): "log group",
    ("services", "svc-history"): "ECS service",
    ("metrics_config", "param-collector-config"): "SSM parameter",
    ("opensearch", "visibility"): "OpenSearch domain",
    ("dsql", "cluster"): "Aurora DSQL cluster",
    ("ecr", "repo-server"): "image repository",
    ("task_definitions", "td-history"): "task definition",
}


def recorded(state_path) -> dict[tuple[str, str], str]:
    resources = json.loads(state_path.read_text())["resources"]
    return {(step, key): record["id"] for step, records in resources.items() for key, record in records.items()}


def client(service: str):
    return boto3.client(service, region_name=REGION)


def drift(ids: dict[tuple[str, str], str]) -> None:
    """Remove and edit the project's tags out of band, on one resource of each kind, and add a tag of the user's."""
    ec2 = client("ec2")
    ec2.delete_tags(Resources=[ids["network", "private-eu-west-1a"]], Tags=[{"Key": "ProvisionKey"}, {"Key": "Name"}])
    ec2.create_tags(Resources=[ids["endpoints", "endpoints-sg"]],
                    Tags=[{"Key": "Project", "Value": OTHER}, {"Key": "CostCentre", "Value": "42"}])
    role = ids["iam", "ecs-execution"].rsplit("/", 1)[-1]
    client("iam").untag_role(RoleName=role, TagKeys=["ManagedBy"])
    client("iam").tag_role(RoleName=role, Tags=[{"Key": "Project", "Value": OTHER}])
    logs = client("logs")
    group_arn = f"arn:aws:logs:{REGION}:123456789012:log-group:{ids['logs', 'log-history']}"
    logs.untag_resource(resourceArn=group_arn, tagKeys=["Project"])
    logs.tag_resource(resourceArn=group_arn, tags={"ProvisionKey": "log-matching"})
    client("ecs").tag_resource(resourceArn=ids["services", "svc-history"],
                               tags=[{"key": "Project", "value": OTHER}, {"key": "ManagedBy", "value": "terraform"}])
    client("ssm").remove_tags_from_resource(ResourceType="Parameter", ResourceId=ids["metrics_config", "param-collector-config"],
                                            TagKeys=["ManagedBy", "ProvisionKey"])
    search = client("opensearch")
    domain_arn = search.describe_domain(DomainName=ids["opensearch", "visibility"])["DomainStatus"]["ARN"]
    search.remove_tags(ARN=domain_arn, TagKeys=["Project"])
    dsql = client("dsql")
    dsql.untag_resource(resourceArn=ids["dsql", "cluster"], tagKeys=["ProvisionKey"])
    dsql.tag_resource(resourceArn=ids["dsql", "cluster"], tags={"Project": OTHER})
    client("ecs").untag_resource(resourceArn=ids["task_definitions", "td-history"], tagKeys=["Project"])
    ecr = client("ecr")
    repository_arn = ecr.describe_repositories(repositoryNames=[ids["ecr", "repo-server"]])["repositories"][0]["repositoryArn"]
    # Every tag gone: the Tagging API still answers for it (it was tagged once), with none.
    ecr.untag_resource(resourceArn=repository_arn, tagKeys=list(Naming("x", REGION).tags("ecr", "repo-server")))


def live_tags(step: str, key: str, resource_id: str) -> dict[str, str]:
    """The resource's tags, read back from the emulator with the service's own call."""
    if step in ("network", "endpoints"):
        return {t["Key"]: t["Value"] for t in client("ec2").describe_tags(
            Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]}
    if step == "iam":
        return {t["Key"]: t["Value"] for t in client("iam").list_role_tags(RoleName=resource_id.rsplit("/", 1)[-1])["Tags"]}
    if step == "logs":
        return client("logs").list_tags_for_resource(
            resourceArn=f"arn:aws:logs:{REGION}:123456789012:log-group:{resource_id}")["tags"]
    if step in ("services", "task_definitions"):
        return {t["key"]: t["value"] for t in client("ecs").list_tags_for_resource(resourceArn=resource_id)["tags"]}
    if step == "metrics_config":
        return {t["Key"]: t["Value"] for t in client("ssm").list_tags_for_resource(
            ResourceType="Parameter", ResourceId=resource_id)["TagList"]}
    if step == "opensearch":
        search = client("opensearch")
        arn = search.describe_domain(DomainName=resource_id)["DomainStatus"]["ARN"]
        return {t["Key"]: t["Value"] for t in search.list_tags(ARN=arn)["TagList"]}
    if step == "dsql":
        return client("dsql").list_tags_for_resource(resourceArn=resource_id)["tags"]
    ecr = client("ecr")
    arn = ecr.describe_repositories(repositoryNames=[resource_id])["repositories"][0]["repositoryArn"]
    return {t["Key"]: t["Value"] for t in ecr.list_tags_for_resource(resourceArn=arn)["tags"]}


@pytest.fixture
def drifted(aws, config, state_path):
    """A stack whose tags were then removed and edited out of band; its world before that."""
    up_ok(config, aws, state_path)
    baseline = world()
    ids = recorded(state_path)
    drift(ids)
    return ids, baseline


@pytest.fixture(scope="module")
def drifted_once(moto_endpoint, tmp_path_factory):
    """The same drifted stack, built once for the tests that only read it (status, plan): each checks that it
    changed nothing (no mutating call, the same state)."""
    config, state_path, _ = build_stack(moto_endpoint, tmp_path_factory)
    drift(recorded(state_path))
    return config, state_path


def test_status_reports_each_resource_whose_tags_drifted(drifted_once):
    config, state_path = drifted_once
    log, before = CallLog(), state_path.read_bytes()
    rows = operations.status(config, new_aws(("before-call", log)), state_path)
    assert log.mutating == [] and state_path.read_bytes() == before
    drifts = {(r.step, r.key): r for r in rows if r.status == "drifted"}
    assert set(drifts) == set(DRIFTED)
    for (step, key), noun in DRIFTED.items():
        assert drifts[step, key].detail.startswith(f"update {noun} {key} (restore tags: ")
    assert "Project=ptest (was someone-else)" in drifts["endpoints", "endpoints-sg"].detail
    assert "ProvisionKey=private-eu-west-1a (missing)" in drifts["network", "private-eu-west-1a"].detail
    assert "CostCentre" not in drifts["endpoints", "endpoints-sg"].detail


def test_plan_lists_the_tag_restores_and_writes_nothing(drifted_once):
    config, state_path = drifted_once
    log, before = CallLog(), state_path.read_bytes()
    result = operations.plan(config, new_aws(("before-call", log)), state_path, quiet=True)
    assert result.ok, result.errors
    assert {(c.step, c.key) for c in result.changes} == set(DRIFTED)
    assert all(c.action == "update" and c.detail.startswith("restore tags: ") for c in result.changes)
    assert log.mutating == [] and state_path.read_bytes() == before


def test_up_restores_only_the_drifted_tags_keeps_the_users_own_and_then_changes_nothing(drifted, config, state_path):
    ids, _ = drifted
    sent = Requests()
    result = up_ok(config, new_aws(("provide-client-params", sent)), state_path)
    assert {(c.step, c.key) for c in result.changes} == set(DRIFTED)
    naming = Naming(config.project, REGION)
    for step, key in DRIFTED:
        tags = live_tags(step, key, ids[step, key])
        # IAM is account-wide: its tags name the region too (Naming.global_tags).
        desired = naming.global_tags(step, key) if step == "iam" else naming.tags(step, key)
        assert desired.items() <= tags.items(), (step, key, tags)
    assert live_tags("endpoints", "endpoints-sg", ids["endpoints", "endpoints-sg"])["CostCentre"] == "42"
    # Each service's own tag call, with only the keys that drifted.
    assert sorted(sent.of("ec2.CreateTags"), key=lambda p: p["Resources"]) == sorted([
        {"Resources": [ids["network", "private-eu-west-1a"]],
         "Tags": [{"Key": "Name", "Value": "ptest-private-eu-west-1a"}, {"Key": "ProvisionKey", "Value": "private-eu-west-1a"}]},
        {"Resources": [ids["endpoints", "endpoints-sg"]], "Tags": [{"Key": "Project", "Value": "ptest"}]},
    ], key=lambda p: p["Resources"])
    assert sent.of("iam.TagRole") == [{"RoleName": ids["iam", "ecs-execution"].rsplit("/", 1)[-1],
                                       "Tags": [{"Key": "Project", "Value": "ptest"},
                                                {"Key": "ManagedBy", "Value": "provision"}]}]
    assert sent.of("logs.TagResource") == [{
        "resourceArn": f"arn:aws:logs:{REGION}:123456789012:log-group:/ecs/ptest/history",
        "tags": {"Project": "ptest", "ProvisionKey": "log-history"}}]
    assert sorted(sent.of("ecs.TagResource"), key=lambda p: p["resourceArn"]) == sorted([
        {"resourceArn": ids["services", "svc-history"],
         "tags": [{"key": "Project", "value": "ptest"}, {"key": "ManagedBy", "value": "provision"}]},
        {"resourceArn": ids["task_definitions", "td-history"], "tags": [{"key": "Project", "value": "ptest"}]},
    ], key=lambda p: p["resourceArn"])
    # A recorded task definition is not described: its tags came with the one read of the recorded resources'.
    assert sent.of("ecs.DescribeTaskDefinition") == []
    assert sent.of("ssm.AddTagsToResource") == [{
        "ResourceType": "Parameter", "ResourceId": "/ptest/collector/config",
        "Tags": [{"Key": "ProvisionKey", "Value": "param-collector-config"}, {"Key": "ManagedBy", "Value": "provision"}]}]
    assert [p["TagList"] for p in sent.of("opensearch.AddTags")] == [[{"Key": "Project", "Value": "ptest"}]]
    assert sent.of("dsql.TagResource") == [{"resourceArn": ids["dsql", "cluster"],
                                            "tags": {"Project": "ptest", "ProvisionKey": "cluster"}}]
    assert [p["tags"] for p in sent.of("ecr.TagResource")] == [naming.tag_list("ecr", "repo-server")]
    again = CallLog()
    assert up_ok(config, new_aws(("before-call", again)), state_path).changes == []
    assert again.mutating == []
    # The tags of every recorded log group, repository, parameter and task definition: one call.
    assert again.calls.count("resource-groups-tagging-api.GetResources") == 1


def test_a_lost_state_after_the_repair_is_rebuilt_without_a_twin(drifted, config, state_path):
    _, baseline = drifted
    up_ok(config, new_aws(), state_path)
    state_path.unlink()
    log = CallLog()
    assert up_ok(config, new_aws(("before-call", log)), state_path).changes == []
    assert log.mutating == []
    assert world() == baseline


def test_without_the_state_a_resource_tagged_as_another_projects_is_not_adopted(aws, config, state_path):
    """Tags are the truth when the state is lost: a role retagged to another project is refused, not taken."""
    up_ok(config, aws, state_path)
    role = recorded(state_path)["iam", "ecs-execution"].rsplit("/", 1)[-1]
    client("iam").tag_role(RoleName=role, Tags=[{"Key": "Project", "Value": OTHER}])
    state_path.unlink()
    log = CallLog()
    result = operations.up(config, new_aws(("before-call", log)), state_path, quiet=True)
    assert not result.ok
    assert any(f"named {role} already exists but is not tagged as this project's" in str(e) for _, e in result.errors)
    assert [c for c in log.mutating if "Tag" in c] == []


def test_tags_read_with_the_tagging_api_are_restored_and_one_missing_from_its_answer_is_asked_alone(
        aws, config, state_path):
    """The KMS key, SNS topic, Backup vault and plan and Cloud Map namespace answer tags only to a call of their own:
    a run reads them with every recorded resource's in one GetResources. Drift there is restored by each service's
    tag call; a resource the answer leaves out (the Tagging API's index lags) is asked alone, not taken as untagged."""
    up_ok(config, aws, state_path)
    ids = recorded(state_path)
    key_id, topic, vault, plan = ids["alerts", "alerts-key"], ids["alerts", "alerts"], ids["backup", "vault"], ids[
        "backup", "plan"]
    client("kms").untag_resource(KeyId=key_id, TagKeys=["Project"])
    client("sns").untag_resource(ResourceArn=topic, TagKeys=["ManagedBy"])
    backup = client("backup")
    vault_arn = backup.describe_backup_vault(BackupVaultName=vault)["BackupVaultArn"]
    backup.untag_resource(ResourceArn=vault_arn, TagKeyList=["ProvisionKey"])
    plan_arn = backup.get_backup_plan(BackupPlanId=plan)["BackupPlanArn"]
    backup.untag_resource(ResourceArn=plan_arn, TagKeyList=["Project"])
    cloud_map = client("servicediscovery")
    namespace_arn = cloud_map.get_namespace(Id=ids["cluster", "namespace"])["Namespace"]["Arn"]
    cloud_map.untag_resource(ResourceARN=namespace_arn, TagKeys=["Project"])

    def lagging(parsed, **_):
        parsed["ResourceTagMappingList"] = [m for m in parsed["ResourceTagMappingList"] if m["ResourceARN"] != namespace_arn]

    sent = Requests()
    result = up_ok(config, new_aws(("provide-client-params", sent),
                                   ("after-call.resource-groups-tagging-api.GetResources", lagging)), state_path)

    assert {(c.step, c.key) for c in result.changes} == {
        ("alerts", "alerts-key"), ("alerts", "alerts"), ("backup", "vault"), ("backup", "plan"), ("cluster", "namespace")}
    assert sent.of("kms.TagResource") == [{"KeyId": key_id, "Tags": [{"TagKey": "Project", "TagValue": "ptest"}]}]
    assert sent.of("sns.TagResource") == [{"ResourceArn": topic, "Tags": [{"Key": "ManagedBy", "Value": "provision"}]}]
    assert sorted(sent.of("backup.TagResource"), key=lambda p: p["ResourceArn"]) == sorted([
        {"ResourceArn": vault_arn, "Tags": {"ProvisionKey": "vault"}},
        {"ResourceArn": plan_arn, "Tags": {"Project": "ptest"}}], key=lambda p: p["ResourceArn"])
    assert sent.of("servicediscovery.TagResource") == [
        {"ResourceARN": namespace_arn, "Tags": [{"Key": "Project", "Value": "ptest"}]}]
    # Only the namespace, left out of the answer, was asked for its tags alone.
    assert sent.of("servicediscovery.ListTagsForResource") == [{"ResourceARN": namespace_arn}]
    for asked_alone in ("kms.ListResourceTags", "sns.ListTagsForResource", "backup.ListTags", "opensearch.ListTags"):
        assert sent.of(asked_alone) == [], asked_alone
    again = CallLog()
    assert up_ok(config, new_aws(("before-call", again)), state_path).changes == []
    assert again.calls.count("resource-groups-tagging-api.GetResources") == 1
