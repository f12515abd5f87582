"""The ECS services of the stack: where each runs, which join Service Connect, and the room a task
takes and a node offers."""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.temporal.roles import TEMPORAL_ROLES

SERVICES = (*TEMPORAL_ROLES, "ui", "grafana", "collector")
UI_PORT = 8080
GRAFANA_PORT = 3000

# The node group (and `workload` instance attribute) each service is placed on: A, B or C.
NODE_GROUP = {
    "history": "history",
    "matching": "frontend", "frontend": "frontend", "ui": "frontend", "grafana": "frontend",
    "worker": "worker", "collector": "worker",
}
# The node groups, A, B and C in that order; each name is also its `workload` placement attribute.
NODE_GROUPS = tuple(dict.fromkeys(NODE_GROUP.values()))
# Services in the Service Connect namespace: the Temporal roles call each other by name and the UI calls
# the frontend. Grafana reaches Amazon Managed Prometheus and the collector each task's own address: neither
# needs it, and neither pays for a proxy.
SERVICE_CONNECT = (*TEMPORAL_ROLES, "ui")

# ECS keeps part of each instance's memory for the OS and its agent; tasks get the rest.
RESERVED_MEMORY_FRACTION = 0.1

# ECS adds a Service Connect proxy (Envoy) container to every task of a Service Connect service, and
# it runs on what the task reserves beyond its containers: "We recommend adding an additional 256 CPU
# units and at least 64 MiB of memory to your task CPU and memory for the Service Connect proxy
# container" (ECS developer guide, service-connect-concepts-deploy.html).
PROXY_CPU = 256
PROXY_MEMORY = 64


@dataclass(frozen=True)
class TaskSize:
    """What a task reserves on its node: its containers, plus the Service Connect proxy where it has one."""

    cpu: int
    memory: int

    @classmethod
    def of(cls, service: str, container_cpu: int, container_memory: int) -> TaskSize:
        if service not in SERVICE_CONNECT:
            return cls(container_cpu, container_memory)
        return cls(container_cpu + PROXY_CPU, container_memory + PROXY_MEMORY)


@dataclass(frozen=True)
class NodeRoom:
    """What one container instance offers tasks: CPU units, MiB, and awsvpc tasks (one ENI each, or a
    branch of the trunk ENI with ENI trunking)."""

    cpu: int
    memory: int
    tasks: int
    trunked: bool = False


def node_room(instance_type: dict, trunked_tasks: int | None = None) -> NodeRoom:
    """From a DescribeInstanceTypes entry. The primary ENI is the instance's own; without ENI
    trunking, every awsvpc task takes one of the others. With it, the type's trunked task limit
    (provisioner/placement_check.py) replaces that count."""
    return NodeRoom(
        cpu=instance_type["VCpuInfo"]["DefaultVCpus"] * 1024,
        memory=int(instance_type["MemoryInfo"]["SizeInMiB"] * (1 - RESERVED_MEMORY_FRACTION)),
        tasks=trunked_tasks or instance_type["NetworkInfo"]["MaximumNetworkInterfaces"] - 1,
        trunked=trunked_tasks is not None,
    )
