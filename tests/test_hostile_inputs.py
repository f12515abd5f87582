"""Bad inputs and faults, as a hostile user would try them: each ends with the README's exit code, one
clear message and no traceback, and nothing created, lost or duplicated.

Cases refused before any change run against the shared emulator without resetting it (moto_endpoint):
their `changes` log proves they made no mutating call.

Exit codes: 2 for input (config, arguments, state file, what the account or region cannot give),
1 for a refusal or failure of AWS (or an unreachable endpoint), 0 when the input turns out fine.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from provisioner.cli import app as cli
from tests.conftest import (
    ADMIN_TOOLS_IMAGE,
    PROJECT,
    REGION,
    SERVER_IMAGE,
    CallLog,
    config_text,
    free_port,
    make_config,
    new_aws,
    record_cli_calls,
    up_ok,
    world,
)

IMAGES = f'server_image = "{SERVER_IMAGE}"\nadmin_tools_image = "{ADMIN_TOOLS_IMAGE}"\n'


def invoke(*arguments: str, input: str | None = None):
    return CliRunner().invoke(cli, list(arguments), input=input)


@pytest.fixture
def changes(monkeypatch) -> CallLog:
    return record_cli_calls(monkeypatch)


def assert_clean_failure(result, code: int, message: str | None = None) -> None:
    """The exit code, one 'Error:' line (a config may list several problems under it), no traceback."""
    output = result.output
    assert result.exit_code == code, output
    assert "Traceback" not in output and "unexpected error" not in output, output
    assert not (result.exception and not isinstance(result.exception, SystemExit)), repr(result.exception)
    if code:
        assert "Error" in output, output  # ours: "Error: ...", usage errors: the "─ Error ─" panel
    if message:
        assert message in output, output


# -- config files: (text of the file, what the message must say) ------------------------------------------

def toml(extra: str = "", temporal: str = IMAGES, project: str = PROJECT) -> str:
    return f'project = "{project}"\n{extra}\n[temporal]\n{temporal}'


SMALL_SUBNETS = ('[network]\nvpc_cidr = "10.0.0.0/24"\npublic_subnet_cidr = "10.0.0.240/28"\n'
                 'private_subnet_cidrs = ["10.0.0.0/28", "10.0.0.16/28", "10.0.0.32/28"]')

CONFIGS = [
    (toml('[endpoints]\necs_endpoints = "yes"'), "endpoints.ecs_endpoints = 'yes': Input should be a valid boolean"),
    (toml('[services.history]\nreplicas = "2"'), "services.history.replicas = '2': Input should be a valid integer"),
    (toml(temporal=IMAGES + 'num_history_shards = "512"'), "temporal.num_history_shards = '512'"),
    (toml(temporal=IMAGES + "num_history_shards = 512.0"), "temporal.num_history_shards = 512.0"),
    (toml(temporal=IMAGES + "num_history_shards = 1000"), "should be a power of two"),
    (toml(temporal=IMAGES + "num_history_shards = 0"), "temporal.num_history_shards = 0"),
    (toml(temporal=IMAGES + "num_history_shards = 131072"), "temporal.num_history_shards = 131072"),
    (toml(temporal=IMAGES + "num_history_shards = true"), "temporal.num_history_shards = True"),
    (toml(temporal='server_image = "https://registry.example/temporal:1"'), "with no scheme"),
    (toml(temporal='server_image = "registry.example/Temporal:1"'), "must be an image reference"),
    (toml(temporal='server_image = "registry.example/temporal"'), "pinned by tag or digest"),
    (toml(temporal='server_image = "registry.example/temporal:latest"'), "must not use the tag 'latest'"),
    (toml(temporal='server_image = "registry.example/temporal:"'), "must be an image reference"),
    (toml(temporal='server_image = "registry.example/temporal@sha256:abc"'), "must be an image reference"),
    (toml(temporal='server_image = "registry.example/temporal:1.30.6"'), "its tag carries version 1.30"),
    (toml(temporal='server_image = " registry.example/temporal:1"'), "must be an image reference"),
    (toml(temporal='admin_tools_image = "ftp://x/y:1"'), "temporal.admin_tools_image"),
    (toml(temporal='ui_image = "temporalio/ui"'), "temporal.ui_image"),
    (toml(temporal=f'server_image = "registry.example/{"a" * 5000}:1"'), "ECS accepts at most 255"),
    (toml(temporal=IMAGES + 'server_version = "1.26"'), "Temporal '1.26' is not a supported server version"),
    (toml(temporal=IMAGES + "server_version = 1.30"), "temporal.server_version = 1.3"),
    (toml(temporal=IMAGES + 'log_level = "verbose"'), "temporal.log_level = 'verbose'"),
    (toml(temporal=IMAGES + '[temporal.dynamic_config]\n"frontend.rpz" = 1'), "did you mean 'frontend.rps'?"),
    (toml(temporal=IMAGES + '[temporal.dynamic_config]\n"" = 1'), "unknown dynamic config key ''"),
    (toml(temporal=IMAGES + "dynamic_config = 3"), "temporal.dynamic_config = 3"),
    (toml(temporal=IMAGES + '[temporal.dynamic_config]\n"frontend.rps" = "fast"'), "'frontend.rps' = 'fast' is not a whole number"),
    (toml(temporal=IMAGES + '[temporal.dynamic_config]\n"frontend.rps" = {a = 1}'), "'frontend.rps' = {'a': 1} is not a whole"),
    (toml(temporal=IMAGES + '[temporal.dynamic_config]\n"history.shutdownDrainDuration" = true'),
     "'history.shutdownDrainDuration' = True is not a duration"),
    (toml(temporal=IMAGES + '[temporal.dynamic_config]\n"history.shutdownDrainDuration" = "thirty"'),
     "'history.shutdownDrainDuration' = 'thirty' is not a duration"),
    # A negative duration converts (time.ParseDuration takes a sign), but means nothing to any setting.
    (toml(temporal=IMAGES + '[temporal.dynamic_config]\n"history.shutdownDrainDuration" = "-30s"'),
     "'history.shutdownDrainDuration' = '-30s': a negative duration"),
    (toml(temporal=IMAGES + '[temporal.dynamic_config]\n"history.shutdownDrainDuration" = [{value = -5, constraints = {}}]'),
     "'history.shutdownDrainDuration' = -5: a negative duration"),
    # Constraints the server's loader refuses (it then loads none of the file) or drops without a word.
    (toml(temporal=IMAGES + '[temporal.dynamic_config]\n"frontend.rps" = [{value = 10, constraints = {color = "red"}}]'),
     "'frontend.rps': unknown constraint 'color'"),
    (toml(temporal=IMAGES + '[temporal.dynamic_config]\n"frontend.rps" = [{value = 10, constraints = {shardId = "7"}}]'),
     "'frontend.rps': constraint shardId = '7' is not a whole number"),
    (toml(temporal=IMAGES + '[temporal.dynamic_config]\n"frontend.rps" = [{value = 10, constraint = {namespace = "a"}}]'),
     "'frontend.rps' has 'constraint' beside value and constraints"),
    (toml("[network]\nvpc_cidr = \"10.0.0.0/33\""), "network.vpc_cidr"),
    (toml("[network]\nvpc_cidr = \"10.0.0.1/16\""), "host bits zero"),
    (toml("[network]\nvpc_cidr = \"10.0.0.0/8\""), "AWS accepts prefixes from /16 to /24"),
    (toml("[network]\nvpc_cidr = \"fd00::/48\""), "is IPv6"),
    (toml("[network]\nvpc_cidr = \"not-a-cidr\""), "is not an IPv4 CIDR block"),
    (toml("[network]\nvpc_cidr = 10"), "network.vpc_cidr = 10"),
    # Ranges AWS does not assign to a VPC (VPC user guide, VPC CIDR blocks; RFC 5735).
    (toml('[network]\nvpc_cidr = "224.0.0.0/16"'), "network.vpc_cidr = '224.0.0.0/16': lies in 224.0.0.0/4 (multicast"),
    (toml('[network]\nvpc_cidr = "127.0.0.0/16"'), "lies in 127.0.0.0/8 (loopback"),
    (toml('[network]\nvpc_cidr = "169.254.0.0/16"'), "lies in 169.254.0.0/16 (link local"),
    (toml('[network]\nvpc_cidr = "0.0.0.0/16"'), "lies in 0.0.0.0/8 ('this network'"),
    # Private subnets too small for the endpoints' ENIs, the nodes and one ENI per awsvpc task.
    (toml(SMALL_SUBNETS),
     "network.private_subnet_cidrs: 10.0.0.0/28, 10.0.0.16/28, 10.0.0.32/28 have 9 addresses left"),
    (toml(SMALL_SUBNETS + "\n[endpoints]\necs_endpoints = true\n[dsql]\nprivate_link = true"),
     "network.private_subnet_cidrs: 10.0.0.0/28 has 16 addresses, fewer than the 17 it needs for itself"),
    (toml('[network]\nprivate_subnet_cidrs = ["10.0.0.0/20"]'), "at least two subnets"),
    (toml('[network]\nprivate_subnet_cidrs = ["10.0.0.0/20", "10.0.8.0/21"]'), "overlap"),
    (toml('[network]\nprivate_subnet_cidrs = ["10.0.0.0/20", "10.1.0.0/20"]'), "lies outside vpc_cidr"),
    (toml('[network]\nprivate_subnet_cidrs = "10.0.0.0/20"'), "network.private_subnet_cidrs"),
    (toml('[network]\nprivate_subnet_cidrs = [1, 2]'), "network.private_subnet_cidrs.0"),
    (toml('[network]\npublic_subnet_cidr = "10.0.255.0/29"'), "smaller than /28"),
    (toml('[network]\npublic_subnet_cidr = "192.168.0.0/28"'), "public_subnet_cidr: subnet 192.168.0.0/28 lies outside"),
    (toml('[network]\nvpc_cidr = "8.8.0.0/16"'), "private_subnet_cidrs: subnet 10.0.0.0/20 lies outside vpc_cidr"),
    (toml('[network]\npublic_subnet_cidr = "10.0.0.0/28"'), "overlap"),
    (toml('[network]\navailability_zones = ["eu-west-1a"]'), "give one zone per subnet"),
    (toml('[network]\navailability_zones = ["eu-west-1a", "eu-west-1a", "eu-west-1b"]'), "lists a zone twice"),
    (toml('[network]\navailability_zones = ["a", "b", "c"]'), "is not an availability zone name"),
    (toml("network = 3"), "network = 3"),
    (toml("network = []"), "network = []"),
    (toml('[dsql]\ncluster_arn = "my-cluster"'), "is not a DSQL cluster ARN"),
    (toml('[dsql]\ncluster_arn = "arn:aws:rds:eu-west-1:123456789012:cluster:x"'), "is not a DSQL cluster ARN"),
    (toml('[dsql]\nprivate_link = "on"'), "dsql.private_link = 'on'"),
    (toml('[dsql]\nuser = "temporal"'), "dsql.user: the temporal-dsql plugin ignores it"),
    (toml('[services.worker]\nmax_idle_conns = 5'), "services.worker.max_idle_conns: the temporal-dsql plugin"),
    (toml('[services.histroy]\ncpu = 1024'), "unknown key 'services.histroy'"),
    (toml('[services.history]\ncpu = 64'), "services.history.cpu = 64"),
    (toml('[services.history]\ncpu = 100000'), "services.history.cpu = 100000"),
    (toml('[services.history]\nmemory = 128'), "services.history.memory = 128"),
    (toml('[services.history]\nreplicas = -1'), "services.history.replicas = -1"),
    (toml('[services.history]\nreplicas = 101'), "services.history.replicas = 101"),
    (toml('[services.history]\nmax_conns = 0'), "services.history.max_conns = 0"),
    (toml('[services.ui]\nmax_conns = 10'), "unknown key 'services.ui.max_conns'"),
    (toml('[services]\nhistory = 3'), "services.history"),
    (toml('[capacity.history]\ninstance_type = "m7i.xlarge"'), "is not a Graviton"),
    (toml('[capacity.history]\ninstance_type = "M7G.XLARGE"'), "is not a Graviton"),
    (toml('[capacity.worker]\nmin_size = 3\ndesired_capacity = 1'), "min_size <= desired_capacity <= max_size"),
    (toml('[capacity.worker]\nmax_size = 0'), "capacity.worker.max_size = 0"),
    (toml('[capacity.worker]\nmax_size = 1000'), "capacity.worker.max_size = 1000"),
    (toml('[capacity.frontend]\nroot_volume_gib = 8'), "capacity.frontend.root_volume_gib = 8"),
    (toml('[capacity.gpu]\ninstance_type = "g5g.xlarge"'), "unknown key 'capacity.gpu'"),
    (toml('[logs]\nretention_days = 10'), "is not a retention CloudWatch accepts"),
    (toml('[logs]\nretention_days = "30"'), "logs.retention_days = '30'"),
    (toml('[services.history.autoscaling]\nmin = 1\nmax = 3'), "autoscaling is for services.frontend only"),
    (toml('[services.frontend.autoscaling]\nmin = 3\nmax = 2'), "needs min <= max, got min = 3 and max = 2"),
    (toml('[services.frontend.autoscaling]\nmin = 1\nmax = 3\ncpu_target = 5'), "autoscaling.cpu_target = 5"),
    (toml('[services.frontend.autoscaling]\nmin = 1\nmax = 3\ncpu_target = 60.5'), "autoscaling.cpu_target = 60.5"),
    (toml('[services.frontend.autoscaling]\nmin = "1"\nmax = 3'), "services.frontend.autoscaling.min = '1'"),
    (toml('[services.frontend]\nautoscaling = true'), "services.frontend.autoscaling = True"),
    (toml('[opensearch]\ninstance_type = "t3.small"'), "is not an OpenSearch instance type"),
    (toml('[opensearch]\nengine_version = "2.17"'), "must look like OpenSearch_2.17"),
    (toml('[opensearch]\ninstance_count = 0'), "opensearch.instance_count = 0"),
    (toml('[opensearch]\nvolume_gib = 5'), "opensearch.volume_gib = 5"),
    (toml('[opensearch]\nvolume_gib = 101'), "volume_gib = 101: a t3.small.search takes a gp3 volume of 10 to 100 GiB"),
    (toml('[opensearch]\ninstance_type = "t2.small.search"'), "is not an OpenSearch instance type that takes a gp3"),
    (toml('[opensearch]\nvisibility_index = "visibility"'), "must start with temporal_visibility_v1"),
    (toml('[opensearch]\nvisibility_index = "temporal_visibility_v1 prod"'), "must start with temporal_visibility_v1"),
    (toml('[timeouts]\nnat_gateway = 0'), "timeouts.nat_gateway = 0"),
    (toml('[timeouts]\nnat_gateway = 99999'), "timeouts.nat_gateway = 99999"),
    (toml('[timeouts]\nnat_gateway = "10m"'), "timeouts.nat_gateway = '10m'"),
    (toml('[aws]\nmax_attempts = 0'), "aws.max_attempts = 0"),
    (toml('[aws]\nmax_attempts = 100'), "aws.max_attempts = 100"),
    (toml('[aws]\nregion = "eu-west-1"'), "unknown key 'aws.region'"),
    (toml('[grafana]\nadmin_secret_name = 7'), "grafana.admin_secret_name = 7"),
    (toml('[grafana]\nadmin_secret_name = "bad name!"'), "is not a name Secrets Manager accepts"),
    (toml(f'[grafana]\nadmin_secret_name = "{"x" * 600}"'), "(600 characters): is not a name Secrets Manager accepts"),
    (toml('[grafana]\nadmin_secret_name = ""'), "grafana.admin_secret_name = '': is not a name Secrets Manager"),
    (toml(project="Temporal_Prod"), "project = 'Temporal_Prod'"),
    (toml(project="ecs-demo"), "must not start with 'aws', 'ecs' or 'fargate'"),
    (toml(project="a-very-long-project-name-indeed"), "must be 3-20 characters"),
    (toml(project="-lead"), "must be 3-20 characters"),
    (toml(project="trail-"), "must be 3-20 characters"),
    (toml(project="x"), "must be 3-20 characters"),
    (toml(project="tëmporal"), "must be 3-20 characters"),
    ('projekt = "x"\n', "unknown key 'projekt'"),
    ("project = \n", "not valid TOML"),
    ("[network\n", "not valid TOML"),
    ('project = "a"\nproject = "b"\n', "not valid TOML"),
    ("= 3\n", "not valid TOML"),
    (toml("x = " + "{a = " * 1000 + "1" + "}" * 1000), "nests tables or arrays too deeply to be a config"),
    (toml("x = " + "[" * 1000 + "]" * 1000), "nests tables or arrays too deeply to be a config"),
    ("project = 3\n", "project = 3"),
    ("project = [\"temporal\"]\n", "project = ['temporal']"),
    (toml('[grafana]\nimage = "grafana/grafana:13.0.0"'), "Grafana 13 migrates core Prometheus data sources that sign "
     "with SigV4"),
    (toml('[state]\nlocation = "S3://my-team-state/temporal.json"'), "is not an S3 state location"),
    (toml('[state]\nlocation = "https://my-team-state.s3.amazonaws.com/temporal.json"'), "is not an S3 state location"),
]


@pytest.mark.parametrize("text,message", CONFIGS, ids=[f"config-{i}" for i in range(len(CONFIGS))])
def test_a_bad_config_is_refused_with_its_key_and_nothing_is_made(moto_endpoint, changes, tmp_path, text, message):
    config = tmp_path / "provision.toml"
    config.write_text(text)
    result = invoke("up", "--config", str(config), "--state", str(tmp_path / "state.json"))
    assert_clean_failure(result, 2, message)
    assert not (tmp_path / "state.json").exists() and changes.calls == []


@pytest.mark.parametrize("temporal,message", [
    (f'admin_tools_image = "{ADMIN_TOOLS_IMAGE}"', "temporal.server_image is empty: build the images first"),
    (f'server_image = "{SERVER_IMAGE}"', "temporal.admin_tools_image is empty: build the images first"),
    (IMAGES + 'server_version = "1.29"', "temporal.server_version = '1.29': no DSQL schema is known for it"),
])
def test_validate_refuses_the_config_plan_refuses_with_the_same_message(moto_endpoint, changes, tmp_path, temporal, message):
    config = tmp_path / "provision.toml"
    config.write_text(toml(temporal=temporal))
    assert_clean_failure(invoke("validate", "--config", str(config)), 2, message)
    assert_clean_failure(invoke("plan", "--config", str(config), "--state", str(tmp_path / "state.json")), 2, message)
    assert changes.mutating == []


@pytest.mark.parametrize("content,message", [
    (b"\xff\xfe\x00p", "not UTF-8 text"),
    (b"project = \"temporal\"\n\x80", "not UTF-8 text"),
])
def test_a_config_that_is_not_utf8_is_refused(moto_endpoint, tmp_path, content, message):
    config = tmp_path / "provision.toml"
    config.write_bytes(content)
    assert_clean_failure(invoke("plan", "--config", str(config)), 2, message)


@pytest.mark.parametrize("path,message", [
    ("", "is a directory, not a config file"),
    (".", "is a directory, not a config file"),
    ("/tmp", "is a directory, not a config file"),
    ("/nonexistent/provision.toml", "no such config file"),
    ("/dev/zero", "is not a regular file"),
    ("/dev/null", "is not a regular file"),
])
def test_a_config_path_that_is_no_file_is_refused(moto_endpoint, changes, path, message):
    for command in ("plan", "up", "validate"):
        assert_clean_failure(invoke(command, "--config", path), 2, message)
    assert changes.calls == []


def test_a_config_fifo_or_a_huge_config_is_refused_without_hanging(moto_endpoint, changes, tmp_path):
    fifo = tmp_path / "provision.fifo"
    os.mkfifo(fifo)  # no writer: opening it to read would block for ever
    assert_clean_failure(invoke("plan", "--config", str(fifo)), 2, "is not a regular file")
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * (2 * 1024 * 1024))
    assert_clean_failure(invoke("plan", "--config", str(huge)), 2, "over 1024 KiB")
    assert changes.calls == []


# -- arguments ------------------------------------------------------------------------------------------

@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "provision.toml"
    path.write_text(config_text())
    return path


SCALE_ARGUMENTS = [
    (["history=³"], "the count must be a whole number from 0 to 100"),
    (["history=٣"], "the count must be a whole number from 0 to 100"),
    (["history=-1"], "the count must be a whole number"),
    (["history=101"], "the count must be a whole number"),
    (["history=1.5"], "the count must be a whole number"),
    (["history=0x1"], "the count must be a whole number"),
    (["history="], "the count must be a whole number"),
    (["history= 1"], "the count must be a whole number"),
    (["history=1e2"], "the count must be a whole number"),
    (["=3"], "unknown service ''"),
    (["histroy=2"], "did you mean 'history'?"),
    (["History=2"], "unknown service 'History'"),
    (["prometheus=1"], "unknown service 'prometheus'"),
    (["history"], "expected 'up', 'down' or service=count"),
    (["upp"], "expected 'up', 'down' or service=count"),
    ([""], "expected 'up', 'down' or service=count"),
    ([], "name what to scale"),
    (["history=1", "matching"], "expected 'up', 'down' or service=count"),
    (["history=1", "history=2"], "history is already given a count (history=1); give each service once"),
    (["up", "down"], "'up' sets every service, so it stands alone"),
    (["up", "history=1"], "'up' sets every service, so it stands alone"),
    (["history=1", "down"], "'down' sets every service, so it stands alone"),
    (["up", "up"], "'up' sets every service, so it stands alone"),
]


@pytest.mark.parametrize("arguments,message", SCALE_ARGUMENTS, ids=[f"scale-{i}" for i in range(len(SCALE_ARGUMENTS))])
def test_bad_scale_arguments_change_nothing(moto_endpoint, changes, config_file, tmp_path, arguments, message):
    result = invoke("scale", *arguments, "--config", str(config_file), "--state", str(tmp_path / "state.json"))
    assert_clean_failure(result, 2, message)
    assert changes.calls == []  # refused before any session was opened


def test_scale_help_lists_every_service_it_accepts():
    from provisioner.ecs_layout import SERVICES

    shown = " ".join(invoke("scale", "--help").output.replace("│", " ").split())
    assert f"services: {', '.join(SERVICES)}." in shown
    assert {"grafana", "collector"} <= set(SERVICES)


CLI_ARGUMENTS = [
    (["nope"], "No such command"),
    # Names Secrets Manager would refuse, and empty values that must not fall back to a default.
    (["grafana-secret", "--name", "bad name!"], "'bad name!' is not a name Secrets"),
    (["grafana-secret", "--name", "x" * 600], "(600 characters) is not a name"),
    (["grafana-secret", "--name", ""], "'' is not a name Secrets"),
    (["up", "--colour"], "No such option"),
    (["scale", "up", "--timeout", "0"], "--timeout"),
    (["scale", "up", "--timeout", "-5"], "--timeout"),
    (["scale", "up", "--timeout", "soon"], "--timeout"),
    (["schema", "--timeout", "0"], "--timeout"),
    (["emulator", "start", "--port", "0"], "--port"),
    (["emulator", "start", "--port", "70000"], "--port"),
    (["emulator", "start", "--port", "-1"], "--port"),
    (["emulator", "start", "--port", "http"], "--port"),
    (["emulator", "start", "--port", "80"], "--port"),
    (["emulator", "start", "--region", "xx"], "AWS region 'xx' is not a region name"),
    (["emulator", "env", "--region", "eu-west-1 "], "AWS region 'eu-west-1 ' is not a region name"),
    (["build-images"], "--source"),
    (["destroy", "--yes", "--delete-data", "extra"], "unexpected extra argument"),
    (["outputs", "--json", "--json=3"], "--json"),
]


@pytest.mark.parametrize("arguments,message", CLI_ARGUMENTS, ids=[f"argv-{i}" for i in range(len(CLI_ARGUMENTS))])
def test_bad_command_lines_exit_2_with_usage(moto_endpoint, changes, arguments, message):
    assert_clean_failure(invoke(*arguments), 2, message)
    assert changes.calls == []


def test_an_empty_cost_region_is_refused_not_replaced_by_the_default(moto_endpoint, changes, config_file, monkeypatch):
    monkeypatch.setenv("AWS_REGION", REGION)
    result = invoke("cost", "--region", "", "--config", str(config_file))
    assert_clean_failure(result, 2, "no price table for region ''")
    assert changes.calls == []


def test_destroy_without_a_terminal_needs_yes(moto_endpoint, config_file, tmp_path):
    assert_clean_failure(invoke("destroy", "--config", str(config_file), "--state", str(tmp_path / "s.json")), 2,
                         "pass --yes when not running interactively")


# -- state files ------------------------------------------------------------------------------------------

def state_document(**changes) -> dict:
    document = {"version": 1, "lineage": "6b0f7c3e-4b8e-4b23-9a45-1f5f5e2b0c11", "serial": 3, "project": PROJECT,
                "region": REGION, "account": "123456789012", "resources": {}, "settings": {}}
    return document | changes


STATES = [
    (b"[]", "is not a provision state"),
    (b"null", "is not a provision state"),
    (b"{}", "is not a provision state"),
    (b'"state"', "is not a provision state"),
    (b"42", "is not a provision state"),
    (b'{"version": 1, "lineage"', "is not valid JSON"),
    (b"", "is not valid JSON"),
    (b"\xff\xfe{}", "is not valid JSON"),
    (json.dumps(state_document(version=2)).encode(), "has schema version 2; this tool reads 1"),
    (json.dumps(state_document(version="1")).encode(), "has schema version '1'; this tool reads 1"),
    (json.dumps(state_document(project="other")).encode(), "belongs to project 'other'"),
    (json.dumps(state_document(region="us-east-1")).encode(), "in 'us-east-1'"),
    (json.dumps(state_document(account="210987654321")).encode(), "belongs to AWS account 210987654321"),
    (json.dumps(state_document(resources=[])).encode(), "is not a provision state (resources"),
    # A record without the attributes every record has, or under no step's name: refused at load, before any step.
    (json.dumps(state_document(resources={"network": {"vpc": {"kind": "vpc"}}})).encode(),
     "resources.network.vpc has no 'id', which every record the tool writes has"),
    (json.dumps(state_document(resources={"network": {"vpc": {"id": "vpc-1"}}})).encode(),
     "resources.network.vpc has no 'kind', which every record the tool writes has"),
    (json.dumps(state_document(resources={"netwrok": {"vpc": {"id": "vpc-1", "kind": "vpc"}}})).encode(),
     "records resources under 'netwrok', which is no step of this tool"),
    (json.dumps(state_document(resources={"network": {"vpc": {"id": 7, "kind": "vpc"}}})).encode(), "resources.network.vpc.id"),
    (json.dumps(state_document(resources={"network": []})).encode(), "resources.network"),
    (json.dumps(state_document(settings=[])).encode(), "settings"),
    # The state is input: its recorded settings are checked as strictly as the config.
    (json.dumps(state_document(settings={"service_counts": {"history": 1000, "bogus": 3}})).encode(),
     "settings.service_counts: history = 1000: a count must be a whole number from 0 to 100"),
    (json.dumps(state_document(settings={"service_counts": {"bogus": 3}})).encode(),
     "settings.service_counts: names unknown service 'bogus'"),
    (json.dumps(state_document(settings={"service_counts": {"history": "2"}})).encode(),
     "settings.service_counts.history: Input should be a valid integer"),
    (json.dumps(state_document(settings={"service_counts": {"history": -1}})).encode(), "history = -1"),
    (json.dumps(state_document(settings={"availability_zones": ["nowhere"]})).encode(),
     "settings.availability_zones: 'nowhere' is not an availability zone name"),
    (json.dumps(state_document(settings={"schema": {"at": "now"}})).encode(), "settings.schema.server_version"),
    (json.dumps(state_document(settings={"counts": {"history": 1}})).encode(),
     "settings.counts: not a setting this tool records"),
    (json.dumps(state_document(lineage="")).encode(), "lineage"),
    (json.dumps(state_document(serial=-1)).encode(), "serial"),
    (json.dumps(state_document(serial="3")).encode(), "serial"),
    (json.dumps({k: v for k, v in state_document().items() if k != "resources"}).encode(), "resources"),
    (json.dumps(state_document(extra=1)).encode(), "extra"),
    (b"[" * 100_000 + b"]" * 100_000, "nests too deeply to be a provision state"),
    (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "nests too deeply to be a provision state"),
]


@pytest.mark.parametrize("content,message", STATES, ids=[f"state-{i}" for i in range(len(STATES))])
def test_a_broken_state_file_is_refused_by_name_and_left_as_it_is(moto_endpoint, changes, config_file, tmp_path, content,
                                                                 message):
    state = tmp_path / "state.json"
    state.write_bytes(content)
    for command in ("up", "plan", "status"):
        assert_clean_failure(invoke(command, "--config", str(config_file), "--state", str(state)), 2, message)
    assert state.read_bytes() == content
    assert set(changes.calls) == {"sts.GetCallerIdentity"}  # who the credentials are: nothing else


def test_up_refuses_recorded_counts_its_node_groups_cannot_hold_as_scale_does(endpoint, changes, config_file, tmp_path):
    state = tmp_path / "state.json"
    content = json.dumps(state_document(settings={"service_counts": {"history": 40}})).encode()
    state.write_bytes(content)
    result = invoke("up", "--config", str(config_file), "--state", str(state))
    assert_clean_failure(result, 2, "the task counts the state records (settings.service_counts in")
    assert "node group history (2 x m7g.xlarge at capacity.history.max_size) cannot hold history=40" in result.output
    assert "scale to fewer tasks" in result.output
    assert changes.mutating == [] and state.read_bytes() == content


@pytest.mark.parametrize("state,message", [
    ("", "is a directory, not a state file"),
    (".", "is a directory, not a state file"),
    ("/tmp", "is a directory, not a state file"),
    ("/dev/null/provision/state.json", "cannot write the state in /dev/null/provision"),
])
def test_a_state_path_that_cannot_hold_a_state_is_refused_before_anything_is_made(moto_endpoint, changes, config_file,
                                                                                   state, message):
    assert_clean_failure(invoke("up", "--config", str(config_file), "--state", state), 2, message)
    assert changes.mutating == []


def test_a_broken_state_suggests_its_backup_only_when_there_is_one(moto_endpoint, config_file, tmp_path):
    state = tmp_path / "s.json"
    state.write_text("{")
    result = invoke("plan", "--config", str(config_file), "--state", str(state))
    assert_clean_failure(result, 2, "Move it away and run again")
    assert "s.json.backup" not in result.output
    (tmp_path / "s.json.backup").write_text(json.dumps(state_document()))
    result = invoke("plan", "--config", str(config_file), "--state", str(state))
    assert_clean_failure(result, 2, f"Restore it from {tmp_path / 's.json.backup'}")


@pytest.mark.parametrize("state", ["/dev/zero", "/dev/full", "/dev/null"])
def test_a_device_as_state_is_refused_before_it_is_read(moto_endpoint, changes, config_file, state):
    for command in ("plan", "up"):
        assert_clean_failure(invoke(command, "--config", str(config_file), "--state", state), 2,
                             f"--state '{state}': is not a regular file")
    assert changes.mutating == [] and not Path(f"{state}.lock").exists()


def test_a_fifo_as_state_is_refused_without_hanging(moto_endpoint, changes, config_file, tmp_path):
    fifo = tmp_path / "state.fifo"
    os.mkfifo(fifo)
    assert_clean_failure(invoke("up", "--config", str(config_file), "--state", str(fifo)), 2, "is not a regular file")
    assert changes.mutating == [] and sorted(p.name for p in tmp_path.iterdir()) == ["provision.toml", "state.fifo"]


@pytest.mark.parametrize("state", ["S3://my-team-state/temporal.json", "s3:/my-team-state/temporal.json",
                                   "s3:my-team-state", "https://my-team-state.s3.amazonaws.com/temporal.json",
                                   "gs://my-team-state/temporal.json", "s3://my-team-state/"])
def test_a_state_location_that_looks_like_a_url_must_be_s3_bucket_key(moto_endpoint, changes, config_file, tmp_path,
                                                                       monkeypatch, state):
    monkeypatch.chdir(tmp_path)
    assert_clean_failure(invoke("up", "--config", str(config_file), "--state", state), 2,
                         "is not an S3 state location: give s3://BUCKET/KEY")
    assert changes.mutating == [] and sorted(p.name for p in tmp_path.iterdir()) == ["provision.toml"]


def test_a_file_named_like_the_state_directory_is_refused_not_a_bug(moto_endpoint, changes, config_file, tmp_path,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".provision").write_text("")
    assert_clean_failure(invoke("up", "--config", str(config_file)), 2, "a file is in the way of that directory")
    assert_clean_failure(invoke("emulator", "start", "--port", str(free_port())), 2,
                         ".provision is a file, but the emulator keeps its record")
    assert changes.mutating == [] and (tmp_path / ".provision").is_file()


# -- the AWS settings: profile, region, endpoint ------------------------------------------------------------

AWS_SETTINGS = [
    ({}, ["--profile", "nosuchprofile"], "The config profile (nosuchprofile) could not be found"),
    ({}, ["--profile", ""], "--profile '': give a profile name"),
    ({"AWS_PROFILE": "nosuchprofile"}, [], "The config profile (nosuchprofile) could not be found"),
    ({"AWS_REGION": "", "AWS_DEFAULT_REGION": None}, [], "No AWS region is set"),
    ({"AWS_REGION": None, "AWS_DEFAULT_REGION": None}, [], "No AWS region is set"),
    ({"AWS_REGION": "xx-fake-1"}, [], "AWS region 'xx-fake-1' is not a region name"),
    ({"AWS_REGION": "eu_west_1"}, [], "AWS region 'eu_west_1' is not a region name"),
    ({"AWS_ENDPOINT_URL": "not a url"}, [], "Invalid endpoint: not a url: set AWS_ENDPOINT_URL"),
    ({"AWS_REGION": "eu-west-1\n"}, [], "AWS region 'eu-west-1\\n' is not a region name"),
    ({"AWS_ENDPOINT_URL": "ftp://127.0.0.1:21"}, [], "ftp://127.0.0.1:21 is not an http:// or https:// URL"),
    # read at each wait, so without a check up front `up` would create things and fail at its first wait
    ({"PROVISION_POLL_SCALE": "abc"}, [], "PROVISION_POLL_SCALE='abc' is not a number from 0 to 1"),
    ({"PROVISION_POLL_SCALE": "-1"}, [], "PROVISION_POLL_SCALE='-1' is not a number from 0 to 1"),
    ({"PROVISION_POLL_SCALE": "1e309"}, [], "PROVISION_POLL_SCALE='1e309' is not a number from 0 to 1"),
]


@pytest.mark.parametrize("env,arguments,message", AWS_SETTINGS, ids=[f"aws-{i}" for i in range(len(AWS_SETTINGS))])
def test_bad_aws_settings_are_input_named_before_any_call(moto_endpoint, changes, config_file, tmp_path, monkeypatch,
                                                          env, arguments, message):
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    for command in ("plan", "up", "status"):
        result = invoke(command, *arguments, "--config", str(config_file), "--state", str(tmp_path / "s.json"))
        assert_clean_failure(result, 2, message)
        assert "list fewer subnets" not in result.output
    assert changes.calls == [] and not (tmp_path / "s.json").exists()


def test_an_endpoint_that_is_no_aws_api_fails_naming_it(config_file, tmp_path, monkeypatch):
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        where = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", where)
        monkeypatch.chdir(tmp_path)
        result = invoke("plan", "--config", str(config_file), "--state", str(tmp_path / "s.json"))
    finally:
        server.shutdown()
        server.server_close()
    assert_clean_failure(result, 1, f"{where} answered, but not as an AWS API does")
    assert not (tmp_path / "s.json").exists()


# -- commands that need a stack, before 'up' -------------------------------------------------------------------

@pytest.mark.parametrize("arguments", [["scale", "up"], ["scale", "history=1"], ["schema"], ["tunnel", "grafana", "--print"],
                                       ["logs", "history"], ["exec", "history", "--print"]])
def test_a_command_that_needs_the_stack_before_up_is_input(endpoint, config_file, tmp_path, arguments):
    result = invoke(*arguments, "--config", str(config_file), "--state", str(tmp_path / "s.json"))
    assert_clean_failure(result, 2, "run 'provision up' first")
    assert world() == []


# -- the emulator --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("record", ["not json", "{}", '{"pid": "abc", "port": 1}', "[]"])
def test_a_corrupt_emulator_record_is_dropped_not_trusted(tmp_path, monkeypatch, record):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".provision").mkdir()
    (tmp_path / ".provision" / "emulator.json").write_text(record)
    result = invoke("emulator", "stop")
    assert_clean_failure(result, 0, "The emulator was not running")
    assert not (tmp_path / ".provision" / "emulator.json").exists()


def test_emulator_stop_never_signals_a_process_it_did_not_start(tmp_path, monkeypatch):
    """After a reboot the recorded pid may be any program: this very test process, here."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".provision").mkdir()
    (tmp_path / ".provision" / "emulator.json").write_text(json.dumps({"pid": os.getpid(), "port": 4566,
                                                                        "endpoint": "http://127.0.0.1:4566"}))
    assert_clean_failure(invoke("emulator", "stop"), 0, "The emulator was not running")
    assert_clean_failure(invoke("emulator", "env"), 1, "the emulator is not running")


