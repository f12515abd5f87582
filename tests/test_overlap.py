"""Speed by overlap: a slow NAT gateway is awaited only by the step that needs it."""
from __future__ import annotations

import socket
import time

from provisioner import app, emulator, waiter
from provisioner.moto_patches import NAT_DELAY_SETTING
from tests.conftest import make_config, new_aws, reset_account

NAT_SECONDS = 3


def test_endpoints_are_built_while_the_nat_gateway_is_still_pending(moto_endpoint, tmp_path, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(NAT_DELAY_SETTING, str(NAT_SECONDS))
    info = emulator.start(tmp_path / "slow-emulator", port)
    monkeypatch.setenv("AWS_ENDPOINT_URL", info["endpoint"])
    waiter.set_backoff(waiter.Backoff(initial=0.2, maximum=0.5, jitter=0))
    calls: list[tuple[float, str]] = []

    def record(event_name, **_):
        calls.append((time.monotonic(), event_name.rsplit(".", 1)[-1]))

    try:
        reset_account(info["endpoint"])
        result = app.up(make_config(), new_aws(("after-call", record)), tmp_path / "state.json", quiet=True)
    finally:
        waiter.set_backoff(waiter.DEFAULT_BACKOFF)
        emulator.stop(tmp_path / "slow-emulator")
    assert result.ok, result.errors

    def when(operation, last=False):
        times = [t for t, op in calls if op == operation]
        return times[-1] if last else times[0]

    nat_created = when("CreateNatGateway")
    nat_route = when("CreateRoute", last=True)
    assert nat_route - nat_created >= NAT_SECONDS
    # Everything else went on while the NAT gateway was pending.
    assert when("CreateVpcEndpoint", last=True) < nat_route
    assert when("CreateAutoScalingGroup", last=True) < nat_route
