"""The Aurora DSQL cluster: created with protection, or adopted untouched; kept by destroy unless
--delete-data; reached through PrivateLink only when asked; refused in a region without DSQL.
Assertions read what the tool sent and what the emulator holds."""
from __future__ import annotations

import json

import boto3
from typer.testing import CliRunner

from provisioner import operations
from provisioner.cli import app as cli
from provisioner.commands import scale as scaling
from provisioner.commands import schema as schema_command
from provisioner.emulator.patches import DSQL_IDLE_SETTING
from tests.conftest import (
    PROJECT,
    REGION,
    Requests,
    config_text,
    free_port,
    make_config,
    new_aws,
    own_emulator,
    up_ok,
    world,
)


def dsql():
    return boto3.client("dsql", region_name=REGION)


def state_record(state) -> dict:
    return json.loads(state.read_text())["resources"]["dsql"]["cluster"]


def temporal_policy() -> dict:
    iam = boto3.client("iam", region_name=REGION)
    document = iam.get_role_policy(RoleName=f"{PROJECT}-{REGION}-temporal-task", PolicyName="temporal")["PolicyDocument"]
    return {s["Sid"]: s for s in document["Statement"]}


def rendered_sql(role: str = "history") -> dict:
    ecs = boto3.client("ecs", region_name=REGION)
    (item,) = ecs.describe_task_definition(taskDefinition=f"{PROJECT}-{role}")["taskDefinition"]["containerDefinitions"]
    environment = {e["name"]: e["value"] for e in item["environment"]}
    server = json.loads(environment["TEMPORAL_SERVER_CONFIG"])
    return server["persistence"]["datastores"]["dsql"]["sql"]


def test_a_new_cluster_is_created_protected_tagged_and_idempotent(endpoint, config, state_path):
    sent = Requests()
    up_ok(config, new_aws(("provide-client-params", sent)), state_path)
    (request,) = sent.of("dsql.CreateCluster")
    assert request["deletionProtectionEnabled"] is True
    assert request["tags"]["Project"] == PROJECT and request["tags"]["ProvisionKey"] == "cluster"
    assert request["clientToken"].startswith("provision-")
    record = state_record(state_path)
    cluster = dsql().get_cluster(identifier=record["identifier"])
    assert cluster["arn"] == record["id"] and cluster["deletionProtectionEnabled"] is True
    # The grant names exactly this cluster; the server connects to its endpoint.
    assert temporal_policy()["DsqlConnect"]["Resource"] == record["id"]
    assert rendered_sql()["connectAddr"] == f"{record['identifier']}.dsql.{REGION}.on.aws:5432"
    assert record["adopted"] is False


def test_an_adopted_cluster_is_used_as_it_is_and_never_touched(endpoint, state_path):
    existing = dsql().create_cluster(deletionProtectionEnabled=False)
    config = make_config(dsql={"cluster_arn": existing["arn"]})
    sent = Requests()
    up_ok(config, new_aws(("provide-client-params", sent)), state_path)
    assert sent.of("dsql.CreateCluster") == []
    assert temporal_policy()["DsqlConnect"]["Resource"] == existing["arn"]
    assert rendered_sql()["connectAddr"] == f"{existing['identifier']}.dsql.{REGION}.on.aws:5432"
    result = operations.destroy(config, new_aws(("provide-client-params", sent)), state_path, delete_data=True,
                                quiet=True)
    assert result.ok, result.errors
    assert sent.of("dsql.UpdateCluster") == [] and sent.of("dsql.DeleteCluster") == []
    assert dsql().get_cluster(identifier=existing["identifier"])["status"] == "ACTIVE"
    assert any("untouched" in note for note in result.notes)


def test_an_adopted_cluster_of_another_account_or_that_does_not_exist_is_refused(endpoint, tmp_path):
    for arn, message in (
        (f"arn:aws:dsql:{REGION}:210987654321:cluster/abcdefghijklmnopqrstuvwxyz", "belongs to account 210987654321"),
        (f"arn:aws:dsql:{REGION}:123456789012:cluster/abcdefghijklmnopqrstuvwxyz", "does not exist"),
    ):
        config_file = tmp_path / "provision.toml"
        config_file.write_text(config_text(extra=f'[dsql]\ncluster_arn = "{arn}"\n'))
        result = CliRunner().invoke(cli, ["up", "--config", str(config_file), "--state", str(tmp_path / "s.json")])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert world() == []


def test_destroy_keeps_a_created_cluster_and_delete_data_removes_it(endpoint, config, state_path):
    up_ok(config, new_aws(), state_path)
    identifier = state_record(state_path)["identifier"]
    kept = operations.destroy(config, new_aws(), state_path, quiet=True)
    assert kept.ok and dsql().get_cluster(identifier=identifier)["status"] == "ACTIVE"
    (note,) = [n for n in kept.notes if "Aurora DSQL" in n]
    assert f"aws dsql delete-cluster --identifier {identifier}" in note
    # A later up finds it again by its tags: no second cluster.
    up_ok(config, new_aws(), state_path)
    assert state_record(state_path)["identifier"] == identifier
    sent = Requests()
    assert operations.destroy(config, new_aws(("provide-client-params", sent)), state_path, delete_data=True,
                              quiet=True).ok
    assert [r["deletionProtectionEnabled"] for r in sent.of("dsql.UpdateCluster")] == [False]
    assert [r["identifier"] for r in sent.of("dsql.DeleteCluster")] == [identifier]
    assert world() == []