def test_emulator_start_on_a_taken_port_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_clean_failure(invoke("emulator", "start", "--port", str(port)), 1, f"port {port} on 127.0.0.1 is in use")


# -- AWS cannot be reached -------------------------------------------------------------------------------------

@pytest.mark.parametrize("arguments", [
    ["up"], ["plan"], ["status"], ["outputs"], ["destroy", "--yes"], ["scale", "up"], ["schema"], ["grafana-secret"],
])
def test_an_unreachable_endpoint_fails_within_seconds_naming_it(config_file, tmp_path, monkeypatch, arguments):
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    started = time.monotonic()
    state = [] if arguments == ["grafana-secret"] else ["--state", str(tmp_path / "state.json")]
    result = invoke(*arguments, "--config", str(config_file), *state)
    assert_clean_failure(result, 1, f"AWS cannot be reached at {closed}")
    assert "provision emulator start" in result.output
    assert time.monotonic() - started < 15
    assert not (tmp_path / "state.json").exists()


# -- what the account or region cannot give: refused before the first change --------------------------------------

def untagged(kind: str):
    """A resource holding one of the project's names that the project did not make."""
    def make():
        if kind == "log group":
            boto3.client("logs", region_name=REGION).create_log_group(logGroupName=f"/ecs/{PROJECT}/history")
        elif kind == "IAM role":
            boto3.client("iam", region_name=REGION).create_role(
                RoleName=f"{PROJECT}-{REGION}-temporal-task", AssumeRolePolicyDocument="{}")
        elif kind == "ECS cluster":
            boto3.client("ecs", region_name=REGION).create_cluster(clusterName=f"{PROJECT}-cluster")
        elif kind == "OpenSearch domain":
            boto3.client("opensearch", region_name=REGION).create_domain(DomainName=f"{PROJECT}-vis")
        elif kind == "Service Connect namespace":
            boto3.client("servicediscovery", region_name=REGION).create_http_namespace(Name=f"{PROJECT}-services")
        elif kind == "image repository":
            boto3.client("ecr", region_name=REGION).create_repository(repositoryName=f"{PROJECT}/temporal-server")
    return make


