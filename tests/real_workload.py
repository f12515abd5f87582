"""An SDK workload for a real Temporal server, shaped like production traffic rather than a benchmark
(issue 22): activities (one retried), timers, signals, queries, continue-as-new, a child workflow, a
workflow task that fails once, a failed workflow, a cancel, a terminate, a timeout, and two requests the
server refuses (a workflow started twice, one that never was). It is bounded in
time and kept light (a few workflows a second), for 2 cores shared with the rest of the suite.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

TASK_QUEUE = "provision-real-workload"
SHORT = timedelta(seconds=10)


@activity.defn
async def greet(name: str) -> str:
    return f"hello {name}"


@activity.defn
async def flaky(name: str) -> str:
    """Fails its first two attempts: the server schedules retries (activity retry timers)."""
    if activity.info().attempt < 3:
        raise RuntimeError(f"attempt {activity.info().attempt} of {name} fails on purpose")
    return name


@workflow.defn
class Order:
    """Activities (one retried) and a timer; answers a query; waits briefly for a signal."""

    def __init__(self) -> None:
        self.approved = False
        self.stage = "new"

    @workflow.signal
    def approve(self) -> None:
        self.approved = True

    @workflow.query
    def status(self) -> str:
        return self.stage

    @workflow.run
    async def run(self, name: str) -> str:
        self.stage = "greeting"
        await workflow.execute_activity(greet, name, start_to_close_timeout=SHORT)
        await workflow.execute_activity(flaky, name, start_to_close_timeout=SHORT,
                                        retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200),
                                                                 backoff_coefficient=1.0))
        await workflow.sleep(timedelta(milliseconds=500))
        self.stage = "waiting"
        try:
            await workflow.wait_condition(lambda: self.approved, timeout=timedelta(seconds=5))
        except asyncio.TimeoutError:  # a child is never signalled: it goes on unapproved
            self.stage = "unapproved"
            return name
        self.stage = "done"
        return name


@workflow.defn
class Rollover:
    """Continues as new a few times (new runs of one workflow), then starts a child and waits for it."""

    @workflow.run
    async def run(self, left: int) -> str:
        await workflow.sleep(timedelta(milliseconds=200))
        if left > 0:
            workflow.continue_as_new(left - 1)
        return await workflow.execute_child_workflow(Order.run, "child", id=f"{workflow.info().workflow_id}-child",
                                                     execution_timeout=timedelta(seconds=30))


@workflow.defn
class Idle:
    """Waits far longer than the workload: ends by cancel, terminate or its execution timeout."""

    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(timedelta(hours=1))


@workflow.defn
class Rejected:
    """Fails as a workflow (an application error): workflow_failed."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(greet, "rejected", start_to_close_timeout=SHORT)
        raise ApplicationError("rejected on purpose", non_retryable=True)


FAILED_ONCE: set[str] = set()


@workflow.defn(sandboxed=False)  # unsandboxed: the module's set survives the retried workflow task
class Stumble:
    """Its first workflow task fails (a bug the worker reports: RespondWorkflowTaskFailed); the server
    retries the task and the workflow completes."""

    @workflow.run
    async def run(self) -> str:
        if workflow.info().workflow_id not in FAILED_ONCE:
            FAILED_ONCE.add(workflow.info().workflow_id)
            raise RuntimeError("a workflow task that fails once, on purpose")
        return "recovered"


WORKFLOWS = [Order, Rollover, Idle, Rejected, Stumble]
ACTIVITIES = [greet, flaky]


@dataclass
class Outcome:
    started: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    terminated: int = 0
    timed_out: int = 0
    signals: int = 0
    queries: int = 0
    refused: int = 0  # requests the server refused as it should (already started, not found)
    errors: list[str] = field(default_factory=list)


async def _order(client: Client, outcome: Outcome, tag: str) -> None:
    handle = await client.start_workflow(Order.run, tag, id=f"order-{tag}", task_queue=TASK_QUEUE,
                                         execution_timeout=timedelta(seconds=60))
    outcome.started += 1
    await asyncio.sleep(0.5)
    await handle.query(Order.status)
    outcome.queries += 1
    await handle.signal(Order.approve)
    outcome.signals += 1
    await handle.result()
    outcome.completed += 1


