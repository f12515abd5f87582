"""Test harness: one embedded moto server for the session, reset before every test.

Tests drive the real tool against it; what they assert is read back from the
emulator, never from hand-made fakes of boto3.

Timing: every wait, poll and retry of the tool is scaled down for the whole run (waiter.POLL_SCALE_SETTING,
set in the environment here, so the CLI run in a subprocess polls as fast): the emulator answers at once.
Side by side: under pytest-xdist (scripts/test.sh) each worker is its own process with its own session,
so its own emulator on a free port, its own temporary directories and its own AWS settings.
"""
from __future__ import annotations

import copy
import os
import socket
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import boto3
import pytest

from provisioner.aws import waiter
from provisioner.aws.reads import is_mutating
from provisioner.aws.session import Aws, is_bookkeeping, share_data_loader
from provisioner.config import Config, parse_config
from provisioner.emulator import server as emulator
from provisioner.errors import ProvisionError

REGION = "eu-west-1"
PROJECT = "ptest"
GRAFANA_SECRET = "grafana/admin"
SERVER_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/temporal-dsql:1.29.0-test"
ADMIN_TOOLS_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/temporal-dsql-admin-tools:1.29.0-test"


def make_config(**settings) -> Config:
    """A valid config for the tests: the required settings, plus any overrides."""
    required = {"project": PROJECT, "temporal": {"server_image": SERVER_IMAGE, "admin_tools_image": ADMIN_TOOLS_IMAGE}}
    return parse_config(required | settings)


def config_text(project: str = PROJECT, extra: str = "") -> str:
    """The same required settings as a TOML config file, for tests that run the CLI."""
    return (f'project = "{project}"\n[temporal]\nserver_image = "{SERVER_IMAGE}"\n'
            f'admin_tools_image = "{ADMIN_TOOLS_IMAGE}"\n{extra}')


# The tool's polls and retries at 1/100 of AWS's cadence: 20 ms first, 200 ms at most (waiter.Backoff).
TEST_POLL_SCALE = "0.01"


def pytest_configure(config):
    # In the environment, not only in this process: a CLI run as a subprocess inherits it.
    os.environ.setdefault(waiter.POLL_SCALE_SETTING, TEST_POLL_SCALE)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the groups to name the tests by them
def pytest_collection_modifyitems(config, items):
    """Side by side (pytest-xdist, --dist loadgroup): the tests that share a fixture of their module (a stack
    built once for a module's read-only tests, the README's emulator) form one group, run by one worker one
    after another, so it is built once; every other test goes to whichever worker is free. The groups go
    first: the longest work is handed out while every worker is still free."""
    grouped = set()
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        definitions = fixtures.name2fixturedefs.values() if fixtures else ()
        if any(chain and chain[-1].scope == "module" for chain in definitions):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
            grouped.add(item)
    items.sort(key=lambda item: item not in grouped)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_emulator(workdir: Path) -> dict:
    """`emulator.start` on a free port. Workers side by side pick ports at the same time: one taken
    between the pick and the start is picked again."""
    for attempt in range(3):
        try:
            return emulator.start(workdir, free_port())
        except ProvisionError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@contextmanager
def own_emulator(workdir: Path, monkeypatch, **settings: str) -> Iterator[str]:
    """An emulator of its own, started with emulator hook settings, that the AWS settings point at."""
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    info = start_emulator(workdir)
    monkeypatch.setenv("AWS_ENDPOINT_URL", info["endpoint"])
    try:
        reset_account(info["endpoint"])
        yield info["endpoint"]
    finally:
        emulator.stop(workdir)


def build_stack(moto_endpoint: str, tmp_path_factory, **settings) -> tuple[Config, Path, "Requests"]:
    """A stack in a clean account, for the tests of a module that only read it or are refused, with every request
    `up` sent. A refusal on it asserts that it changed nothing (no mutating call, the same state bytes); a test
    that changes the stack builds its own."""
    reset_account(moto_endpoint)
    config = make_config(**settings)
    state_path = tmp_path_factory.mktemp("stack") / "state.json"
    sent = Requests()
    up_ok(config, new_aws(("provide-client-params", sent)), state_path)
    return config, state_path, sent


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """The embedded emulator exactly as users run it: its own process (so it has its own core), patched,
    and the standard AWS settings pointing at it for the whole session."""
    workdir = tmp_path_factory.mktemp("emulator")
    info = start_emulator(workdir)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            patch.delenv(name, raising=False)
        env = {
            "AWS_ENDPOINT_URL": info["endpoint"], "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            # Never read the developer's own AWS files.
            "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
            **emulator.CREDENTIALS,
        }
        for name, value in env.items():
            patch.setenv(name, value)
        yield info["endpoint"]
    emulator.stop(workdir)


