"""Failure paths of the compute layer: missing or misplaced inputs are refused before anything is
created, IAM's propagation delay is absorbed, and the Grafana secret command keeps its secret."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from typer.testing import CliRunner

from provisioner import operations
from provisioner.aws import waiter
from provisioner.cli import app as cli
from provisioner.errors import BadInput
from tests.conftest import (
    REGION,
    CallLog,
    Requests,
    config_text,
    make_config,
    new_aws,
    world,
)


def client(service: str):
    return boto3.client(service, region_name=REGION)


def test_missing_grafana_secret_fails_before_anything_is_created(endpoint, state_path):
    config = make_config(grafana={"admin_secret_name": "nobody/made-this"})
    log = CallLog()
    result = operations.up(config, new_aws(("before-call", log)), state_path, quiet=True)
    assert not result.ok
    (step, error), = result.errors
    assert step == "secret" and "provision grafana-secret --name nobody/made-this" in str(error)
    assert log.mutating == [] and world() == []


def test_dsql_cluster_in_another_region_is_refused_before_anything_is_created(endpoint, state_path):
    config = make_config(dsql={"cluster_arn": "arn:aws:dsql:us-east-1:123456789012:cluster/abc"})
    log = CallLog()
    result = operations.up(config, new_aws(("before-call", log)), state_path, quiet=True)
    assert [s for s, _ in result.errors] == ["dsql"]
    assert isinstance(result.errors[0][1], BadInput)
    assert "us-east-1" in str(result.errors[0][1]) and log.mutating == []


def refuse_twice(code: str, message: str):
    """A before-call handler answering the first two calls with an AWS error, as IAM propagation does."""
    refused = []

    def not_yet(params, **_):
        if len(refused) < 2:
            refused.append(params["url"])
            return (
                AWSResponse(params["url"], 400, {}, None),
                {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}},
            )
        return None

    return refused, not_yet


@pytest.fixture
def quick_polls():
    waiter.set_backoff(waiter.Backoff(initial=0.01, maximum=0.05, jitter=0))
    yield
    waiter.set_backoff(waiter.DEFAULT_BACKOFF)


@pytest.mark.parametrize("operation,code,message", [
    # Auto Scaling while the new instance profile propagates.
    ("autoscaling.CreateAutoScalingGroup", "InvalidParameterValue",
     "The role defined for the function cannot be assumed; invalid IAM instance profile"),
    # OpenSearch resolving the new task role named in the access policy.
    ("opensearch.CreateDomain", "InvalidTypeException", "Error setting policy: [{...}]"),
    # ECS right after its service-linked role appears.
    ("ecs.CreateCluster", "InvalidParameterException",
     "Unable to assume the service linked role. Please verify that the ECS service linked role exists."),
    ("ecs.CreateService", "InvalidParameterException",
     "Unable to assume the service linked role. Please verify that the ECS service linked role exists."),
])
def test_a_new_role_not_yet_usable_by_another_service_is_retried_until_it_is(
        endpoint, config, state_path, quick_polls, operation, code, message):
    """Real IAM takes seconds to propagate a new role; each service that checks one refuses it meanwhile."""
    refused, not_yet = refuse_twice(code, message)
    sent = Requests()
    aws = new_aws((f"before-call.{operation}", not_yet), ("provide-client-params", sent))
    result = operations.up(config, aws, state_path, quiet=True)
    assert result.ok, result.errors
    assert len(refused) == 2
    # The same request went out three times, and the world holds no twin.
    attempts = sent.of(operation)
    assert len(attempts) - len(set(map(repr, attempts))) >= 2
    assert len(world()) == len(set(world()))


def test_the_same_error_code_for_another_reason_fails_at_once(endpoint, config, state_path, quick_polls):
    refused, not_yet = refuse_twice("InvalidTypeException", "Domain policy is malformed")
    result = operations.up(config, new_aws(("before-call.opensearch.CreateDomain", not_yet)), state_path, quiet=True)
    assert [step for step, _ in result.errors] == ["opensearch"] and len(refused) == 1


def test_destroy_keeps_the_account_wide_service_linked_roles_and_says_so(endpoint, config, state_path):
    operations.up(config, new_aws(), state_path, quiet=True)
    log = Requests()
    result = operations.destroy(config, new_aws(("provide-client-params", log)), state_path, quiet=True)
    assert result.ok, result.errors
    assert log.of("iam.DeleteServiceLinkedRole") == [] and log.of("iam.DeleteRole") != []
    for name in ("AWSServiceRoleForECS", "AWSServiceRoleForAmazonOpenSearchService"):
        assert client("iam").get_role(RoleName=name)["Role"]["RoleName"] == name
        assert any(name in note and "delete-service-linked-role" in note for note in result.notes)


def test_grafana_secret_command_creates_once_and_hides_the_password(endpoint, tmp_path):
    config_file = tmp_path / "provision.toml"
    config_file.write_text(config_text("gtest", '[grafana]\nadmin_secret_name = "gtest/admin"\n'))
    runner = CliRunner()
    first = runner.invoke(cli, ["grafana-secret", "--config", str(config_file)])
    assert first.exit_code == 0, first.output
    assert "Created" in first.output
    stored = json.loads(client("secretsmanager").get_secret_value(SecretId="gtest/admin")["SecretString"])
    assert set(stored) == {"admin_user", "admin_password"} and len(stored["admin_password"]) == 32
    assert stored["admin_password"] not in first.output
    again = runner.invoke(cli, ["grafana-secret", "--config", str(config_file), "--show-password"])
    assert "Found" in again.output and stored["admin_password"] in again.output
