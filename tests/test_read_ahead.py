"""Reads ahead (Engine.read_ahead): none outlives its run. (A failed one becomes a note: tests/unit/test_run_pool.py.)"""
from __future__ import annotations

import threading
import time

from rich.console import Console

from provisioner.engine import Engine
from provisioner.errors import BadInput
from provisioner.progress import Reporter
from provisioner.state import StateStore
from provisioner.steps.network import Network
from tests.conftest import PROJECT, REGION, make_config, new_aws


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
        threads_before = set(threading.enumerate())
        engine = Engine([Refused()], make_config(), new_aws(("before-call.ec2.DescribeVpcs", slow_read)), store,
                        reporter)
        result = engine.apply()
        assert not result.ok
        assert described.is_set()
        assert set(threading.enumerate()) <= threads_before  # the run's pool, reads ahead included, has ended
