"""The tasks behind a name the operator commands take (`logs`, `exec`, `status`): a service of the stack
(history, matching, frontend, worker, ui, grafana, collector) or a schema task (schema-dsql,
schema-visibility), found in the cluster the state records.

A service's tasks are found by service name; a schema task, which belongs to no service, by its task
definition family and the `startedBy` that `provision schema` gives it. ECS keeps a stopped task
visible for at least an hour after it stops (ECS developer guide, "Amazon ECS task lifecycle").
"""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.ecs_layout import SERVICES
from provisioner.engine import Engine
from provisioner.errors import BadInput
from provisioner.step_outputs import NotRecorded
from provisioner.steps.cluster import ClusterOutputs
from provisioner.steps.ecs_services import ServicesOutputs
from provisioner.steps.task_definitions import TaskDefinitionOutputs
from provisioner.temporal.schema_tasks import SCHEMA_TASKS, STARTED_BY

SCHEMA_TARGETS = tuple(f"schema-{task}" for task in SCHEMA_TASKS)
TARGETS = (*SERVICES, *SCHEMA_TARGETS)
# DescribeTasks takes at most 100 tasks a call (ECS API reference, DescribeTasks "tasks").
DESCRIBE_BATCH = 100


@dataclass(frozen=True)
class Where:
    cluster: str
    service: str | None  # the ECS service name; None for a schema task
    family: str | None  # the task definition family of a schema task


def check_target(target: str, command: str) -> None:
    if target not in TARGETS:
        raise BadInput(f"{command}: unknown service {target!r}; choose one of {', '.join(TARGETS)}.")


def locate(engine: Engine, target: str) -> Where:
    if target in SCHEMA_TARGETS:
        try:
            cluster = ClusterOutputs.of(engine.state).cluster_name
            definition = TaskDefinitionOutputs.of(engine.state).schema_tasks[target.removeprefix("schema-")]
        except NotRecorded:
            raise BadInput(
                f"the {target} task does not exist yet: run 'provision up', then 'provision schema'.") from None
        return Where(cluster, None, definition.family)
    names = ServicesOutputs.of(engine.state).names
    try:
        cluster = ClusterOutputs.of(engine.state).cluster_name
    except NotRecorded:
        names = {}
    if target not in names:
        raise BadInput(f"the {target} service does not exist yet: run 'provision up' first.")
    return Where(cluster, names[target], None)


def tasks(engine: Engine, where: Where, desired_status: str) -> list[dict]:
    """The described tasks whose desired status is `desired_status` (RUNNING or STOPPED), every page."""
    ecs = engine.aws.client("ecs")
    selector = {"serviceName": where.service} if where.service else {"family": where.family, "startedBy": STARTED_BY}
    arns = [arn for page in ecs.get_paginator("list_tasks").paginate(
        cluster=where.cluster, desiredStatus=desired_status, **selector) for arn in page["taskArns"]]
    described = []
    for start in range(0, len(arns), DESCRIBE_BATCH):
        described += ecs.describe_tasks(cluster=where.cluster, tasks=arns[start:start + DESCRIBE_BATCH])["tasks"]
    return described


def latest_stopped(described: list[dict], count: int) -> list[dict]:
    """The `count` most recently stopped of these tasks, newest first."""
    stopped = [t for t in described if t.get("lastStatus") == "STOPPED"]
    return sorted(stopped, key=lambda t: str(t.get("stoppedAt") or t.get("createdAt") or ""), reverse=True)[:count]


def task_id(task_arn: str) -> str:
    return task_arn.rsplit("/", 1)[-1]


def short_id(task_arn: str) -> str:
    """The first 8 characters of the task ID, as the ECS console shows them."""
    return task_id(task_arn)[:8]