@pytest.fixture
def endpoint(moto_endpoint):
    """A clean emulated account."""
    reset_account(moto_endpoint)
    return moto_endpoint


def reset_account(endpoint: str) -> None:
    """An empty emulated account, holding only what a user creates before the first `up`."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
    create_grafana_secret()


def create_grafana_secret() -> str:
    """What the user does once before the first `up` (provision grafana-secret)."""
    client = boto3.client("secretsmanager", region_name=REGION)
    return client.create_secret(
        Name=GRAFANA_SECRET, SecretString='{"admin_user": "admin", "admin_password": "not-a-real-one"}'
    )["ARN"]


@pytest.fixture
def config() -> Config:
    return make_config()


@pytest.fixture
def state_path(tmp_path) -> Path:
    return tmp_path / "state.json"


class CallLog:
    """Every AWS call a session makes on the stack, by operation, through botocore's own event hooks; the calls
    that keep the state in S3 and the project lock (bookkeeping clients) are kept apart, in `bookkeeping`."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.bookkeeping: list[str] = []

    def __call__(self, event_name: str, context: dict | None = None, **_) -> None:
        (self.bookkeeping if context and is_bookkeeping(context) else self.calls).append(event_name.split(".", 1)[1])

    @property
    def mutating(self) -> list[str]:
        return [c for c in self.calls if is_mutating(c.split(".")[-1])]


def run_cli(*arguments: str, config_file: Path, state: Path):
    """`provision ARGUMENTS --config CONFIG_FILE --state STATE`, in-process."""
    from typer.testing import CliRunner

    from provisioner.cli import app

    return CliRunner().invoke(app, [*arguments, "--config", str(config_file), "--state", str(state)])


@pytest.fixture
def cli_stack(endpoint, tmp_path):
    """A stack made with the example config, with the config file and state path the CLI uses for it."""
    config_file = tmp_path / "provision.toml"
    config_file.write_text(config_text())
    state = tmp_path / "state.json"
    up_ok(make_config(), new_aws(), state)
    return config_file, state


def on_cli_sessions(monkeypatch, event: str, handler) -> None:
    """`handler` on botocore's `event` in every session the CLI opens during a test."""
    from provisioner.aws import session as factory

    original = factory.make_session

    def recording(*args, **kwargs):
        made = original(*args, **kwargs)
        made.events.register(event, handler)
        return made

    monkeypatch.setattr(factory, "make_session", recording)


def record_cli_calls(monkeypatch) -> CallLog:
    """Every AWS call of the sessions the CLI opens during a test (the stack's and the bookkeeping's
    apart): a test that finds no mutating call knows nothing was created, changed or deleted."""
    log = CallLog()
    on_cli_sessions(monkeypatch, "before-call", log)
    return log


