"""The Temporal server configuration, rendered per role from validated settings.

It reaches the container in an environment variable; a small start script writes it where the
server reads it, with the task's own IP as the membership broadcast address. JSON is valid YAML,
so no YAML writer is needed.
"""
from __future__ import annotations

import json

from provisioner.config import Config
from provisioner.temporal.dynamic_config import render as render_dynamic_config
from provisioner.temporal.roles import (
    FRONTEND_ADDRESS,
    GRPC_PORT,
    MEMBERSHIP_PORT,
    METRICS_PORT,
    TEMPORAL_ROLES,
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
