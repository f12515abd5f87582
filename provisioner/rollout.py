"""Waiting for ECS services to roll out (README: "Upgrading Temporal"): `scale --wait` and `upgrade` wait here,
and so may any command that changes a service and must know the change took.

A wait reads each service's deployments, not only its counts. botocore's `services_stable` waiter asks only
for one deployment and running == desired, so after the deployment circuit breaker has rolled a failed
deployment back it reports success (the rolled-back service is stable, on the old task definition). Here a
service has settled when the deployment of the task definition we asked for is the PRIMARY one, alone, with
`rolloutState` COMPLETED and running == desired (ECS API reference, Deployment: "rolloutState ... COMPLETED,
FAILED, IN_PROGRESS"); it has failed when that deployment is FAILED, or when it is gone and the PRIMARY one
runs another task definition (rolled back). A failure names the service, ECS's reason, the stopped tasks'
`stoppedReason` and the last lines of the newest stopped task's log.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from provisioner.aws.session import Aws
from provisioner.aws.waiter import TimedOut, WaitFailed, wait_for
from provisioner.errors import ProvisionError
from provisioner.progress import Reporter
from provisioner.task_logs import log_tail


@dataclass(frozen=True)
class Target:
    """A service to wait for: its name in SERVICES, its ECS name, and the task definition it must end on
    (None: whatever it runs, as after a change of count)."""

    service: str
    name: str
    task_definition: str | None = None


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    name: str
    desired: int
    running: int
    pending: int
    rollout: str
    stable: bool
    reason: str = ""
    failed: bool = False
    log_tail: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = f"{self.running}/{self.desired} running" + (f", {self.pending} pending" if self.pending else "")
        return f"{text}: {self.reason}" if self.reason else text


class RolloutFailed(ProvisionError):
    """A service's deployment failed or was rolled back; `statuses` says which and why."""

    def __init__(self, message: str, statuses: list[ServiceStatus]):
        super().__init__(message)
        self.statuses = statuses


def since_now() -> datetime:
    """Events and stopped tasks from now on; a little earlier, for a clock behind AWS's."""
    return datetime.now(timezone.utc) - timedelta(seconds=10)


def status_of(aws: Aws, target: Target, live: dict, since: datetime) -> ServiceStatus:
    """Where `live` (a DescribeServices answer) stands against `target`."""
    deployments = live.get("deployments", [])
    primary: dict = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
    tracked: dict | None
    if target.task_definition is None:
        tracked = primary
    else:
        tracked = next((d for d in deployments if d.get("taskDefinition") == target.task_definition), None)
    counts = (target.service, live["serviceName"], live["desiredCount"], live["runningCount"], live["pendingCount"])
    if tracked is None:
        # The deployment we asked for is gone and the service runs another definition: rolled back.
        reason = (f"rolled back to {primary.get('taskDefinition', 'an earlier task definition').rsplit('/', 1)[-1]}: "
                  + (_why_not(aws, live, primary, since) or "the deployment failed"))
        return ServiceStatus(*counts, "ROLLED_BACK", False, reason, True, _last_log(aws, live, since))
    rollout = tracked.get("rolloutState", "COMPLETED")
    if rollout == "FAILED":
        details = _why_not(aws, live, tracked, since)
        reason = "; ".join(part for part in (tracked.get("rolloutStateReason", "the deployment failed"), details) if part)
        return ServiceStatus(*counts, rollout, False, reason, True, _last_log(aws, live, since))
    stable = (tracked is primary and len(deployments) <= 1 and rollout == "COMPLETED"
              and live["runningCount"] == live["desiredCount"])
    reason = "" if stable else _why_not(aws, live, tracked, since)
    return ServiceStatus(*counts, rollout, stable, reason)


def _stopped_since(aws: Aws, live: dict, since: datetime) -> list[dict]:
    ecs = aws.client("ecs")
    stopped = ecs.list_tasks(cluster=live["clusterArn"], serviceName=live["serviceName"], desiredStatus="STOPPED")
    if not stopped["taskArns"]:
        return []
    tasks = ecs.describe_tasks(cluster=live["clusterArn"], tasks=stopped["taskArns"][:100])["tasks"]
    return sorted((t for t in tasks if t.get("stoppedAt") and t["stoppedAt"] >= since),
                  key=lambda t: t["stoppedAt"], reverse=True)


