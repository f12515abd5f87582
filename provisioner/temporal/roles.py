"""What a Temporal deployment must get right: roles, ports, placement and the room a node offers."""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.temporal.versions import ServerVersion

TEMPORAL_ROLES = ("history", "matching", "frontend", "worker")
SERVICES = (*TEMPORAL_ROLES, "ui")
GRPC_PORT = {"frontend": 7233, "history": 7234, "matching": 7235, "worker": 7239}
MEMBERSHIP_PORT = {"frontend": 6933, "history": 6934, "matching": 6935, "worker": 6939}
METRICS_PORT = 9090
UI_PORT = 8080

# The node group (and `workload` instance attribute) each service is placed on: A, B or C.
NODE_GROUP = {"history": "history", "matching": "frontend", "frontend": "frontend", "ui": "frontend", "worker": "worker"}
# Service Connect: the roles others call by name (client-server); worker and UI are clients only.
DISCOVERY_NAME = {"history": "temporal-history", "matching": "temporal-matching", "frontend": "temporal-frontend"}
FRONTEND_ADDRESS = f"{DISCOVERY_NAME['frontend']}:{GRPC_PORT['frontend']}"
# Long polls last up to ~70 s; Service Connect's default 15 s per-request timeout would cut them.
PER_REQUEST_TIMEOUT_SECONDS = 120
# Time for a graceful stop: drain (dynamic config), then history hands its shards off.
STOP_TIMEOUT_SECONDS = 120

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
    """What a task reserves on its node: its container plus the Service Connect proxy."""

    cpu: int
    memory: int

    @classmethod
    def of(cls, container_cpu: int, container_memory: int) -> TaskSize:
        return cls(container_cpu + PROXY_CPU, container_memory + PROXY_MEMORY)


@dataclass(frozen=True)
class NodeRoom:
    """What one container instance offers tasks: CPU units, MiB, and awsvpc tasks (one ENI each)."""

    cpu: int
    memory: int
    tasks: int


def health_check_port(version: ServerVersion, role: str) -> int:
    """A port the role really opens in this server version: gRPC where it has a listener, else membership."""
    return GRPC_PORT[role] if "grpc" in version.listeners(role) else MEMBERSHIP_PORT[role]


def node_room(instance_type: dict) -> NodeRoom:
    """From a DescribeInstanceTypes entry. The primary ENI is the instance's own; without ENI
    trunking, every awsvpc task takes one of the others."""
    return NodeRoom(
        cpu=instance_type["VCpuInfo"]["DefaultVCpus"] * 1024,
        memory=int(instance_type["MemoryInfo"]["SizeInMiB"] * (1 - RESERVED_MEMORY_FRACTION)),
        tasks=instance_type["NetworkInfo"]["MaximumNetworkInterfaces"] - 1,
    )
