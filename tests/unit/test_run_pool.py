"""One bounded pool per run (provisioner/aws/run_pool.py): however side_by_side nests inside steps and inside
itself, a run never runs more actions at once than its pool holds, on no more threads, and never deadlocks."""
from __future__ import annotations

import threading
from concurrent.futures import wait

import pytest
from botocore.exceptions import ClientError
from rich.console import Console

from provisioner.aws.run_pool import MAX_CONCURRENT_CALLS, run_pool, side_by_side
from provisioner.engine import Engine
from provisioner.progress import Reporter
from provisioner.state import StateStore
from provisioner.steps.network import Network
from tests.conftest import PROJECT, REGION, make_config, new_aws

# Long enough for a regression that deadlocks to fail rather than hang; these tests take well under a second.
DEADLINE = 30


class Wire:
    """Stands in for the AWS calls of actions: counts those running at once, and the threads running them.
    Each call stays on briefly, or until one more than `size` is on (a pool that lets one more run shows
    it at once)."""

    def __init__(self, size: int):
        self.size = size
        self.on = 0
        self.peak = 0
        self.calls = 0
        self.threads: set[int] = set()
        self.peak_threads = 0
        self.changed = threading.Condition()

    def call(self, *_) -> None:
        with self.changed:
            self.on += 1
            self.calls += 1
            self.peak = max(self.peak, self.on)
            self.threads.add(threading.get_ident())
            self.peak_threads = max(self.peak_threads, threading.active_count())
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.on > self.size, timeout=0.01)
            self.on -= 1


def within_deadline(work) -> object:
    """`work()` on a thread of its own, failing the test if it has not finished by DEADLINE."""
    outcome: list = []
    runner = threading.Thread(target=lambda: outcome.append(work()), daemon=True)
    runner.start()
    runner.join(DEADLINE)
    assert not runner.is_alive(), f"still running after {DEADLINE} s: deadlocked"
    return outcome[0]


def nested(wire: Wire, fanout: int, depth: int):
    """An action that calls AWS, then does `fanout` such actions side by side, each nesting `depth - 1` more."""
    def action(_=None) -> int:
        wire.call()
        if depth == 0:
            return 1
        return 1 + sum(side_by_side(range(fanout), nested(wire, fanout, depth - 1)))
    return action


def test_a_run_never_runs_more_actions_at_once_than_its_pool_however_side_by_side_nests():
    wire = Wire(MAX_CONCURRENT_CALLS)
    threads_before = threading.active_count()

    def run() -> int:
        with run_pool():
            return sum(side_by_side(range(2 * MAX_CONCURRENT_CALLS), nested(wire, MAX_CONCURRENT_CALLS, 1)))

    assert within_deadline(run) == wire.calls == 2 * MAX_CONCURRENT_CALLS * (1 + MAX_CONCURRENT_CALLS)
    assert wire.peak == MAX_CONCURRENT_CALLS  # side by side, up to the bound and no further
    # The pool's threads and the caller's; one more here for within_deadline's.
    assert len(wire.threads) <= MAX_CONCURRENT_CALLS + 1
    assert wire.peak_threads <= threads_before + 1 + MAX_CONCURRENT_CALLS


def test_steps_and_their_side_by_side_share_the_bound():
    """The engine's steps are actions of the pool too (pool.submit); what each step runs side by side
    counts against the same bound."""
    wire = Wire(MAX_CONCURRENT_CALLS)

    def run() -> None:
        with run_pool() as pool:
            steps = [pool.submit(nested(wire, 4, 2)) for _ in range(2 * MAX_CONCURRENT_CALLS)]
            wait(steps)
            assert all(step.result() == 1 + 4 + 16 for step in steps)

    within_deadline(run)
    assert wire.peak == MAX_CONCURRENT_CALLS


@pytest.mark.parametrize("size", [1, 2, 3])
def test_side_by_side_nested_deeper_than_the_pool_is_wide_finishes(size):
    """The caller holds a slot while its items nest: a thread of the pool that took one of those items
    without a slot would wait for the caller's, and the caller for it."""
    wire = Wire(size)

    def run() -> list[int]:
        with run_pool(size):
            return side_by_side(range(2), nested(wire, 2, size + 2))

    tree = 2 ** (size + 3) - 1  # the calls of one action nested size + 2 deep, two at each level
    assert within_deadline(run) == [tree, tree]
    assert wire.peak <= size


@pytest.mark.parametrize("size", [1, 2, 3])
def test_side_by_side_nested_deeper_than_a_saturated_pool_finishes(size):
    """Every thread of the pool busy with an item that nests side_by_side, deeper than the pool is wide: the
    callers run what no thread is free for."""
    wire = Wire(size)

    def run() -> list[int]:
        with run_pool(size) as pool:
            steps = [pool.submit(nested(wire, 2, size + 2)) for _ in range(size)]
            return side_by_side(range(2), nested(wire, 2, size + 2)) + [step.result() for step in steps]

    tree = 2 ** (size + 3) - 1  # the calls of one action nested size + 2 deep, two at each level
    assert within_deadline(run) == [tree] * (2 + size)
    assert wire.calls == tree * (2 + size)
    assert wire.peak <= size


def test_results_come_in_item_order_whatever_order_the_actions_finish_in():
    def square(item: int) -> int:
        return item * item

    assert within_deadline(lambda: side_by_side(range(50), square)) == [item * item for item in range(50)]


def test_every_action_runs_to_its_end_then_the_first_failure_in_item_order_is_raised():
    ran: list[int] = []
    lock = threading.Lock()

    def action(item: int) -> int:
        with lock:
            ran.append(item)
        if item in (3, 7):
            raise ValueError(f"item {item} failed")
        return item

    def run() -> BaseException:
        with pytest.raises(ValueError) as failed:
            side_by_side(range(3 * MAX_CONCURRENT_CALLS), action)
        return failed.value

    assert str(within_deadline(run)) == "item 3 failed"
    assert sorted(ran) == list(range(3 * MAX_CONCURRENT_CALLS))


def test_no_thread_of_a_run_outlives_it():
    before = set(threading.enumerate())
    with run_pool():
        side_by_side(range(MAX_CONCURRENT_CALLS), lambda item: item)
        pool_threads = set(threading.enumerate()) - before
        assert pool_threads
    assert not pool_threads & set(threading.enumerate())


def test_side_by_side_outside_a_run_is_bounded_too():
    """A command that opens no run (status, a command's own lookups) gets a pool for the call and what nests in it."""
    wire = Wire(MAX_CONCURRENT_CALLS)
    within_deadline(lambda: side_by_side(range(2 * MAX_CONCURRENT_CALLS), nested(wire, MAX_CONCURRENT_CALLS, 1)))
    assert wire.peak == MAX_CONCURRENT_CALLS


def test_a_read_ahead_that_fails_becomes_a_note(tmp_path):
    def deny(**_):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "DescribeVpcs")

    store = StateStore(tmp_path / "state.json", PROJECT, REGION)
    with store.locked("up"), Reporter(Console(stderr=True), quiet=True) as reporter:
        store.put("network", "vpc", "vpc-0123456789abcdef0", kind="vpc")
        engine = Engine([Network()], make_config(), new_aws(("before-call.ec2.DescribeVpcs", deny)), store, reporter)
        with engine.run():
            engine.read_ahead().result(timeout=DEADLINE)
    assert engine.notes == ["Reading ahead, describing VPC vpc-0123456789abcdef0 failed (Failed to describe VPC "
                            "vpc-0123456789abcdef0: AccessDenied: not allowed); the step that needed it asked again."]
