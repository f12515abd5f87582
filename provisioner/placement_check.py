"""Whether each node group can ever hold the tasks asked of it (README: "Capacity and ENI trunking").

`plan` and `up` check every service's configured replicas and the counts the state records, which `up`
applies (steps/placement.py), `scale` the counts it is given (commands/scale.py), by the same rules: each
task fits one node, and a group's tasks together need no more CPU, memory and network interfaces than
its max_size nodes offer. Sums, not bin packing: a necessary condition, so a refusal is certain to be right.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from botocore.exceptions import ClientError

from provisioner.aws.session import Aws
from provisioner.config import Config
from provisioner.ecs_layout import (
    NODE_GROUP,
    NODE_GROUPS,
    SERVICE_CONNECT,
    NodeRoom,
    TaskSize,
    node_room,
)
from provisioner.errors import error_code

TRUNKING_SETTING = "awsvpcTrunking"


@dataclass(frozen=True)
class TaskLimit:
    """Tasks in the awsvpc network mode one instance of a type holds, before and after awsvpcTrunking."""

    without_trunking: int
    with_trunking: int


@cache
def trunking_limits() -> dict[str, TaskLimit]:
    """provisioner/data/eni_trunking.json: the ECS developer guide's table, with its source."""
    data = json.loads(resources.files("provisioner").joinpath("data/eni_trunking.json").read_text())
    return {instance_type: TaskLimit(**limits) for instance_type, limits in data["task_limits"].items()}


def account_trunking(aws: Aws, principal: str) -> str:
    """The awsvpcTrunking value in effect for `principal`: 'enabled', 'disabled', or 'unknown'.

    What counts is the setting of the nodes' container instance role, which the ECS agent registers them
    with: that role's own setting if it has one, else the account default ("it must be set by either the
    root account, or by the IAM role of the EC2 instances"; ECS developer guide, container-instance-eni.html
    and ecs-account-settings.html). So `principal` is that role's ARN once it exists, else the root user's,
    whose setting is the default for every user and role without one of their own (PutAccountSetting API
    reference) and so the one a new role gets. The operator's own setting never counts.
    With principalArn and effectiveSettings=true, ECS answers the principal's setting, or the default that
    applies to it (ListAccountSettings API reference). Trunking is opt-in, so no answer means disabled.
    ECS lets only the root user or the principal itself ask about a principal ("In order to use this
    parameter, you must be the root user, or the principal"): a refusal answers 'unknown'.
    """
    try:
        settings = aws.client("ecs").list_account_settings(
            name=TRUNKING_SETTING, principalArn=principal, effectiveSettings=True)["settings"]
    except ClientError as exc:
        if error_code(exc) in ("AccessDeniedException", "ClientException", "InvalidParameterException"):
            return "unknown"
        raise
    return next((s["value"] for s in settings if s["name"] == TRUNKING_SETTING), "disabled")


@dataclass(frozen=True)
class CapacityCheck:
    problems: list[str]
    warnings: list[str]
    # Groups that hold their tasks but not the extra task of a rolling deployment (`rolling_room`).
    no_room_to_roll: list[str] = field(default_factory=list)


# The state setting of the instance types checked once (provision.state.store.InstanceTypeSetting), which the
# capacity step records: a type's vCPUs, memory, network interfaces and architectures are fixed (they define
# the type), and the zones it was offered in are only asked again for a zone not checked yet.
CATALOG_SETTING = "instance_types"
# The run's reads of the region's instance type catalog are shared whatever the run writes (provisioner/aws/
# reads.py drops a service's answers when the run writes to it): no call of this tool changes the catalog.
CATALOG = "instance-type-catalog"


def instance_types(aws: Aws, types: set[str], recorded: dict[str, dict] | None = None) -> list[dict]:
    """DescribeInstanceTypes for these types, in its shape: from the state's `recorded` facts (CATALOG_SETTING)
    when it holds every one, else asked once per run (the capacity step's preflight and this check ask the
    same question). Raises ClientError for a type the region does not offer."""
    recorded = recorded or {}
    if types <= set(recorded):
        return [_described(instance_type, recorded[instance_type]) for instance_type in sorted(types)]
    return aws.reads.read(CATALOG, ("instance-types", tuple(sorted(types))),
                          lambda: aws.client("ec2").describe_instance_types(InstanceTypes=sorted(types))["InstanceTypes"])


def offered(aws: Aws, types: set[str], zones: list[str], recorded: dict[str, dict] | None = None) -> set[tuple[str, str]]:
    """(type, zone) pairs of these types offered in these zones: from the state's `recorded` facts when each
    type was found offered in every one of them, else asked once per run (DescribeInstanceTypeOfferings)."""
    recorded = recorded or {}
    if all(t in recorded and set(zones) <= set(recorded[t]["offered_in"]) for t in types):
        return {(t, zone) for t in types for zone in zones}

    def read() -> set[tuple[str, str]]:
        pages = aws.client("ec2").get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone", Filters=[
                {"Name": "instance-type", "Values": sorted(types)}, {"Name": "location", "Values": sorted(zones)}])
        return {(o["InstanceType"], o["Location"]) for page in pages for o in page["InstanceTypeOfferings"]}

    return aws.reads.read(CATALOG, ("offerings", tuple(sorted(types)), tuple(sorted(zones))), read)