@pytest.mark.parametrize("extra,message", [
    ('[grafana]\nadmin_secret_name = "grafana/absent"', "provision grafana-secret --name grafana/absent"),
    ('[grafana]\nadmin_secret_name = "grafana admin!"', "not a name Secrets Manager accepts"),
])
def test_a_missing_grafana_secret_is_input_with_a_command_that_works(endpoint, changes, tmp_path, extra, message):
    config = tmp_path / "provision.toml"
    config.write_text(config_text(extra=extra))
    for command in ("plan", "up"):
        result = invoke(command, "--config", str(config), "--state", str(tmp_path / "state.json"))
        assert_clean_failure(result, 2, message)
    assert "--name grafana admin!" not in result.output  # never a command the shell or Secrets Manager would refuse
    assert changes.mutating == [] and world() == []


def test_a_preflight_with_several_problems_reports_each_and_is_input(endpoint, changes, tmp_path):
    config = tmp_path / "provision.toml"
    config.write_text(config_text(extra='[grafana]\nadmin_secret_name = "grafana/absent"\n'
                                        '[capacity.history]\ninstance_type = "a1.xlarge"'))
    result = invoke("up", "--config", str(config), "--state", str(tmp_path / "state.json"))
    assert_clean_failure(result, 2, "the config asks for what this account or region cannot give")
    assert "grafana/absent" in result.output and "is not offered in" in result.output
    assert changes.mutating == [] and world() == []


