"""Test harness: one embedded moto server for the session, reset before every test.

Tests drive the real tool against it; what they assert is read back from the
emulator, never from hand-made fakes of boto3.
"""
from __future__ import annotations

import logging
import urllib.request
from pathlib import Path

import boto3
import pytest

from provisioner import emulator
from provisioner.config import Config, parse_config
from provisioner.session import Aws, is_mutating

REGION = "eu-west-1"
PROJECT = "ptest"

emulator.configure_moto()
logging.getLogger("werkzeug").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def endpoint(moto_endpoint, monkeypatch):
    """A clean emulated account, and the standard AWS settings pointing at it."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request).close()
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    env = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, **emulator.CREDENTIALS}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return moto_endpoint


@pytest.fixture
def config() -> Config:
    return parse_config({"project": PROJECT})


@pytest.fixture
def state_path(tmp_path) -> Path:
    return tmp_path / "state.json"


class CallLog:
    """Every AWS call a session makes, by operation, through botocore's own event hooks."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, event_name: str, **_) -> None:
        self.calls.append(event_name.split(".", 1)[1])

    @property
    def mutating(self) -> list[str]:
        return [c for c in self.calls if is_mutating(c.split(".")[-1])]


def new_aws(*hooks: tuple[str, object]) -> Aws:
    session = boto3.Session(region_name=REGION)
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


def world(project: str = PROJECT) -> list[tuple[str, str]]:
    """Live resources tagged for the project, as sorted (type, logical key): a duplicate shows twice.

    Read with each service's own describe call (moto keeps tags of deleted resources in DescribeTags).
    """
    ec2 = boto3.client("ec2", region_name=REGION)
    found = []
    for call, key, id_field, filter_param in EC2_TYPES:
        items = getattr(ec2, call)(**{filter_param: [{"Name": "tag:Project", "Values": [project]}]})[key]
        for item in items:
            if str(item.get("State", "")).lower() in GONE:
                continue
            tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
            found.append((id_field.removesuffix("Id"), tags.get("ProvisionKey", "?")))
    return sorted(found)


@pytest.fixture(autouse=True)
def _no_real_aws_profile(monkeypatch, tmp_path):
    """Never read the developer's own AWS files."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
