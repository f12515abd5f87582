"""The Temporal server versions this tool can deploy, and what each one accepts and opens.

Each supported version has a data file in provisioner/data/temporal/, extracted from that
version's own source by scripts/extract_temporal_data.py (the file records repository, tag
and commit): the dynamic config keys the server registers, each with its value type, and the tree of YAML keys its static
config accepts, and the metrics it defines with their types and label keys. A new version is one run of
that script plus a row in the tables below.

"fork" is the temporal-dsql fork (github.com/iw/temporal, main at the commit its file names),
the only server that runs on Aurora DSQL. It reports version 1.29.0, but its tree lies between
upstream 1.30 and 1.31: it has 1.30's --config-file and 1.31's worker listener.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

SUPPORTED = ("1.28", "1.29", "1.30", "1.31", "fork")
DEFAULT = "fork"

# The worker role opens its gRPC port (7239, with a gRPC health service) only from upstream
# v1.31.0: commit f8ee14e9 "Add health check handler for worker service", service/worker/service.go.
# Before it, only frontend, history and matching ask for a gRPC listener (common/rpc/rpc.go);
# every role opens its membership port (common/membership/ringpop/factory.go).
WORKER_GRPC_LISTENER = {"1.28": False, "1.29": False, "1.30": False, "1.31": True, "fork": True}
# `temporal-server start --config-file` arrives in v1.30.0 (commit 70c2b81d, cmd/server/main.go);
# older servers take --root/--config/--env, which 1.30+ still accept as deprecated.
CONFIG_FILE_FLAG = {"1.28": False, "1.29": False, "1.30": True, "1.31": True, "fork": True}
# The DSQL schema version a server requires at start (sql.VerifyCompatibleVersion): the fork's
# schema/dsql/version.go `Version` at cf90c57 (versions v1.0 and v1.1 in schema/dsql/temporal/versioned).
# Upstream releases have no DSQL persistence at all.
DSQL_SCHEMA_VERSION = {"fork": "1.1"}


@dataclass(frozen=True)
class ServerVersion:
    id: str
    declared: str  # what `temporal-server --version` reports (the ServerVersion constant)
    source: dict
    dynamic_config_keys: frozenset[str]
    dynamic_config_types: dict[str, str]  # key -> int, float, bool, string, duration, map, list or typed
    server_config: dict
    worker_grpc_listener: bool
    config_file_flag: bool
    dsql_schema_version: str | None
    # The metrics it defines (name -> {"kind", "prometheus"}), the label keys it sets and the operation
    # values it names (scripts/extract_temporal_data.py): what the dashboards are rendered against.
    metrics: dict[str, dict] = field(default_factory=dict)
    metric_label_keys: frozenset[str] = frozenset()
    metric_operation_values: frozenset[str] = frozenset()

    def listeners(self, role: str) -> tuple[str, ...]:
        """The ports a role really opens in this version: "grpc" and/or "membership"."""
        if role == "worker" and not self.worker_grpc_listener:
            return ("membership",)
        return ("grpc", "membership")

    def describe(self) -> str:
        return f"{self.id} ({self.source['repository']} {self.source['ref']} at {self.source['commit'][:12]})"


@lru_cache(maxsize=None)
def load(version_id: str) -> ServerVersion:
    if version_id not in SUPPORTED:
        raise ValueError(
            f"Temporal {version_id!r} is not a supported server version; supported: {', '.join(SUPPORTED)}. "
            "Add one with scripts/extract_temporal_data.py"
        )
    data = json.loads(resources.files("provisioner").joinpath(f"data/temporal/{version_id}.json").read_text())
    return ServerVersion(
        id=version_id,
        declared=data["source"]["server_version"],
        source=dict(data["source"]),
        dynamic_config_keys=frozenset(data["dynamic_config_keys"]),
        dynamic_config_types=data["dynamic_config_types"],
        server_config=data["server_config"],
        worker_grpc_listener=WORKER_GRPC_LISTENER[version_id],
        config_file_flag=CONFIG_FILE_FLAG[version_id],
        dsql_schema_version=DSQL_SCHEMA_VERSION.get(version_id),
        metrics=data["metrics"],
        metric_label_keys=frozenset(data["metric_label_keys"]),
        metric_operation_values=frozenset(data["metric_operation_values"]),
    )


# An image tag that carries a server version: 1.30, 1.30.6, v1.30.6-arm64, ...
VERSION_TAG = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-_.].*)?$")


def image_tag(image: str) -> str | None:
    """An image reference's tag, or None when it has none (a digest, or a registry port without a tag)."""
    if "@" in image:
        return None
    name, _, tag = image.rpartition(":")
    return tag if name and "/" not in tag else None


def tag_version(image: str) -> str | None:
    """The major.minor version an image's tag carries, or None (a digest, or a tag like <sha>-<time>)."""
    match = VERSION_TAG.match(image_tag(image) or "")
    return f"{match[1]}.{match[2]}" if match else None


def unknown_config_keys(rendered: dict, tree: dict, path: str = "") -> list[str]:
    """Keys of a rendered server config that the version's config structs do not have (dotted paths)."""
    problems = []
    for key, value in rendered.items():
        here = f"{path}.{key}" if path else key
        if key in tree:
            schema = tree[key]
        elif "*" in tree:
            schema = tree["*"]
        else:
            problems.append(here)
            continue
        if isinstance(value, dict) and isinstance(schema, dict):
            problems.extend(unknown_config_keys(value, schema, here))
        elif isinstance(value, list) and isinstance(schema, dict) and "[]" in schema:
            for index, item in enumerate(value):
                if isinstance(item, dict) and isinstance(schema["[]"], dict):
                    problems.extend(unknown_config_keys(item, schema["[]"], f"{here}[{index}]"))
        elif isinstance(value, dict) and schema != "any":
            problems.append(f"{here} (a {schema}, not a mapping)")
    return problems