def test_privatelink_endpoint_exists_only_when_switched_on(endpoint, state_path):
    config = make_config(dsql={"private_link": True})
    up_ok(config, new_aws(), state_path)
    record = state_record(state_path)
    service = dsql().get_vpc_endpoint_service_name(identifier=record["identifier"])
    ec2 = boto3.client("ec2", region_name=REGION)
    (found,) = ec2.describe_vpc_endpoints(Filters=[{"Name": "service-name", "Values": [service["serviceName"]]}])[
        "VpcEndpoints"]
    assert found["VpcEndpointType"] == "Interface" and found["PrivateDnsEnabled"] is True
    outputs = operations.outputs(config, new_aws(), state_path)
    assert [g["GroupId"] for g in found["Groups"]] == [outputs["endpoint_security_group_id"]]
    # The server connects through it, by the host AWS names for the cluster over PrivateLink.
    assert rendered_sql()["connectAddr"] == f"{service['clusterVpcEndpoint']}:5432"
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [outputs["endpoint_security_group_id"]]}])["SecurityGroupRules"]
    assert sorted((r["FromPort"], r["CidrIpv4"]) for r in rules if not r["IsEgress"]) == [
        (443, "10.0.0.0/16"), (5432, "10.0.0.0/16")]
    # Switched off again: the endpoint goes, the server goes back to the public endpoint through the NAT.
    up_ok(make_config(), new_aws(), state_path)
    assert ec2.describe_vpc_endpoints(Filters=[{"Name": "service-name", "Values": [service["serviceName"]]}])[
        "VpcEndpoints"] == [] or all(e["State"].lower() in ("deleted", "deleting") for e in ec2.describe_vpc_endpoints(
            Filters=[{"Name": "service-name", "Values": [service["serviceName"]]}])["VpcEndpoints"])
    assert rendered_sql()["connectAddr"] == f"{record['identifier']}.dsql.{REGION}.on.aws:5432"


def test_a_region_without_dsql_is_refused_by_name_before_anything_is_created(endpoint, tmp_path, monkeypatch):
    """Where DSQL is not offered its API endpoint does not exist: a connection to it fails."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DSQL", f"http://127.0.0.1:{free_port()}")
    config_file = tmp_path / "provision.toml"
    config_file.write_text(config_text())
    result = CliRunner().invoke(cli, ["up", "--config", str(config_file), "--state", str(tmp_path / "s.json")])
    assert result.exit_code == 2, result.output
    assert f"Aurora DSQL does not answer in {REGION}" in result.output and "Traceback" not in result.output
    monkeypatch.delenv("AWS_ENDPOINT_URL_DSQL")
    assert world() == []


def idle_until_inactive(identifier: str) -> list[str]:
    """The statuses a cluster reports until INACTIVE (the idle hook moves it one step per GetCluster)."""
    seen = [dsql().get_cluster(identifier=identifier)["status"]]
    while seen[-1] != "INACTIVE" and len(seen) < 4:
        seen.append(dsql().get_cluster(identifier=identifier)["status"])
    return seen


def test_an_inactive_cluster_is_adopted_and_used_by_up_schema_scale_and_status(moto_endpoint, tmp_path, monkeypatch):
    """INACTIVE is DSQL's idle state: data kept, and a connection brings the cluster back to ACTIVE (Aurora DSQL
    user guide, "Aurora DSQL cluster lifecycle"). The emulator's idle hook makes every cluster INACTIVE."""
    with own_emulator(tmp_path / "idle", monkeypatch, **{DSQL_IDLE_SETTING: "1"}):
        existing = dsql().create_cluster(deletionProtectionEnabled=False)
        assert idle_until_inactive(existing["identifier"]) == ["ACTIVE", "IDLE", "INACTIVE"]
        config = make_config(dsql={"cluster_arn": existing["arn"]})
        state = tmp_path / "state.json"
        up_ok(config, new_aws(), state)
        assert state_record(state)["id"] == existing["arn"]
        assert [r.ok for r in schema_command.schema(config, new_aws(), state, quiet=True)] == [True, True]
        (history,) = scaling.scale(config, new_aws(), {"history": 1}, state, quiet=True)
        assert (history.service, history.running, history.stable) == ("history", 1, True)
        assert [r for r in operations.status(config, new_aws(), state) if r.status != "ok"] == []


def test_an_inactive_created_cluster_is_found_again_after_destroy_and_used(moto_endpoint, tmp_path, monkeypatch):
    with own_emulator(tmp_path / "idle", monkeypatch, **{DSQL_IDLE_SETTING: "1"}):
        config, state = make_config(), tmp_path / "state.json"
        up_ok(config, new_aws(), state)
        identifier = state_record(state)["identifier"]
        assert operations.destroy(config, new_aws(), state, quiet=True).ok
        assert idle_until_inactive(identifier)[-1] == "INACTIVE"
        sent = Requests()
        up_ok(config, new_aws(("provide-client-params", sent)), state)
        assert sent.of("dsql.CreateCluster") == [] and state_record(state)["identifier"] == identifier
        assert [r.ok for r in schema_command.schema(config, new_aws(), state, quiet=True)] == [True, True]