@pytest.mark.parametrize("kind", ["log group", "IAM role", "ECS cluster", "OpenSearch domain",
                                  "Service Connect namespace", "image repository"])
def test_a_name_taken_by_an_untagged_resource_is_refused_before_anything_is_made(endpoint, config_file, tmp_path, kind):
    untagged(kind)()
    before = world()
    result = invoke("up", "--config", str(config_file), "--state", str(tmp_path / "state.json"))
    assert_clean_failure(result, 2, "already exists but is not tagged as this project's")
    assert world() == before


@pytest.mark.parametrize("extra,message", [
    ('[network]\navailability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-9z"]', "eu-west-9z, not an available zone"),
    ('[network]\nprivate_subnet_cidrs = ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20", "10.0.48.0/20", '
     '"10.0.64.0/20"]', "has 3 availability zones but network.private_subnet_cidrs lists 5"),
    ('[capacity.history]\ninstance_type = "a1.xlarge"', "is not offered in eu-west-1a"),
    ('[capacity.history]\ninstance_type = "m7g.nano"', "an instance type is not offered"),
    ('[dsql]\ncluster_arn = "arn:aws:dsql:us-east-1:123456789012:cluster/abcdefghijklmnopqrstuvwxyz"', "is in us-east-1"),
    ('[services.history]\nmemory = 20480', "services.history asks for"),
])
def test_config_the_region_cannot_satisfy_fails_before_the_first_change(endpoint, changes, tmp_path, extra, message):
    config = tmp_path / "provision.toml"
    config.write_text(config_text(extra=extra))
    result = invoke("up", "--config", str(config), "--state", str(tmp_path / "state.json"))
    assert_clean_failure(result, 2, message)
    assert changes.mutating == [] and world() == []


