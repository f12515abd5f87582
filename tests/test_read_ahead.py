"""Reads ahead (Engine.read_ahead): those that fail are reported as notes, not swallowed, and none outlives its run."""
from __future__ import annotations

import threading
import time

from botocore.exceptions import ClientError
from rich.console import Console

from provisioner.engine import Engine
from provisioner.errors import BadInput
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


def test_no_read_ahead_outlives_an_apply_that_preflight_refuses(endpoint, tmp_path):
    """A refused run returns only once its reads ahead are done: none may describe anything after the command
    (and its lock on the state) has ended."""
    described = threading.Event()

    def slow_read(**_):
        time.sleep(0.2)  # the read is still on the wire when preflight refuses
        described.set()

    class Refused(Network):
        def preflight(self, ctx):
            raise BadInput("refused before any change")

    store = StateStore(tmp_path / "state.json", PROJECT, REGION)
    with store.locked("up"), Reporter(Console(stderr=True), quiet=True) as reporter:
        store.put("network", "vpc", "vpc-0123456789abcdef0", kind="vpc")
        engine = Engine([Refused()], make_config(), new_aws(("before-call.ec2.DescribeVpcs", slow_read)), store,
                        reporter)
        result = engine.apply()
        assert not result.ok
        assert described.is_set()
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]
