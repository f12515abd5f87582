"""Reads ahead (Engine.read_ahead) that fail are reported as notes, not swallowed."""
from __future__ import annotations

from botocore.exceptions import ClientError
from rich.console import Console

from provisioner.engine import Engine
from provisioner.progress import Reporter
from provisioner.state import StateStore
from provisioner.steps.network import Network
from tests.conftest import PROJECT, REGION, make_config, new_aws


def test_a_read_ahead_that_fails_becomes_a_note(endpoint, tmp_path):
    def deny(**_):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "DescribeVpcs")

    store = StateStore(tmp_path / "state.json", PROJECT, REGION)
    with store.locked("up"), Reporter(Console(stderr=True), quiet=True) as reporter:
        store.put("network", "vpc", "vpc-0123456789abcdef0", kind="vpc")
        engine = Engine([Network()], make_config(), new_aws(("before-call.ec2.DescribeVpcs", deny)), store, reporter)
        engine.read_ahead().join()
    assert len(engine.notes) == 1
    assert "describing VPC vpc-0123456789abcdef0 failed" in engine.notes[0]
    assert "AccessDenied" in engine.notes[0]