# -- an existing stack: settings it cannot change, another account, hand-made drift --------------------------------

@pytest.fixture(scope="module")
def stack(moto_endpoint, tmp_path_factory):
    """One stack for the tests below, which must leave it as they found it."""
    from tests.conftest import reset_account

    reset_account(moto_endpoint)
    state = tmp_path_factory.mktemp("hostile") / "state.json"
    up_ok(make_config(), new_aws(), state)
    return state


IMMUTABLE = [
    ("[temporal]\nnum_history_shards = 1024", "temporal.num_history_shards: the stack was built with 512"),
    ('[network]\nvpc_cidr = "10.1.0.0/16"\nprivate_subnet_cidrs = ["10.1.0.0/20", "10.1.16.0/20", "10.1.32.0/20"]\n'
     'public_subnet_cidr = "10.1.255.0/28"', "network.vpc_cidr: the stack was built with '10.0.0.0/16'"),
    ('[network]\nprivate_subnet_cidrs = ["10.0.0.0/20", "10.0.16.0/20", "10.0.64.0/20"]',
     "network.private_subnet_cidrs: the stack was built with"),
    ('[network]\navailability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]\n'
     'private_subnet_cidrs = ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]', None),
    ('[network]\npublic_subnet_cidr = "10.0.254.0/28"', "network.public_subnet_cidr: the stack was built with"),
    ('[network]\navailability_zones = ["eu-west-1b", "eu-west-1a", "eu-west-1c"]\n'
     'private_subnet_cidrs = ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]',
     "10.0.0.0/20 was built in eu-west-1a, now paired with eu-west-1b"),
    ('[network]\nprivate_subnet_cidrs = ["10.0.16.0/20", "10.0.0.0/20", "10.0.32.0/20"]',
     "list the zones in the order of network.private_subnet_cidrs: ['eu-west-1b', 'eu-west-1a', 'eu-west-1c']"),
    ('[opensearch]\nengine_version = "OpenSearch_2.19"', "upgrade the domain with 'aws opensearch upgrade-domain'"),
    ('[dsql]\ncluster_arn = "arn:aws:dsql:eu-west-1:123456789012:cluster/abcdefghijklmnopqrstuvwxyz"',
     "dsql.cluster_arn: the stack was built with '(the cluster provision created)'"),
]