def checked_facts(aws: Aws, types: set[str], zones: list[str], recorded: dict[str, dict] | None = None) -> dict[str, dict]:
    """What CATALOG_SETTING records of these types once the capacity step's preflight passed: its answers (shared
    by the run, or recorded before), so recording them asks AWS nothing."""
    pairs = offered(aws, types, zones, recorded)
    facts = {}
    for item in instance_types(aws, types, recorded):
        name = item["InstanceType"]
        before = (recorded or {}).get(name, {}).get("offered_in", [])
        facts[name] = {
            "architectures": sorted(item["ProcessorInfo"]["SupportedArchitectures"]),
            "vcpus": item["VCpuInfo"]["DefaultVCpus"],
            "memory_mib": item["MemoryInfo"]["SizeInMiB"],
            "network_interfaces": item["NetworkInfo"]["MaximumNetworkInterfaces"],
            "offered_in": sorted(set(before) | {zone for t, zone in pairs if t == name}),
        }
    return facts


def _described(instance_type: str, facts: dict) -> dict:
    """Recorded facts in DescribeInstanceTypes' shape: the fields this tool reads of it."""
    return {"InstanceType": instance_type, "ProcessorInfo": {"SupportedArchitectures": facts["architectures"]},
            "VCpuInfo": {"DefaultVCpus": facts["vcpus"]}, "MemoryInfo": {"SizeInMiB": facts["memory_mib"]},
            "NetworkInfo": {"MaximumNetworkInterfaces": facts["network_interfaces"]}}


def check(config: Config, aws: Aws, counts: dict[str, int], counts_are_replicas: bool,
          trunking_principal: str) -> CapacityCheck:
    """Read what one node of each group offers (`node_rooms`), then `placement_problems`."""
    rooms, warnings = node_rooms(config, aws, trunking_principal)
    problems = placement_problems(config, rooms, counts, counts_are_replicas)
    return CapacityCheck(problems, warnings, [] if problems else rolling_room(config, rooms, counts))


def node_rooms(config: Config, aws: Aws, trunking_principal: str,
               recorded: dict[str, dict] | None = None) -> tuple[dict[str, NodeRoom], list[str]]:
    """What one node of each group offers, and warnings about types the trunking table does not list.

    Trunking counts when the config turns it on (up enables it before any node launches) or it is already
    in effect for the nodes' role (`trunking_principal`: see `account_trunking`). `recorded`: the state's
    CATALOG_SETTING, the facts of the types checked before.
    """
    trunking = config.capacity.eni_trunking or account_trunking(aws, trunking_principal) == "enabled"
    types = {getattr(config.capacity, g).instance_type for g in NODE_GROUPS}
    try:
        found = instance_types(aws, types, recorded)
    except ClientError:
        return {}, []  # an unknown type: the capacity step's preflight names it
    specs = {t["InstanceType"]: t for t in found}
    rooms: dict[str, NodeRoom] = {}
    for group in NODE_GROUPS:
        instance_type = getattr(config.capacity, group).instance_type
        if instance_type in specs:
            limit = trunking_limits().get(instance_type) if trunking else None
            rooms[group] = node_room(specs[instance_type], limit.with_trunking if limit else None)
    untrunked = sorted({getattr(config.capacity, g).instance_type for g, room in rooms.items()
                        if trunking and not room.trunked})
    warnings = [
        f"{instance_type} is not in provisioner/data/eni_trunking.json, so its nodes are counted as without ENI "
        "trunking (one network interface per task). If the ECS developer guide's table of supported instance "
        "types (eni-trunking-supported-instance-types) lists it, add it there."
        for instance_type in untrunked
    ]
    return rooms, warnings


def at_most(config: Config, counts: dict[str, int]) -> dict[str, int]:
    """The most tasks each service may run: an autoscaled frontend (steps/autoscaling.py) may grow to its
    services.frontend.autoscaling.max whatever count it starts at, so that is what its node group must hold."""
    autoscaling = config.services.frontend.autoscaling
    if autoscaling is None or "frontend" not in counts:
        return counts
    return counts | {"frontend": max(counts["frontend"], autoscaling.max)}


