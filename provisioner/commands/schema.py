"""`provision schema`: the DSQL schema and the visibility index, set up by one-off ECS tasks.

`up` has made everything the tasks need (task definitions in the admin-tools image, a task role that may
reach the cluster and the domain, a security group that takes no traffic, a log group); this command
waits until the DSQL cluster and the OpenSearch domain can be used, runs both tasks side by side on node
C (private subnets, no public IP), waits for them to stop and reports each one's exit code and the end of
its log. Both tasks are safe to run again: on a current schema they change nothing. A task an interrupted
run left running is waited for rather than started a second time; `destroy` stops any still running.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from provisioner import operations
from provisioner.aws.converge import create_without_twins
from provisioner.aws.named_kinds import (
    OPENSEARCH_DOMAIN,
    still_running,
    task_family,
    tasks_started_by,
    wait_dsql_usable,
)
from provisioner.aws.propagation import ECS_ROLE, until_propagated
from provisioner.aws.session import Aws
from provisioner.aws.waiter import TimedOut, WaitFailed, wait_for
from provisioner.config import Config
from provisioner.engine import Engine
from provisioner.errors import BadInput, ProvisionError
from provisioner.state import RecordedState
from provisioner.step_outputs import NotRecorded, StepOutputs
from provisioner.steps.cluster import ClusterOutputs
from provisioner.steps.dsql import DsqlOutputs
from provisioner.steps.network import NetworkOutputs
from provisioner.steps.opensearch import OpenSearchOutputs
from provisioner.steps.security_groups import SecurityGroupOutputs
from provisioner.steps.task_definitions import TaskDefinitionOutputs
from provisioner.task_logs import log_tail
from provisioner.temporal import schema_tasks, versions

# Where the schema tasks run: node C, the worker's group, which has room to spare.
NODE_GROUP = "worker"


@dataclass(frozen=True)
class SchemaTask:
    task: str
    task_arn: str
    exit_code: int | None
    reason: str
    log_tail: list[str]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class Needed:
    """What the schema tasks run with, as `up` recorded it."""

    cluster: ClusterOutputs
    dsql: DsqlOutputs
    opensearch: OpenSearchOutputs
    network: NetworkOutputs
    groups: SecurityGroupOutputs
    definitions: TaskDefinitionOutputs


NEEDED_WHAT = {
    ClusterOutputs: "the ECS cluster", DsqlOutputs: "the DSQL cluster", OpenSearchOutputs: "the OpenSearch domain",
    NetworkOutputs: "the private subnets", SecurityGroupOutputs: "the security groups",
    TaskDefinitionOutputs: "the schema task definitions",
}


def needed(state: RecordedState) -> Needed:
    """Everything the tasks need, or one message naming what `up` has not made yet."""
    def recorded(outputs: type[StepOutputs]) -> bool:
        try:
            outputs.of(state)
        except NotRecorded:
            return False
        return True

    missing = [what for outputs, what in NEEDED_WHAT.items() if not recorded(outputs)]
    if missing:
        raise BadInput(f"{', '.join(missing)} not made yet: run 'provision up' first, then 'provision schema'.")
    return Needed(ClusterOutputs.of(state), DsqlOutputs.of(state), OpenSearchOutputs.of(state),
                  NetworkOutputs.of(state), SecurityGroupOutputs.of(state), TaskDefinitionOutputs.of(state))


def run_schema(engine: Engine, timeout: float) -> list[SchemaTask]:
    state, aws, config, naming = engine.state, engine.aws, engine.config, engine.naming
    reporter = engine.reporter
    made = needed(state)

    reporter.start("wait", "DSQL and OpenSearch")
    wait_dsql_usable(aws, made.dsql.cluster_arn, config.timeouts.dsql,
                     lambda message: reporter.update("wait", message))
    domain = made.opensearch.domain_name

    def domain_ready():
        live = OPENSEARCH_DOMAIN.get(aws, domain)
        if live is None:
            raise WaitFailed(f"the OpenSearch domain {domain} is gone: run 'provision up' again")
        ready = live.get("Endpoints", {}).get("vpc") and not live.get("Processing")
        if not ready:
            reporter.update("wait", f"waiting for OpenSearch domain {domain} (15-20 minutes in AWS)")
        return live if ready else None

    wait_for(f"OpenSearch domain {domain}", domain_ready, timeout=config.timeouts.opensearch)
    reporter.finish("wait", ok=True, message="both can be used")

    ecs = aws.client("ecs")
    cluster = made.cluster.cluster_name
    subnets = list(made.network.private_subnet_ids)
    # What an earlier run started: one still running (that run was interrupted) is waited for, not started again.
    earlier = tasks_started_by(aws, cluster, schema_tasks.STARTED_BY)
    started: dict[str, str] = {}
    for task in schema_tasks.SCHEMA_TASKS:
        reporter.start(task, f"{task} schema task")
        definition = made.definitions.schema_tasks[task]
        running = [t for t in earlier if task_family(t) == definition.family and still_running(t)]
        if running:
            started[task] = running[0]["taskArn"]
            reporter.update(task, "already running, started by an earlier run: waiting for it")
            continue

        def lost_start(definition=definition) -> dict | None:
            # A RunTask whose answer was lost may have started the task: one this family's tasks did not have before.
            known = {t["taskArn"] for t in earlier}
            new = [t for t in tasks_started_by(aws, cluster, schema_tasks.STARTED_BY)
                   if t["taskArn"] not in known and task_family(t) == definition.family]
            return {"tasks": new[:1]} if new else None

        def start(definition=definition) -> dict:
            return until_propagated(ECS_ROLE, config.timeouts.iam_propagation, lambda: ecs.run_task(
                cluster=cluster,
                taskDefinition=definition.arn,
                count=1,
                startedBy=schema_tasks.STARTED_BY,
                capacityProviderStrategy=[{"capacityProvider": naming.name(f"node-{NODE_GROUP}"), "weight": 1, "base": 0}],
                placementConstraints=[{"type": "memberOf", "expression": f"attribute:workload == {NODE_GROUP}"}],
                networkConfiguration={"awsvpcConfiguration": {
                    "subnets": subnets, "securityGroups": [made.groups.schema],
                    "assignPublicIp": "DISABLED",
                }},
                enableECSManagedTags=True,
                propagateTags="TASK_DEFINITION",
            ))

        response = create_without_twins(start, lost_start, f"the {task} schema task")
        if response.get("failures") or not response.get("tasks"):
            reasons = "; ".join(f"{f.get('reason')} ({f.get('detail', '')})" for f in response.get("failures", []))
            raise ProvisionError(
                f"ECS could not start the {task} schema task: {reasons or 'no task started'}. If no instance of node "
                f"group {NODE_GROUP} is up yet, wait a minute and run 'provision schema' again."
            )
        started[task] = response["tasks"][0]["taskArn"]
        reporter.update(task, "started")

    def stopped():
        described = ecs.describe_tasks(cluster=cluster, tasks=list(started.values()))["tasks"]
        by_arn = {t["taskArn"]: t for t in described}
        for task, arn in started.items():
            reporter.update(task, by_arn.get(arn, {}).get("lastStatus", "PENDING").lower())
        if all(by_arn.get(arn, {}).get("lastStatus") == "STOPPED" for arn in started.values()):
            return by_arn
        return None

    try:
        done = wait_for("the schema tasks to finish", stopped, timeout=timeout)
    except TimedOut:
        raise ProvisionError(
            f"The schema tasks did not finish within {timeout:.0f}s; they may still be running: "
            f"aws ecs describe-tasks --cluster {cluster} --tasks {' '.join(started.values())}"
        ) from None

    results = []
    for task, arn in started.items():
        described = done[arn]
        container = described.get("containers", [{}])[0]
        exit_code = container.get("exitCode")
        reason = container.get("reason") or described.get("stoppedReason", "")
        result = SchemaTask(task, arn, exit_code, reason, _log_tail(aws, naming, task, container.get("name"), arn))
        reporter.finish(task, ok=result.ok, message=f"exit code {exit_code}" + ("" if result.ok else f": {reason}"))
        results.append(result)
    if all(r.ok for r in results):
        state.set_setting(schema_tasks.SCHEMA_SETTING, {
            "server_version": config.temporal.server_version,
            # What the database now holds: `provision upgrade` refuses a server expecting an older one.
            "dsql_schema_version": versions.load(config.temporal.server_version).dsql_schema_version,
            "visibility_index": config.opensearch.visibility_index,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
    return results


def _log_tail(aws, naming, task: str, container: str | None, task_arn: str) -> list[str]:
    """The last lines the task wrote, from its awslogs stream <prefix>/<container>/<task id>."""
    stream = f"schema/{container or f'schema-{task}'}/{task_arn.rsplit('/', 1)[-1]}"
    return log_tail(aws, naming.log_group("schema"), stream)


def as_rows(results: list[SchemaTask]) -> list[dict]:
    return [asdict(r) | {"ok": r.ok} for r in results]


def schema(config: Config, aws: Aws, state_path: Path | str | None = None, timeout: float | None = None,
           **kwargs) -> list[SchemaTask]:
    """`provision schema`: run the schema tasks and report each one."""
    with operations.open_engine(config, aws, state_path, "schema", **kwargs) as engine:
        return run_schema(engine, timeout or config.timeouts.schema_task)
