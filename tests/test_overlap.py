"""Speed by overlap, and Ctrl-C: a slow NAT gateway or OpenSearch domain is awaited only by the step
that needs it, and an interrupted wait stops at once, keeps what was created, and resumes on the next run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from provisioner.emulator.patches import NAT_DELAY_SETTING, OPENSEARCH_DELAY_SETTING
from tests.conftest import config_text, make_config, new_aws, own_emulator, up_ok, world

NAT_SECONDS = 5
OPENSEARCH_SECONDS = 4
LONG_NAT_SECONDS = 15


@pytest.fixture
def slow_nat(moto_endpoint, tmp_path, monkeypatch, request):
    """An emulator of its own whose NAT gateways stay pending a while (NAT_SECONDS unless given), as in AWS."""
    delay = getattr(request, "param", NAT_SECONDS)
    with own_emulator(tmp_path / "slow-emulator", monkeypatch, **{NAT_DELAY_SETTING: str(delay)}) as endpoint:
        yield endpoint


class CallTimes:
    """When each AWS operation was sent or answered (registered on before-call or after-call), through
    botocore's own event hooks."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def __call__(self, event_name, **_) -> None:
        self.calls.append((time.monotonic(), event_name.rsplit(".", 1)[-1]))

    def first(self, operation: str) -> float:
        return min(t for t, op in self.calls if op == operation)

    def last(self, operation: str) -> float:
        return max(t for t, op in self.calls if op == operation)


def test_endpoints_are_built_while_the_nat_gateway_is_still_pending(slow_nat, tmp_path):
    times, sent = CallTimes(), CallTimes()
    up_ok(make_config(), new_aws(("after-call", times), ("before-call", sent)), tmp_path / "state.json")
    nat_route = times.last("CreateRoute")
    # The emulator starts the NAT gateway's clock while it handles the create: after the request left this
    # client (its before-call), however long the answer then takes on a loaded machine.
    assert nat_route - sent.first("CreateNatGateway") >= NAT_SECONDS
    # Everything else went on while the NAT gateway was pending.
    assert times.last("CreateVpcEndpoint") < nat_route
    assert times.last("CreateAutoScalingGroup") < nat_route


def test_only_the_task_definitions_wait_for_the_opensearch_domain(moto_endpoint, tmp_path, monkeypatch):
    times, sent, search = CallTimes(), CallTimes(), CallTimes()
    with own_emulator(tmp_path / "slow-search", monkeypatch, **{OPENSEARCH_DELAY_SETTING: str(OPENSEARCH_SECONDS)}):
        up_ok(make_config(), new_aws(("after-call", times), ("before-call", sent), ("before-call.opensearch", search)),
              tmp_path / "state.json")
    registered = times.first("RegisterTaskDefinition")
    # The domain's clock starts while the emulator handles the create: after the request was sent.
    assert registered - sent.first("CreateDomain") >= OPENSEARCH_SECONDS
    # The rest of the stack went on while the domain was coming up.
    for operation in ("CreateCapacityProvider", "PutClusterCapacityProviders", "CreateVpcEndpoint", "CreateRoute"):
        assert times.last(operation) < registered, operation
    # Each poll asks for the domain's endpoint alone: its tags are not read again with every poll.
    polls, tag_reads = (sum(op == name for _, op in search.calls) for name in ("DescribeDomain", "ListTags"))
    assert polls > 3 and tag_reads <= 1, (polls, tag_reads)


@pytest.mark.parametrize("slow_nat", [LONG_NAT_SECONDS], indirect=True)
def test_ctrl_c_during_a_wait_stops_keeps_the_state_and_resumes(slow_nat, tmp_path):
    config_file = tmp_path / "provision.toml"
    config_file.write_text(config_text())
    state_path = tmp_path / "state.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "provisioner", "up", "--config", str(config_file), "--state", str(state_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "CI": "1"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        recorded = json.loads(state_path.read_text())["resources"] if state_path.exists() else {}
        if "nat" in recorded.get("network", {}):
            break
        time.sleep(0.01)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "run the same command again" in stderr
    assert time.monotonic() - started < LONG_NAT_SECONDS / 3, "Ctrl-C waited for the NAT gateway"
    assert "nat" in json.loads(state_path.read_text())["resources"]["network"]

    up_ok(make_config(), new_aws(), state_path)  # waits out the NAT gateway, then finishes
    created = world()
    assert len(created) == len(set(created))