async def _ending(client: Client, outcome: Outcome, tag: str) -> None:
    """One workflow each way that is not a success: cancelled, terminated, timed out, failed."""
    cancel = await client.start_workflow(Idle.run, id=f"cancel-{tag}", task_queue=TASK_QUEUE)
    terminate = await client.start_workflow(Idle.run, id=f"terminate-{tag}", task_queue=TASK_QUEUE)
    timeout = await client.start_workflow(Idle.run, id=f"timeout-{tag}", task_queue=TASK_QUEUE,
                                          execution_timeout=timedelta(seconds=2))
    rejected = await client.start_workflow(Rejected.run, id=f"rejected-{tag}", task_queue=TASK_QUEUE)
    outcome.started += 4
    await asyncio.sleep(0.5)
    await cancel.cancel()
    outcome.cancelled += 1
    await terminate.terminate("terminated on purpose")
    outcome.terminated += 1
    for handle, counter in ((timeout, "timed_out"), (rejected, "failed")):
        try:
            await handle.result()
        except WorkflowFailureError:
            setattr(outcome, counter, getattr(outcome, counter) + 1)


async def _rollover(client: Client, outcome: Outcome, tag: str) -> None:
    await client.execute_workflow(Rollover.run, 3, id=f"rollover-{tag}", task_queue=TASK_QUEUE,
                                  execution_timeout=timedelta(seconds=60))
    outcome.started += 1
    outcome.completed += 1


async def _stumble(client: Client, outcome: Outcome, tag: str) -> None:
    await client.execute_workflow(Stumble.run, id=f"stumble-{tag}", task_queue=TASK_QUEUE,
                                  execution_timeout=timedelta(seconds=60))
    outcome.started += 1
    outcome.completed += 1


async def _refusals(client: Client, outcome: Outcome, tag: str) -> None:
    """The errors a healthy cluster answers every day: a workflow started twice, a workflow that never was."""
    first = await client.start_workflow(Idle.run, id=f"twice-{tag}", task_queue=TASK_QUEUE)
    outcome.started += 1
    try:
        await client.start_workflow(Idle.run, id=f"twice-{tag}", task_queue=TASK_QUEUE)
    except WorkflowAlreadyStartedError:
        outcome.refused += 1
    try:
        await client.get_workflow_handle(f"never-started-{tag}").describe()
    except RPCError as refused:
        if refused.status == RPCStatusCode.NOT_FOUND:
            outcome.refused += 1
    await first.terminate("the second start was the point")
    outcome.terminated += 1


async def run(address: str, seconds: float, rate: float = 2.0) -> Outcome:
    """Start about `rate` business workflows a second for `seconds`, then wait (bounded) for them to end.
    The SDK's warnings about the failures made on purpose are silenced."""
    sdk_log = logging.getLogger("temporalio")
    level = sdk_log.level
    sdk_log.setLevel(logging.CRITICAL)
    try:
        return await _run(address, seconds, rate)
    finally:
        sdk_log.setLevel(level)


async def _run(address: str, seconds: float, rate: float) -> Outcome:
    client = await Client.connect(address)
    outcome = Outcome()
    async with Worker(client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=ACTIVITIES,
                      max_concurrent_activities=20, max_concurrent_workflow_tasks=20):
        run_id = uuid.uuid4().hex[:6]
        pending: list[asyncio.Task] = [asyncio.create_task(_refusals(client, outcome, run_id))]
        deadline = time.monotonic() + seconds
        tick = 0
        while time.monotonic() < deadline:
            tag = f"{run_id}-{tick}"
            pending.append(asyncio.create_task(_order(client, outcome, tag)))
            if tick % 10 == 0:
                pending.append(asyncio.create_task(_ending(client, outcome, tag)))
                pending.append(asyncio.create_task(_rollover(client, outcome, tag)))
            if tick % 15 == 0:
                pending.append(asyncio.create_task(_stumble(client, outcome, tag)))
            tick += 1
            await asyncio.sleep(1 / rate)
        done, late = await asyncio.wait(pending, timeout=30)
        for task in late:
            task.cancel()
        outcome.errors = [repr(t.exception()) for t in done if t.exception()] + [f"{len(late)} still running"] * bool(late)
    return outcome
