"""Idempotency, crash safety, lost state, injected faults, destroy completeness and locking."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries import bucket

from provisioner import operations
from provisioner.aws.session import is_bookkeeping
from provisioner.state import StateLocked, StateStore
from tests.conftest import (
    KEPT_DATA,
    PROJECT,
    REGION,
    CallLog,
    build_stack,
    config_text,
    make_config,
    new_aws,
    reset_account,
    unlock_killed_run,
    up_ok,
    world,
)


class InjectedCrash(Exception):
    """Stands for the process dying right after AWS acted but before the tool heard back."""


def assert_same_world(actual: list, expected: list, context: str) -> None:
    twins = Counter(actual) - Counter(expected)
    missing = Counter(expected) - Counter(actual)
    assert not twins and not missing, f"{context}: extra {dict(twins)}, missing {dict(missing)}"


def state_keys(path) -> dict[str, list[str]]:
    data = json.loads(path.read_text())
    return {step: sorted(records) for step, records in data["resources"].items()}


@pytest.fixture(scope="module")
def second_up(moto_endpoint, tmp_path_factory) -> dict:
    """A stack built by `up`, then a second `up` over it, with every call it made and the state before and after:
    the tests below read these records."""
    config, state_path, _ = build_stack(moto_endpoint, tmp_path_factory)
    log, before = CallLog(), state_path.read_bytes()
    result = up_ok(config, new_aws(("before-call", log)), state_path)
    return {"log": log, "changes": result.changes, "before": before, "after": state_path.read_bytes()}


def test_second_up_makes_no_mutating_call_and_leaves_state_unchanged(second_up):
    assert second_up["log"].mutating == []
    assert second_up["changes"] == []
    assert second_up["after"] == second_up["before"]


# Issue 12's target: a no-op up of the whole stack reads each kind of resource about once (the floor is one
# call per kind, ~25), sharing answers between steps; at 150 ms a call that is about 3 s. Issue 20 kept it at 40,
# and the alerts and backup steps (issues 22, 23) fit in it: 40 calls, one each unless said.
# - Described once per kind, tags included where the describe has them: EC2 11 (VPC, its two DNS attributes,
#   subnets, internet gateway, route tables, NAT gateway, its address, endpoints, security groups, launch
#   templates), ECS 5 (cluster, capacity providers, services, task definitions, the trunking setting placement
#   counts on), IAM 2 (every role with its policies; the instance profile), ECR 3 (repositories, and the lifecycle
#   policy of each: no call reads two), Auto Scaling, logs, DSQL, OpenSearch, Cloud Map, Secrets Manager, STS 1 each.
# - The Prometheus workspace (1); the alerts step: the KMS key (its state and its policy: 2), the topic's
#   attributes, the rules namespace and the alert manager definition (1 each); the backup step: the opt-in check,
#   the vault, the plan and the selection (by its recorded SelectionId) (1 each).
# - SSM 1: the recorded parameters with the ECS-optimized AMI's public parameter, in one GetParameters.
# - Tagging 1: the tags of every recorded resource whose describe carries none (log groups, repositories,
#   parameters, task definitions, the KMS key, topic, vault, plan, domain and namespace), in one GetResources.
# Not asked again: what the state records as checked (instance types' facts and zones, a launch template's
# version, a task definition's revision, by digest), DSQL's availability in the region once a cluster is
# recorded, and the security group rules' IDs unless a rule is to be revoked.
NO_OP_CALL_BUDGET = 40


def test_a_second_up_reads_the_whole_stack_in_at_most_40_calls(second_up):
    log = second_up["log"]
    assert log.mutating == []
    assert len(log.calls) <= NO_OP_CALL_BUDGET, Counter(log.calls).most_common()


CREATES = ("Create", "Allocate", "Register", "Run")


def is_create(operation: str) -> bool:
    # PutParameter without Overwrite is how an SSM parameter is created (the tool overwrites only to update).
    return operation.startswith(CREATES) or operation == "PutParameter"


def creates(log: CallLog) -> list[str]:
    return [c for c in log.mutating if is_create(c.split(".")[-1])]


def test_up_interrupted_after_each_resource_converges_without_twins(endpoint, tmp_path):
    """The crash lands after AWS created a resource and before the tool recorded it: the worst moment.

    Every create call of the whole build is followed by a crash: each run crashes right after every
    create it makes (one per step, as a step stops at its crash), and the next run must adopt what
    the crashed ones made, by tags or name, then crash after its own next creates, until the build is
    complete. Any twin or orphan shows in the final comparison with an uninterrupted build.
    """
    log = CallLog()
    up_ok(make_config(project="base"), new_aws(("before-call", log)), tmp_path / "baseline.json")
    baseline_world = world("base")
    baseline_keys = state_keys(tmp_path / "baseline.json")
    total = len(creates(log))
    assert total >= len(baseline_world)
    reset_account(endpoint)  # the account-wide service-linked roles too: the interrupted build makes them again

    config = make_config(project="crashy")
    path = tmp_path / "crashy.json"
    crashed: list[str] = []

    def crash(event_name, context=None, **_):
        # The stack's creates: the project lock's own record is the tool's bookkeeping, not the stack.
        if is_create(event_name.rsplit(".", 1)[-1]) and not (context and is_bookkeeping(context)):
            crashed.append(event_name)
            raise InjectedCrash(event_name)

    assert creates(log)

    runs = 0
    while True:
        runs += 1
        assert runs <= total + 1, f"no convergence after {runs} interrupted runs"
        if operations.up(config, new_aws(("after-call", crash)), path, quiet=True).ok:
            break
    # Exactly the creates of an uninterrupted build, each once: every one was followed by a crash.
    assert Counter(name.split(".", 1)[1] for name in crashed) == Counter(creates(log))
    up_ok(config, new_aws(), path)
    assert_same_world(world("crashy"), baseline_world, f"{len(crashed)} crashes over {runs} runs")
    assert state_keys(path) == baseline_keys


def test_up_killed_with_sigkill_converges_on_rerun(endpoint, config, tmp_path):
    baseline_path = tmp_path / "baseline.json"
    up_ok(config, new_aws(), baseline_path)
    baseline_world = world()
    total = sum(len(v) for v in state_keys(baseline_path).values())

    # Early, midway and late; not among the last few, which the run can record, side by side, in the
    # moment between this loop reading the state and the kill landing.
    for kill_at in (3, total // 2, total - 10):
        reset_account(endpoint)
        path = tmp_path / f"killed-{kill_at}.json"
        config_file = tmp_path / "provision.toml"
        config_file.write_text(config_text())
        process = subprocess.Popen(
            [sys.executable, "-m", "provisioner", "up", "--config", str(config_file), "--state", str(path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "CI": "1"},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            recorded = sum(len(v) for v in state_keys(path).values()) if path.exists() else 0
            if recorded >= kill_at or process.poll() is not None:
                break
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        assert sum(len(v) for v in state_keys(path).values()) < total

        unlock_killed_run(config, path)  # a SIGKILL leaves the project lock behind, for the user to release
        up_ok(config, new_aws(), path)
        assert_same_world(world(), baseline_world, f"killed at {kill_at} recorded resources")


def test_lost_state_is_rebuilt_from_tags_without_duplicates(aws, config, state_path):
    up_ok(config, aws, state_path)
    before_world = world()
    before = json.loads(state_path.read_text())["resources"]
    state_path.unlink()
    log = CallLog()
    up_ok(config, new_aws(("before-call", log)), state_path)
    assert log.mutating == []
    assert world() == before_world
    assert json.loads(state_path.read_text())["resources"] == before


class _Body:
    def __init__(self, payload: bytes):
        self.payload = payload

    def stream(self, **_):
        yield self.payload


THROTTLED = (
    b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
    b"</Error></Errors><RequestID>fault</RequestID></Response>"
)


def test_up_converges_under_injected_throttling_and_5xx(aws, config, state_path, monkeypatch):
    # Keep botocore's backoff short so the test measures behaviour, not sleeping.
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, context: 0.01)
    # Adaptive mode's client-side rate limiter (botocore/retries/adaptive.py) slows to 0.5 sends a second
    # after a throttle; its token bucket runs on a clock 100 times fast here and waits 1/100 as long, so the
    # limiter still engages and orders the sends, in a minute of its time but not of the test's.
    monkeypatch.setattr("botocore.retries.bucket.Clock.current_time", lambda self: time.monotonic() * 100)
    unscaled_wait = bucket.TokenBucket._sleep_amount
    monkeypatch.setattr(bucket.TokenBucket, "_sleep_amount", lambda self, amount: unscaled_wait(self, amount) / 100)
    chance = random.Random(7)
    injected = []

    def fault(request, **_):
        roll = chance.random()
        if roll < 0.15:
            injected.append("throttle")
            return AWSResponse(request.url, 503, {}, _Body(THROTTLED))
        if roll < 0.25:
            injected.append("5xx")
            return AWSResponse(request.url, 500, {}, _Body(b""))
        return None

    log = CallLog()
    up_ok(config, new_aws(("before-send.ec2", fault), ("before-call", log)), state_path)
    assert "throttle" in injected and "5xx" in injected
    clean = world()
    assert len(clean) == len(set(clean))
    assert up_ok(config, new_aws(), state_path).changes == []


def test_destroy_with_delete_data_removes_everything_tagged_and_empties_state(aws, config, state_path):
    up_ok(config, aws, state_path)
    result = operations.destroy(config, new_aws(), state_path, delete_data=True, quiet=True)
    assert result.ok, result.errors
    assert world() == []
    assert json.loads(state_path.read_text())["resources"] == {}


def test_destroy_keeps_only_the_data_and_says_how_to_delete_it(aws, config, state_path):
    up_ok(config, aws, state_path)
    result = operations.destroy(config, new_aws(), state_path, quiet=True)
    assert result.ok, result.errors
    assert world() == KEPT_DATA
    assert json.loads(state_path.read_text())["resources"] == {}
    assert any("Kept the Aurora DSQL cluster" in n and "destroy --delete-data" in n for n in result.notes)


def test_destroy_without_state_finds_resources_by_tags(aws, config, state_path):
    up_ok(config, aws, state_path)
    state_path.unlink()
    assert operations.destroy(config, new_aws(), state_path, delete_data=True, quiet=True).ok
    assert world() == []


def test_destroy_twice_is_a_no_op(aws, config, state_path):
    up_ok(config, aws, state_path)
    assert operations.destroy(config, aws, state_path, quiet=True).ok
    log = CallLog()
    result = operations.destroy(config, new_aws(("before-call", log)), state_path, quiet=True)
    assert result.ok and result.changes == [] and log.mutating == []


def test_up_after_destroy_starts_a_new_lineage(aws, config, state_path):
    up_ok(config, aws, state_path)
    first = json.loads(state_path.read_text())["lineage"]
    operations.destroy(config, aws, state_path, quiet=True)
    up_ok(config, aws, state_path)
    assert json.loads(state_path.read_text())["lineage"] != first
    assert len(world()) == len(set(world()))


def test_second_run_on_locked_state_is_refused_and_names_the_holder(aws, config, state_path):
    holder = StateStore(state_path, PROJECT, REGION)
    with holder.locked("up"):
        log = CallLog()
        with pytest.raises(StateLocked, match=r"locked by 'provision up' \(pid \d+"):
            operations.up(config, new_aws(("before-call", log)), state_path, quiet=True)
        # Only who these credentials are (the state belongs to one account): nothing else was read or done.
        assert log.calls == ["sts.GetCallerIdentity"]
    assert up_ok(config, aws, state_path).ok


def test_a_lost_answer_to_every_create_of_a_full_up_makes_no_twin(endpoint, config, tmp_path, monkeypatch):
    """Every create call of the run loses its first answer after the emulator acted, as a timeout or a
    reset connection does in AWS. The same run must finish with exactly one of everything."""
    from provisioner.aws.session import CREATE_PREFIXES
    from tests.lossy_proxy import LossyProxy, mark_creates

    up_ok(make_config(project="base"), new_aws(), tmp_path / "baseline.json")
    expected = [(kind, key) for kind, key in world("base")]
    with LossyProxy(endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        # PutParameter creates SSM parameters: a resend after a lost answer gets ParameterAlreadyExists.
        up_ok(config, new_aws(("before-send", mark_creates((*CREATE_PREFIXES, "PutParameter")))), tmp_path / "state.json")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    assert len(proxy.lost) >= len(expected), proxy.lost
    assert_same_world(world(), expected, "a lost answer to every create")
    assert up_ok(config, new_aws(), tmp_path / "state.json").changes == []