class Requests:
    """Every request a session sends, as the tool wrote it (service.Operation, parameters), through
    botocore's own event for client parameters: what AWS would receive, whatever moto keeps of it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.bookkeeping: list[tuple[str, dict]] = []  # the project lock and an S3 state, not the stack

    def __call__(self, params: dict, model, context: dict | None = None, **_) -> None:
        request = (f"{model.service_model.service_name}.{model.name}", copy.deepcopy(params))
        (self.bookkeeping if context and is_bookkeeping(context) else self.sent).append(request)

    def of(self, operation: str) -> list[dict]:
        """The parameters of every call of `operation` (like "ecs.RegisterTaskDefinition"), in order."""
        return [params for name, params in self.sent if name == operation]


def up_ok(config: Config, aws: Aws, state_path: Path):
    """`provision up`, which must succeed."""
    from provisioner import operations

    result = operations.up(config, aws, state_path, quiet=True)
    assert result.ok, result.errors
    return result


def unlock_killed_run(config: Config, state_location) -> str:
    """What the user does after a run was SIGKILLed: 'provision state unlock LOCK_ID', with the ID the refusal
    named. Returns that ID."""
    from provisioner import operations

    aws = new_aws()
    lock = operations.project_lock(config, aws, operations.open_store(config, aws, state_location))
    holder = lock.holder()
    assert holder is not None, "the killed run left no lock"
    lock.unlock(holder.id)
    return holder.id


def new_aws(*hooks: tuple[str, object], region: str = REGION) -> Aws:
    session = boto3.Session(region_name=region)
    share_data_loader(session)
    for event, handler in hooks:
        session.events.register(event, handler)
    return Aws(session, max_attempts=10)


@pytest.fixture
def aws(endpoint) -> Aws:
    return new_aws()


# Each EC2 type the tool may create: describe call, result key, id field, filter parameter.
EC2_TYPES = (
    ("describe_vpcs", "Vpcs", "VpcId", "Filters"),
    ("describe_subnets", "Subnets", "SubnetId", "Filters"),
    ("describe_internet_gateways", "InternetGateways", "InternetGatewayId", "Filters"),
    ("describe_route_tables", "RouteTables", "RouteTableId", "Filters"),
    ("describe_security_groups", "SecurityGroups", "GroupId", "Filters"),
    ("describe_addresses", "Addresses", "AllocationId", "Filters"),
    ("describe_nat_gateways", "NatGateways", "NatGatewayId", "Filter"),
    ("describe_vpc_endpoints", "VpcEndpoints", "VpcEndpointId", "Filters"),
)
GONE = ("deleted", "deleting", "failed")


def _all(client, call: str, key: str, **params) -> list[dict]:
    if client.can_paginate(call):
        return [item for page in client.get_paginator(call).paginate(**params) for item in page[key]]
    return getattr(client, call)(**params)[key]


def _tags(raw) -> dict[str, str]:
    if isinstance(raw, dict):
        return raw
    return {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in raw or []}


# What a plain `destroy` keeps, because it holds data: the DSQL cluster (every workflow's history).
KEPT_DATA = [("DsqlCluster", "cluster")]


def world(project: str = PROJECT, region: str = REGION) -> list[tuple[str, str]]:
    """Live resources tagged for the project, as sorted (type, logical key): a duplicate shows twice.

    Read with each service's own list/describe calls, independently of the tool's code
    (moto keeps tags of deleted resources in DescribeTags, so that is not used). IAM is account-wide: its
    roles and instance profiles count for `region` when tagged with it, or with no region (shared).
    """
    ec2 = boto3.client("ec2", region_name=region)
    found = []
    for call, key, id_field, filter_param in EC2_TYPES:
        for item in _all(ec2, call, key, **{filter_param: [{"Name": "tag:Project", "Values": [project]}]}):
            if str(item.get("State", "")).lower() in GONE:
                continue
            found.append((id_field.removesuffix("Id"), _tags(item.get("Tags")).get("ProvisionKey", "?")))
    # moto returns at most 15 launch templates and no NextToken: select by tag on the server.
    mine = [{"Name": "tag:Project", "Values": [project]}]
    for template in _all(ec2, "describe_launch_templates", "LaunchTemplates", Filters=mine):
        found.append(("LaunchTemplate", _tags(template.get("Tags"))))
    iam = boto3.client("iam", region_name=region)
    for role in _all(iam, "list_roles", "Roles"):
        found.append(("Role", _tags(iam.get_role(RoleName=role["RoleName"])["Role"].get("Tags"))))
    for profile in _all(iam, "list_instance_profiles", "InstanceProfiles"):
        found.append(("InstanceProfile", _tags(profile.get("Tags"))))
    found = [(kind, tags) for kind, tags in found
             if kind not in ("Role", "InstanceProfile") or tags.get("ProvisionRegion", region) == region]
    logs = boto3.client("logs", region_name=region)
    for group in _all(logs, "describe_log_groups", "logGroups"):
        found.append(("LogGroup", _tags(logs.list_tags_for_resource(resourceArn=group["logGroupArn"])["tags"])))
    sd = boto3.client("servicediscovery", region_name=region)
    for ns in _all(sd, "list_namespaces", "Namespaces"):
        found.append(("Namespace", _tags(sd.list_tags_for_resource(ResourceARN=ns["Arn"])["Tags"])))
    ecs = boto3.client("ecs", region_name=region)
    clusters = _all(ecs, "list_clusters", "clusterArns")
    for cluster in ecs.describe_clusters(clusters=clusters, include=["TAGS"])["clusters"] if clusters else []:
        if cluster["status"] == "ACTIVE":
            found.append(("Cluster", _tags(cluster.get("tags"))))
    for cluster in clusters:
        arns = _all(ecs, "list_services", "serviceArns", cluster=cluster)
        for start in range(0, len(arns), 10):
            for service in ecs.describe_services(cluster=cluster, services=arns[start:start + 10], include=["TAGS"])["services"]:
                if service["status"] != "INACTIVE":
                    found.append(("Service", _tags(service.get("tags"))))
    # Deregistered (INACTIVE) revisions still carry their tags: destroy must delete those too.
    for status in ("ACTIVE", "INACTIVE"):
        for arn in _all(ecs, "list_task_definitions", "taskDefinitionArns", status=status):
            found.append(("TaskDefinition", _tags(ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]).get("tags"))))
    for provider in ecs.describe_capacity_providers(include=["TAGS"])["capacityProviders"]:
        found.append(("CapacityProvider", _tags(provider.get("tags"))))
    for group in _all(boto3.client("autoscaling", region_name=region), "describe_auto_scaling_groups", "AutoScalingGroups"):
        found.append(("AutoScalingGroup", _tags(group.get("Tags"))))
    search = boto3.client("opensearch", region_name=region)
    for name in search.list_domain_names()["DomainNames"]:
        domain = search.describe_domain(DomainName=name["DomainName"])["DomainStatus"]
        if not domain.get("Deleted"):
            found.append(("Domain", _tags(search.list_tags(ARN=domain["ARN"])["TagList"])))
    amp = boto3.client("amp", region_name=region)
    for ws in _all(amp, "list_workspaces", "workspaces"):
        if ws["status"]["statusCode"] != "DELETING":
            found.append(("Workspace", _tags(ws.get("tags"))))
            for namespace in _all(amp, "list_rule_groups_namespaces", "ruleGroupsNamespaces", workspaceId=ws["workspaceId"]):
                found.append(("RuleGroupsNamespace", _tags(namespace.get("tags"))))
    sns = boto3.client("sns", region_name=region)
    for topic in _all(sns, "list_topics", "Topics"):
        found.append(("Topic", _tags(sns.list_tags_for_resource(ResourceArn=topic["TopicArn"])["Tags"])))
    kms = boto3.client("kms", region_name=region)
    for key in _all(kms, "list_keys", "Keys"):
        if kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] != "PendingDeletion":
            tags = kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]
            found.append(("KmsKey", {t["TagKey"]: t["TagValue"] for t in tags}))
    dsql = boto3.client("dsql", region_name=region)
    for summary in _all(dsql, "list_clusters", "clusters"):
        cluster = dsql.get_cluster(identifier=summary["identifier"])
        if cluster["status"] not in ("DELETING", "DELETED"):
            found.append(("DsqlCluster", _tags(cluster.get("tags"))))
    ssm = boto3.client("ssm", region_name=region)
    # Only this project's path: once the AMI lookup has loaded AWS's public parameters (/aws/service/...),
    # an unfiltered DescribeParameters walks thousands of them in moto (over a minute).
    for parameter in _all(ssm, "describe_parameters", "Parameters",
                          ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [f"/{project}/"]}]):
        found.append(("Parameter", _tags(ssm.list_tags_for_resource(
            ResourceType="Parameter", ResourceId=parameter["Name"])["TagList"])))
    ecr = boto3.client("ecr", region_name=region)
    for repository in _all(ecr, "describe_repositories", "repositories"):
        found.append(("Repository", _tags(ecr.list_tags_for_resource(resourceArn=repository["repositoryArn"])["tags"])))
    return sorted(
        (kind, tags_or_key if isinstance(tags_or_key, str) else tags_or_key.get("ProvisionKey", "?"))
        for kind, tags_or_key in found
        if isinstance(tags_or_key, str) or tags_or_key.get("Project") == project
    )


# The real Temporal server and Prometheus (tests/real_peers.py), registered here once: a session fixture
# imported into each test module that uses it would be a fixture of each module, started once per module.
pytest_plugins = ["tests.real_peers"]