def placement_problems(config: Config, rooms: dict[str, NodeRoom], counts: dict[str, int],
                       counts_are_replicas: bool) -> list[str]:
    """Why the groups in `rooms` (what one node offers) could never place `counts` tasks per service.

    Each message names the node group, the limit and the settings to change. `counts_are_replicas`:
    the counts are the config's services.<name>.replicas (plan, up), not the ones given to `scale`.
    """
    problems = []
    counts = at_most(config, counts)
    for group in NODE_GROUPS:
        if group not in rooms:
            continue
        room = rooms[group]
        node = getattr(config.capacity, group)
        sizes = {s: TaskSize.of(s, getattr(config.services, s).cpu, getattr(config.services, s).memory)
                 for s in counts if NODE_GROUP[s] == group}
        # Even at 0 tasks: its task definition is registered, and a later scale could never place it.
        too_big = [s for s, size in sizes.items() if size.cpu > room.cpu or size.memory > room.memory]
        problems += [_larger_than_a_node(config, s, sizes[s], room) for s in too_big]
        placed = {s: n for s, n in counts.items() if NODE_GROUP[s] == group and n}
        if too_big or not placed:
            continue
        nodes = node.max_size
        per_node = f"per {node.instance_type} {'with' if room.trunked else 'without'} ENI trunking"
        short = [f"{what} ({need} needed, {have * nodes} at most: {have} {unit})" for what, need, have, unit in (
            ("CPU units", sum(sizes[s].cpu * n for s, n in placed.items()), room.cpu, "per node"),
            ("MiB of memory", sum(sizes[s].memory * n for s, n in placed.items()), room.memory, "per node"),
            ("network interfaces, one per awsvpc task", sum(placed.values()), room.tasks, per_node),
        ) if need > have * nodes]
        if not short:
            continue
        fixes = [f"raise capacity.{group}.max_size", f"pick a larger capacity.{group}.instance_type"]
        limit = trunking_limits().get(node.instance_type)
        if sum(placed.values()) > room.tasks * nodes and not room.trunked and limit:
            fixes.append(f"set capacity.eni_trunking = true ({limit.with_trunking} tasks per {node.instance_type})")
        if "frontend" in placed and config.services.frontend.autoscaling is not None:
            fixes.append("lower services.frontend.autoscaling.max")
        if counts_are_replicas:
            fixes.append(f"lower the replicas ({', '.join(f'services.{s}.replicas' for s in placed)})")
        else:
            fixes.append("scale to fewer tasks")
        then = "" if counts_are_replicas else "; after changing the config run 'provision up', then scale again"
        wanted = " ".join(f"{s}={n}" for s, n in placed.items())
        problems.append(
            f"node group {group} ({nodes} x {node.instance_type} at capacity.{group}.max_size) cannot hold {wanted}: "
            f"not enough {'; '.join(short)}. {_either(fixes)}{then}."
        )
    return problems


def rolling_room(config: Config, rooms: dict[str, NodeRoom], counts: dict[str, int]) -> list[str]:
    """The groups that hold their tasks but have no room for a rolling deployment's extra task.

    Every service deploys with maximumPercent 200 and minimumHealthyPercent 100 (steps/ecs_services.py): ECS starts
    a new task before it stops an old one, so a group needs room for one more task of the service that rolls, or
    the deployment cannot progress (ECS developer guide, deployment-type-ecs: "100 with max < 200 cannot progress"
    is the same arithmetic). Any service of the group may roll: room for one more of the largest in each dimension
    is room for one more of any. `plan`, `up` and `scale` warn (the tasks run; a later deployment stalls);
    `provision upgrade`, which rolls, refuses.
    """
    found = []
    counts = at_most(config, counts)
    for group in NODE_GROUPS:
        placed = {s: n for s, n in counts.items() if NODE_GROUP[s] == group and n}
        if group not in rooms or not placed:
            continue
        room, node = rooms[group], getattr(config.capacity, group)
        sizes = {s: TaskSize.of(s, getattr(config.services, s).cpu, getattr(config.services, s).memory) for s in placed}
        nodes = node.max_size
        short = [f"{what} ({need} needed with one more task, {have * nodes} at most)" for what, need, have in (
            ("CPU units", sum(sizes[s].cpu * n for s, n in placed.items()) + max(z.cpu for z in sizes.values()), room.cpu),
            ("MiB of memory", sum(sizes[s].memory * n for s, n in placed.items()) + max(z.memory for z in sizes.values()),
             room.memory),
            ("network interfaces", sum(placed.values()) + 1, room.tasks),
        ) if need > have * nodes]
        if short:
            wanted = " ".join(f"{s}={n}" for s, n in placed.items())
            found.append(
                f"node group {group} ({nodes} x {node.instance_type}) holds {wanted} but has no room to roll them: a "
                f"rolling deployment (maximumPercent 200) starts a new task before it stops an old one, and there is "
                f"not enough {'; '.join(short)}. Raise capacity.{group}.max_size, set capacity.eni_trunking = true "
                "or run fewer tasks there.")
    return found


def _either(fixes: list[str]) -> str:
    text = ", ".join(fixes[:-1]) + f" or {fixes[-1]}"
    return text[0].upper() + text[1:]


def _larger_than_a_node(config: Config, service: str, task: TaskSize, room: NodeRoom) -> str:
    group = NODE_GROUP[service]
    sizes = getattr(config.services, service)
    proxy = f" ({task.cpu} and {task.memory} with the Service Connect proxy)" if service in SERVICE_CONNECT else ""
    return (
        f"services.{service} asks for {sizes.cpu} CPU units and {sizes.memory} MiB{proxy}, but a "
        f"{getattr(config.capacity, group).instance_type} (capacity.{group}) offers {room.cpu} CPU units and about "
        f"{room.memory} MiB to tasks. Lower services.{service}.cpu/memory or pick a larger "
        f"capacity.{group}.instance_type."
    )
