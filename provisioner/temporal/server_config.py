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
from provisioner.temporal.versions import ServerVersion

CONFIG_DIR = "/tmp/temporal"  # writable by the image's non-root user
CONFIG_FILE = f"{CONFIG_DIR}/provision.yaml"
BROADCAST_PLACEHOLDER = "__BROADCAST_ADDRESS__"
SERVER_CONFIG_VARIABLE = "TEMPORAL_SERVER_CONFIG"
DYNAMIC_CONFIG_VARIABLE = "TEMPORAL_DYNAMIC_CONFIG"
# The fork connects as this role whatever the config says (dsql/plugin.go), with an admin token.
DSQL_USER = "admin"


def start_script(version: ServerVersion) -> str:
    """busybox sh (the server image has no bash); `hostname -i` is the task's ENI address in awsvpc mode.

    1.30+ read one file with --config-file; older servers read <dir>/<env>.yaml (--config, --env).
    """
    if version.config_file_flag:
        start = f'exec temporal-server start --config-file {CONFIG_FILE} --service "$TEMPORAL_SERVICE"'
    else:
        start = f'exec temporal-server --root / --config {CONFIG_DIR} --env provision start --service "$TEMPORAL_SERVICE"'
    return "\n".join([
        "set -eu",
        f"mkdir -p {CONFIG_DIR}",
        "set -- $(hostname -i)",
        f'printf "%s" "${SERVER_CONFIG_VARIABLE}" | sed "s/{BROADCAST_PLACEHOLDER}/$1/" > {CONFIG_FILE}',
        f'printf "%s" "${DYNAMIC_CONFIG_VARIABLE}" > {CONFIG_DIR}/dynamicconfig.yaml',
        start,
    ])


def server_config(config: Config, role: str, region: str, dsql_host: str, opensearch_endpoint: str) -> dict:
    """The static server config for one role: DSQL persistence, OpenSearch visibility, metrics, membership."""
    pool = getattr(config.services, role)
    return {
        "log": {"stdout": True, "level": config.temporal.log_level},
        "persistence": {
            "defaultStore": "dsql",
            "visibilityStore": "opensearch",
            "numHistoryShards": config.temporal.num_history_shards,
            "datastores": {
                "dsql": {"sql": {
                    "pluginName": "dsql",
                    # temporal-dsql-tool records the schema version under db_name 'postgres', and the server
                    # looks it up under databaseName (sqlplugin/dsql/admin.go): they must agree.
                    "databaseName": "postgres",
                    "connectAddr": f"{dsql_host}:5432",
                    "connectProtocol": "tcp",
                    "user": DSQL_USER,  # no password: the plugin signs a short-lived IAM token
                    # The plugin warms the pool to maxConns and keeps it; fewer idle connections than that
                    # would close them as fast as it opens them (dsql/session/session.go).
                    "maxConns": pool.max_conns,
                    "maxIdleConns": pool.max_conns,
                    "maxConnLifetime": "55m",  # DSQL ends a connection after 60 minutes
                    # enableHostVerification makes the plugin use sslmode=verify-full (dsql/plugin.go).
                    "tls": {"enabled": True, "enableHostVerification": True},
                }},
                "opensearch": {"elasticsearch": {
                    "version": "v7",
                    "url": {"scheme": "https", "host": f"{opensearch_endpoint}:443"},
                    "indices": {"visibility": config.opensearch.visibility_index},
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


def server_environment(config: Config, role: str, region: str, dsql_host: str, opensearch_endpoint: str) -> dict[str, str]:
    """What the start script reads: the role, its rendered config and the dynamic config."""
    rendered = server_config(config, role, region, dsql_host, opensearch_endpoint)
    return {
        "TEMPORAL_SERVICE": role,
        "AWS_REGION": region,
        SERVER_CONFIG_VARIABLE: json.dumps(rendered, sort_keys=True),
        DYNAMIC_CONFIG_VARIABLE: json.dumps(render_dynamic_config(config.temporal.dynamic_config), sort_keys=True),
    }
