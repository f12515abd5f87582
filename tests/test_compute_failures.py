"""Failure paths of the compute layer: missing or misplaced inputs are refused before anything is
created, IAM's propagation delay is absorbed, and the Grafana secret command keeps its secret."""
from __future__ import annotations

import json

import boto3
from botocore.awsrequest import AWSResponse
from typer.testing import CliRunner

from provisioner import operations
from provisioner.cli import app as cli
from tests.conftest import REGION, CallLog, config_text, make_config, new_aws, world


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
    assert [s for s, _ in result.errors] == ["iam"]
    assert "us-east-1" in str(result.errors[0][1]) and log.mutating == []


def test_new_instance_profile_not_yet_visible_is_retried_until_it_is(endpoint, config, state_path):
    """Real IAM refuses a brand-new role or profile for a few seconds; the waiter must absorb it."""
    from provisioner import waiter

    waiter.set_backoff(waiter.Backoff(initial=0.01, maximum=0.05, jitter=0))
    refused = []

    def not_yet(params, **_):
        if len(refused) < 2:
            refused.append(params["url"])
            return (
                AWSResponse(params["url"], 400, {}, None),
                {"Error": {"Code": "InvalidParameterValue",
                           "Message": "The role defined for the function cannot be assumed; invalid IAM instance profile"},
                 "ResponseMetadata": {"HTTPStatusCode": 400}},
            )
        return None

    try:
        result = operations.up(config, new_aws(("before-call.autoscaling.CreateAutoScalingGroup", not_yet)), state_path, quiet=True)
    finally:
        waiter.set_backoff(waiter.DEFAULT_BACKOFF)
    assert result.ok, result.errors
    assert len(refused) == 2
    assert len([k for kind, k in world() if kind == "AutoScalingGroup"]) == 3


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