def _why_not(aws: Aws, live: dict, deployment: dict, since: datetime) -> str:
    """What ECS says is holding a service back: its newest event, failed and stopped tasks."""
    reasons = []
    recent = [e for e in live.get("events", []) if e["createdAt"] >= since]
    if recent:
        reasons.append(recent[0]["message"])
    if deployment.get("failedTasks"):
        reasons.append(f"{deployment['failedTasks']} tasks failed to start")
    for task in _stopped_since(aws, live, since)[:1]:
        containers = "; ".join(f"{c['name']}: {c['reason']}" for c in task.get("containers", []) if c.get("reason"))
        codes = ", ".join(f"{c['name']} exit {c['exitCode']}" for c in task.get("containers", [])
                          if c.get("exitCode") is not None)
        detail = "; ".join(part for part in (containers, codes) if part)
        reasons.append(f"last stopped task: {task.get('stoppedReason', 'stopped')}" + (f" ({detail})" if detail else ""))
    return "; ".join(reasons)


def _last_log(aws: Aws, live: dict, since: datetime) -> list[str]:
    """The last lines of the newest stopped task's first container, from its awslogs stream."""
    tasks = _stopped_since(aws, live, since)
    if not tasks:
        return []
    task = tasks[0]
    ecs = aws.client("ecs")
    containers = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]["containerDefinitions"]
    options = containers[0].get("logConfiguration", {}).get("options", {})
    if "awslogs-group" not in options:
        return []
    stream = f"{options.get('awslogs-stream-prefix', 'ecs')}/{containers[0]['name']}/{task['taskArn'].rsplit('/', 1)[-1]}"
    return log_tail(aws, options["awslogs-group"], stream)


def observe(aws: Aws, cluster: str, targets: list[Target], since: datetime) -> list[ServiceStatus]:
    """Each target's status, from one DescribeServices call (at most 10 services, its API limit)."""
    described = aws.client("ecs").describe_services(cluster=cluster, services=[t.name for t in targets])["services"]
    by_name = {s["serviceName"]: s for s in described if s.get("status") == "ACTIVE"}
    statuses = []
    for target in targets:
        live = by_name.get(target.name)
        if live is None:
            raise WaitFailed(f"the {target.service} service is gone: run 'provision up' to recreate it")
        statuses.append(status_of(aws, target, live, since))
    return statuses


def wait_for_rollout(aws: Aws, cluster: str, targets: list[Target], timeout: float, reporter: Reporter,
                     since: datetime | None = None) -> list[ServiceStatus]:
    """Poll until every target has settled, showing each one's progress; RolloutFailed as soon as one fails
    or is rolled back (the others are not waited for), ProvisionError when time runs out."""
    since = since or since_now()
    shown: dict[str, str] = {}
    for target in targets:
        reporter.start(target.service, f"{target.service} service")

    def probe() -> list[ServiceStatus] | None:
        statuses = observe(aws, cluster, targets, since)
        for status in statuses:
            if shown.get(status.service) == "settled":
                continue
            if status.stable:
                reporter.finish(status.service, ok=True, message=status.describe())
                shown[status.service] = "settled"
            elif status.failed:
                reporter.finish(status.service, ok=False, message=status.describe())
                shown[status.service] = "failed"
            elif shown.get(status.service) != status.describe():
                progress = f"{status.rollout.lower().replace('_', ' ')}, {status.describe()}"
                reporter.update(status.service, progress)
                shown[status.service] = status.describe()
        failed = [s for s in statuses if s.failed]
        if failed:
            raise RolloutFailed(failure_text("failed or rolled back", failed), failed)
        return statuses if all(s.stable for s in statuses) else None

    try:
        return wait_for("services to settle", probe, timeout=timeout)
    except TimedOut:
        unsettled = [s for s in observe(aws, cluster, targets, since) if not s.stable]
        for status in unsettled:
            reporter.finish(status.service, ok=False, message=status.describe())
        raise ProvisionError(failure_text(f"not settled after {timeout:.0f}s", unsettled)) from None


def failure_text(what: str, statuses: list[ServiceStatus]) -> str:
    lines = []
    for status in statuses:
        lines.append(f"{status.service}: {status.describe()}")
        if status.log_tail:
            lines.append(f"  last {len(status.log_tail)} lines of its newest stopped task's log:")
            lines += [f"    {line}" for line in status.log_tail]
    return f"{len(statuses)} service(s) {what}:\n  " + "\n  ".join(lines)