@pytest.mark.parametrize("extra,message", IMMUTABLE, ids=[f"immutable-{i}" for i in range(len(IMMUTABLE))])
def test_a_setting_the_stack_cannot_change_is_refused_by_plan_and_up(stack, tmp_path, extra, message):
    config = tmp_path / "provision.toml"
    # [temporal] keys go in the base file's [temporal] section; the others in their own.
    text = config_text(extra="" if extra.startswith("[temporal]") else extra)
    if extra.startswith("[temporal]"):
        text = text.replace("[temporal]\n", extra + "\n", 1)
    config.write_text(text)
    before, state_before = world(), stack.read_bytes()
    for command in ("plan", "up"):
        result = invoke(command, "--config", str(config), "--state", str(stack))
        if message is None:  # the same zones, now named: no change at all
            assert result.exit_code == 0, result.output
            continue
        assert_clean_failure(result, 2, message)
        assert "This cannot change in place" in result.output
    assert world() == before and stack.read_bytes() == state_before


def test_zones_reordered_in_the_state_are_refused_before_anything_changes(stack, tmp_path):
    config = tmp_path / "provision.toml"
    config.write_text(config_text())
    document = json.loads(stack.read_text())
    zones = document["settings"]["availability_zones"]
    document["settings"]["availability_zones"] = [zones[1], zones[0], *zones[2:]]
    edited = tmp_path / "state.json"
    edited.write_text(json.dumps(document))
    before, payload = world(), edited.read_bytes()
    for command in ("plan", "up"):
        result = invoke(command, "--config", str(config), "--state", str(edited))
        assert_clean_failure(result, 2, "the zones recorded in the state (settings.availability_zones)")
        assert "This cannot change in place" in result.output
    assert world() == before and edited.read_bytes() == payload


