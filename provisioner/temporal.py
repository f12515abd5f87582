"""What a Temporal deployment must get right: roles, ports, placement, and the server config.

The server configuration is rendered here from validated settings and handed to the container
in an environment variable; a small start script writes it where the server reads it, with the
task's own IP as the membership broadcast address. JSON is valid YAML, so no YAML writer is needed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from provisioner.config import Config
from provisioner.dynamic_config import render as render_dynamic_config

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


@dataclass(frozen=True)
class NodeRoom:
    """What one container instance offers tasks: CPU units, MiB, and awsvpc tasks (one ENI each)."""

    cpu: int
    memory: int
    tasks: int


def node_room(instance_type: dict) -> NodeRoom:
    """From a DescribeInstanceTypes entry. The primary ENI is the instance's own; without ENI
    trunking, every awsvpc task takes one of the others."""
    return NodeRoom(
        cpu=instance_type["VCpuInfo"]["DefaultVCpus"] * 1024,
        memory=int(instance_type["MemoryInfo"]["SizeInMiB"] * (1 - RESERVED_MEMORY_FRACTION)),
        tasks=instance_type["NetworkInfo"]["MaximumNetworkInterfaces"] - 1,
    )


CONFIG_DIR = "/tmp/temporal"  # writable by the image's non-root user
BROADCAST_PLACEHOLDER = "__BROADCAST_ADDRESS__"
SERVER_CONFIG_VARIABLE = "TEMPORAL_SERVER_CONFIG"
DYNAMIC_CONFIG_VARIABLE = "TEMPORAL_DYNAMIC_CONFIG"
OPENSEARCH_INDEX = "temporal_visibility_v1"

# busybox sh: the server image has no bash. `hostname -i` is the task's ENI address in awsvpc mode.
START_SCRIPT = "\n".join([
    "set -eu",
    f'mkdir -p {CONFIG_DIR}',
    "set -- $(hostname -i)",
    f'printf "%s" "${SERVER_CONFIG_VARIABLE}" | sed "s/{BROADCAST_PLACEHOLDER}/$1/" > {CONFIG_DIR}/provision.yaml',
    f'printf "%s" "${DYNAMIC_CONFIG_VARIABLE}" > {CONFIG_DIR}/dynamicconfig.yaml',
    f'exec temporal-server --root / --config {CONFIG_DIR} --env provision start --service "$TEMPORAL_SERVICE"',
])


def dsql_endpoint(cluster_arn: str) -> str:
    _, _, _, region, _, resource = cluster_arn.split(":", 5)
    return f"{resource.split('/', 1)[1]}.dsql.{region}.on.aws"


def server_config(config: Config, role: str, region: str, opensearch_endpoint: str) -> dict:
    """The static server config for one role: DSQL persistence, OpenSearch visibility, metrics, membership."""
    pool = getattr(config.services, role)
    host = dsql_endpoint(config.dsql.cluster_arn)
    return {
        "log": {"stdout": True, "level": config.temporal.log_level},
        "persistence": {
            "defaultStore": "dsql",
            "visibilityStore": "opensearch",
            "numHistoryShards": config.temporal.num_history_shards,
            "datastores": {
                "dsql": {"sql": {
                    "pluginName": "dsql",
                    "databaseName": "postgres",
                    "connectAddr": f"{host}:5432",
                    "connectProtocol": "tcp",
                    "user": config.dsql.user,  # the plugin signs an IAM token for it: no password
                    "maxConns": pool.max_conns,
                    "maxIdleConns": pool.max_idle_conns,
                    "maxConnLifetime": "55m",  # DSQL closes connections after an hour
                    "tls": {"enabled": True, "enableHostVerification": True, "serverName": host},
                }},
                "opensearch": {"elasticsearch": {
                    "version": "v7",
                    "url": {"scheme": "https", "host": f"{opensearch_endpoint}:443"},
                    "indices": {"visibility": OPENSEARCH_INDEX},
                    "aws-request-signing": {"enabled": True, "region": region, "credentialProvider": "aws-sdk-default"},
                    "enableSniff": False,
                    "enableHealthcheck": False,
                }},
            },
        },
        "global": {
            "membership": {"maxJoinDuration": "30s", "broadcastAddress": BROADCAST_PLACEHOLDER},
            "metrics": {"prometheus": {
                "framework": "tally", "timerType": "histogram", "listenAddress": f"0.0.0.0:{METRICS_PORT}",
            }},
        },
        "services": {
            name: {"rpc": {"grpcPort": GRPC_PORT[name], "membershipPort": MEMBERSHIP_PORT[name], "bindOnIP": "0.0.0.0"}}
            for name in TEMPORAL_ROLES
        },
        "clusterMetadata": {
            "enableGlobalNamespace": False,
            "failoverVersionIncrement": 10,
            "masterClusterName": config.project,
            "currentClusterName": config.project,
            "clusterInformation": {config.project: {
                "enabled": True, "initialFailoverVersion": 1, "rpcAddress": FRONTEND_ADDRESS,
            }},
        },
        "dcRedirectionPolicy": {"policy": "noop"},
        "archival": {"history": {"state": "disabled"}, "visibility": {"state": "disabled"}},
        "namespaceDefaults": {"archival": {"history": {"state": "disabled"}, "visibility": {"state": "disabled"}}},
        "publicClient": {"hostPort": FRONTEND_ADDRESS},
        "dynamicConfigClient": {"filepath": f"{CONFIG_DIR}/dynamicconfig.yaml", "pollInterval": "60s"},
    }


def server_environment(config: Config, role: str, region: str, opensearch_endpoint: str) -> dict[str, str]:
    """What the start script reads: the role, its rendered config and the dynamic config."""
    return {
        "TEMPORAL_SERVICE": role,
        "AWS_REGION": region,
        SERVER_CONFIG_VARIABLE: json.dumps(server_config(config, role, region, opensearch_endpoint), sort_keys=True),
        DYNAMIC_CONFIG_VARIABLE: json.dumps(render_dynamic_config(config.temporal.dynamic_config), sort_keys=True),
    }
