"""What a Temporal deployment must get right: its roles, their ports and addresses."""
from __future__ import annotations

from provisioner.temporal.versions import ServerVersion

TEMPORAL_ROLES = ("history", "matching", "frontend", "worker")
GRPC_PORT = {"frontend": 7233, "history": 7234, "matching": 7235, "worker": 7239}
MEMBERSHIP_PORT = {"frontend": 6933, "history": 6934, "matching": 6935, "worker": 6939}
METRICS_PORT = 9090

# Service Connect: the roles others call by name (client-server); worker and UI are clients only.
DISCOVERY_NAME = {"history": "temporal-history", "matching": "temporal-matching", "frontend": "temporal-frontend"}
FRONTEND_ADDRESS = f"{DISCOVERY_NAME['frontend']}:{GRPC_PORT['frontend']}"
# Long polls last up to ~70 s; Service Connect's default 15 s per-request timeout would cut them.
PER_REQUEST_TIMEOUT_SECONDS = 120
# Time for a graceful stop: drain (dynamic config), then history hands its shards off.
STOP_TIMEOUT_SECONDS = 120


def health_check_port(version: ServerVersion, role: str) -> int:
    """A port the role really opens in this server version: gRPC where it has a listener, else membership."""
    return GRPC_PORT[role] if "grpc" in version.listeners(role) else MEMBERSHIP_PORT[role]