def test_a_state_of_another_account_is_refused_naming_both(stack, tmp_path, monkeypatch):
    sts = boto3.client("sts", region_name=REGION)
    other = sts.assume_role(RoleArn="arn:aws:iam::210987654321:role/other", RoleSessionName="hostile")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", other["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", other["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", other["SessionToken"])
    config = tmp_path / "provision.toml"
    config.write_text(config_text())
    before = stack.read_bytes()
    for command in ("up", "plan", "status", "destroy"):
        extra = ["--yes"] if command == "destroy" else []
        result = invoke(command, *extra, "--config", str(config), "--state", str(stack))
        assert_clean_failure(result, 2, "belongs to AWS account 123456789012, but these credentials are for account "
                                        "210987654321")
    assert stack.read_bytes() == before


def test_a_removed_nat_route_shows_in_status_and_up_restores_it(stack, tmp_path):
    config = tmp_path / "provision.toml"
    config.write_text(config_text())
    ec2 = boto3.client("ec2", region_name=REGION)
    routes = json.loads(stack.read_text())["resources"]["network"]["private-routes"]["id"]
    ec2.delete_route(RouteTableId=routes, DestinationCidrBlock="0.0.0.0/0")
    result = invoke("status", "--json", "--config", str(config), "--state", str(stack))
    assert result.exit_code == 1
    rows = json.loads(result.stdout)["resources"]
    assert {(r["step"], r["key"], r["status"]) for r in rows if r["status"] != "ok"} == {
        ("nat_route", "private-default", "missing")}
    assert invoke("up", "--config", str(config), "--state", str(stack)).exit_code == 0
    assert invoke("status", "--config", str(config), "--state", str(stack)).exit_code == 0


