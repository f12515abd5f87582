"""The services part of `provision status`: per service, the counts, the primary deployment's rollout, the image
it runs, and its last stopped tasks with why they stopped, the first thing to read when a service misbehaves.

Everything comes from DescribeServices (counts, deployments), DescribeTaskDefinition (the image) and
ListTasks/DescribeTasks with desiredStatus STOPPED (stoppedReason, stopCode, each container's exitCode); ECS
keeps a stopped task visible for at least an hour. `rolloutState` is that of the PRIMARY deployment, the one
the service is moving to (ECS API reference, Deployment).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError
from rich.console import Console

from provisioner import operations
from provisioner.aws.session import Aws
from provisioner.commands import service_tasks
from provisioner.config import Config
from provisioner.engine import Engine
from provisioner.errors import error_code
from provisioner.step_outputs import known
from provisioner.steps.cluster import ClusterOutputs
from provisioner.steps.ecs_services import ServicesOutputs

# How many stopped tasks each service shows, newest first.
STOPPED_SHOWN = 3


@dataclass(frozen=True)
class StoppedTask:
    task: str
    stopped_at: str
    stop_code: str
    reason: str
    exit_codes: dict[str, int | None]


@dataclass(frozen=True)
class ServiceStory:
    service: str
    name: str
    desired: int
    running: int
    pending: int
    rollout: str
    rollout_reason: str
    image_tag: str
    stopped: list[StoppedTask] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)


def image_tag(image: str) -> str:
    """The tag (or digest) of an image reference: repo:tag, repo@sha256:..., or 'latest' when none is given."""
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def stories(engine: Engine) -> list[ServiceStory]:
    cluster_name = ClusterOutputs.so_far(engine.state).cluster_name
    names = ServicesOutputs.so_far(engine.state).names
    if not known(cluster_name) or not names:
        return []
    ecs = engine.aws.client("ecs")
    described = {}
    wanted = sorted(names.values())
    # DescribeServices takes at most 10 services a call (ECS API reference).
    for start in range(0, len(wanted), 10):
        try:
            answer = ecs.describe_services(cluster=cluster_name, services=wanted[start:start + 10])
        except ClientError as exc:
            if error_code(exc) == "ClusterNotFoundException":
                return []  # the resources part of status reports the cluster missing
            raise
        for service in answer["services"]:
            described[service["serviceName"]] = service
    images: dict[str, str] = {}
    result = []
    for role, name in sorted(names.items()):
        service = described.get(name)
        if service is None or service.get("status") != "ACTIVE":
            continue
        primary: dict = next((d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), {})
        definition = primary.get("taskDefinition") or service.get("taskDefinition")
        if definition and definition not in images:
            containers = ecs.describe_task_definition(taskDefinition=definition)["taskDefinition"]["containerDefinitions"]
            main = next((c for c in containers if c["name"] == role), containers[0])
            images[definition] = main.get("image", "")
        where = service_tasks.Where(cluster_name, name, None)
        stopped = service_tasks.latest_stopped(service_tasks.tasks(engine, where, "STOPPED"), STOPPED_SHOWN)
        result.append(ServiceStory(
            role, name, service.get("desiredCount", 0), service.get("runningCount", 0), service.get("pendingCount", 0),
            primary.get("rolloutState", ""), primary.get("rolloutStateReason", ""),
            image_tag(images.get(definition, "")) if definition else "",
            [StoppedTask(service_tasks.short_id(t["taskArn"]), str(t.get("stoppedAt", "")), t.get("stopCode", ""),
                         t.get("stoppedReason", ""), {c["name"]: c.get("exitCode") for c in t.get("containers", [])})
             for t in stopped],
        ))
    return result


def show(out: Console, services: list[ServiceStory]) -> None:
    """One line per service (counts, rollout, image tag), then its last stopped tasks and why they stopped."""
    if not services:
        return
    out.print("Services:", highlight=False)
    for story in services:
        rollout = story.rollout.lower() or "no deployment"
        out.print(f"  {story.service:<10} {story.running}/{story.desired} running, {story.pending} pending, "
                  f"{rollout}, image {story.image_tag or '-'}", highlight=False, markup=False)
        if story.rollout == "FAILED" and story.rollout_reason:
            out.print(f"    {story.rollout_reason}", highlight=False, markup=False)
        for stopped in story.stopped:
            codes = ", ".join(f"{name} exit {code}" for name, code in stopped.exit_codes.items())
            out.print(f"    stopped {stopped.task} at {stopped.stopped_at}: {stopped.reason or stopped.stop_code}"
                      + (f" ({codes})" if codes else ""), highlight=False, markup=False)


def service_status(config: Config, aws: Aws, state_path: Path | str | None = None, **kwargs) -> list:
    """The services part of `provision status`: each one's counts, rollout, image and last stopped tasks."""
    with operations.open_engine(config, aws, state_path, "status", quiet=True, **kwargs) as engine:
        return stories(engine)