def test_a_nat_gateway_deleted_out_of_band_shows_in_status_and_up_replaces_it(stack, tmp_path):
    config = tmp_path / "provision.toml"
    config.write_text(config_text())
    ec2 = boto3.client("ec2", region_name=REGION)
    nat = json.loads(stack.read_text())["resources"]["network"]["nat"]["id"]
    ec2.delete_nat_gateway(NatGatewayId=nat)
    result = invoke("status", "--json", "--config", str(config), "--state", str(stack))
    assert result.exit_code == 1
    assert ("network", "nat", "missing") in {
        (r["step"], r["key"], r["status"]) for r in json.loads(result.stdout)["resources"]}
    assert_clean_failure(invoke("up", "--config", str(config), "--state", str(stack)), 0)
    assert invoke("status", "--config", str(config), "--state", str(stack)).exit_code == 0


def test_sigterm_before_the_lock_ends_the_command_as_ctrl_c_does(config_file, tmp_path):
    """The first call (STS) goes to a server that accepts and never answers: the command is signalled there,
    before it takes the lock."""
    import signal
    import subprocess
    import sys

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.getsockname()[1]}", "AWS_REGION": REGION,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    command = [sys.executable, "-c", "from provisioner.cli import main; main()",
               "plan", "--config", str(config_file), "--state", str(tmp_path / "s.json")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        server.settimeout(60)
        connection, _ = server.accept()  # the command is waiting for STS's answer
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]
    finally:
        process.kill()
        server.close()
    assert process.returncode == 130, output
    assert "Interrupted" in output and "Traceback" not in output, output
    connection.close()
