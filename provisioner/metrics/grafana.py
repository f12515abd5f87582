"""Grafana on Amazon Managed Prometheus (README: "Metrics and dashboards"), provisioned, not clicked.

Grafana 12's core Prometheus data source signs with SigV4 when `GF_AUTH_SIGV4_AUTH_ENABLED=true` (the
middleware is added only then: pkg/infra/httpclient/httpclientprovider) and the data source says
`sigV4Auth`. The data source, the dashboard provider and the dashboards reach the task without an image
of our own: an init container (busybox) writes them from SSM parameters (injected as `secrets`) into a
task volume, and Grafana starts only once it exited 0 (dependsOn SUCCESS). Dashboards are gzipped and
base64-encoded to fit a parameter (8 KB in the Advanced tier).
"""
from __future__ import annotations

import base64
import gzip
import json

from provisioner.ecs_layout import GRAFANA_PORT

DATASOURCE_UID = "amp"
PROVISIONING = "/etc/grafana/provisioning"  # GF_PATHS_PROVISIONING in the official image
DASHBOARDS_DIR = "/var/lib/grafana/dashboards"
VOLUME_PROVISIONING = "provisioning"
VOLUME_DASHBOARDS = "dashboards"
INIT_MEMORY = 32  # MiB: busybox writing a few files


def datasource(query_url: str, region: str) -> dict:
    return {"apiVersion": 1, "datasources": [{
        "name": "Amazon Managed Prometheus",
        "uid": DATASOURCE_UID,
        "type": "prometheus",
        "access": "proxy",
        "url": query_url.rstrip("/"),
        "isDefault": True,
        "editable": False,
        "jsonData": {"httpMethod": "POST", "sigV4Auth": True, "sigV4AuthType": "default", "sigV4Region": region},
    }]}


def dashboard_provider() -> dict:
    return {"apiVersion": 1, "providers": [{
        "name": "temporal", "type": "file", "folder": "Temporal", "updateIntervalSeconds": 60,
        "allowUiUpdates": False, "disableDeletion": True, "options": {"path": DASHBOARDS_DIR},
    }]}


def packed(document: dict) -> str:
    """gzip + base64: how a dashboard fits an SSM parameter; the init container reverses it."""
    return base64.b64encode(gzip.compress(json.dumps(document, sort_keys=True).encode(), mtime=0)).decode()


def unpacked(value: str) -> dict:
    return json.loads(gzip.decompress(base64.b64decode(value)))


def variable(name: str) -> str:
    return "DASHBOARD_" + name.upper().replace("-", "_")


def init_script(dashboards: list[str]) -> str:
    """busybox sh: write the provisioning files and unpack each dashboard, or fail (Grafana then never starts)."""
    lines = [
        "set -eu",
        f"mkdir -p {PROVISIONING}/datasources {PROVISIONING}/dashboards {DASHBOARDS_DIR}",
        f'printf "%s" "$DATASOURCES" > {PROVISIONING}/datasources/amp.yaml',
        f'printf "%s" "$DASHBOARD_PROVIDER" > {PROVISIONING}/dashboards/temporal.yaml',
    ]
    lines += [f'printf "%s" "${variable(name)}" | base64 -d | gunzip > {DASHBOARDS_DIR}/{name}.json' for name in dashboards]
    lines.append(f"chmod -R a+rX {PROVISIONING} {DASHBOARDS_DIR}")  # Grafana runs as uid 472
    return "\n".join(lines)


def containers(image: str, init_image: str, secret_arn: str, parameters: dict[str, str], dashboards: list[str],
               cpu: int, memory: int, region: str, log_options: dict) -> list[dict]:
    """The init container and Grafana. `parameters` maps DATASOURCES, DASHBOARD_PROVIDER and each
    dashboard's variable to its SSM parameter ARN."""
    mounts = [{"sourceVolume": VOLUME_PROVISIONING, "containerPath": PROVISIONING},
              {"sourceVolume": VOLUME_DASHBOARDS, "containerPath": DASHBOARDS_DIR}]
    init = {
        "name": "grafana-config",
        "image": init_image,
        "essential": False,
        "memory": INIT_MEMORY,
        "entryPoint": ["/bin/sh", "-c"],
        "command": [init_script(dashboards)],
        "secrets": [{"name": name, "valueFrom": arn} for name, arn in sorted(parameters.items())],
        "mountPoints": mounts,
        "logConfiguration": {"logDriver": "awslogs", "options": log_options | {"awslogs-stream-prefix": "grafana-config"}},
    }
    grafana = {
        "name": "grafana",
        "image": image,
        "essential": True,
        "cpu": cpu,
        "memory": memory - INIT_MEMORY,
        "portMappings": [{"name": "http", "containerPort": GRAFANA_PORT, "protocol": "tcp", "appProtocol": "http"}],
        # The admin login straight from Secrets Manager, by ARN and JSON key: never in the environment or the state.
        "secrets": [
            {"name": "GF_SECURITY_ADMIN_USER", "valueFrom": f"{secret_arn}:admin_user::"},
            {"name": "GF_SECURITY_ADMIN_PASSWORD", "valueFrom": f"{secret_arn}:admin_password::"},
        ],
        "environment": [
            {"name": "AWS_REGION", "value": region},
            {"name": "GF_AUTH_SIGV4_AUTH_ENABLED", "value": "true"},
            # Private subnets: no update checks or usage reports to the internet.
            {"name": "GF_ANALYTICS_CHECK_FOR_UPDATES", "value": "false"},
            {"name": "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES", "value": "false"},
            {"name": "GF_ANALYTICS_REPORTING_ENABLED", "value": "false"},
            {"name": "GF_USERS_ALLOW_SIGN_UP", "value": "false"},
        ],
        "mountPoints": [m | {"readOnly": True} for m in mounts],
        "dependsOn": [{"containerName": "grafana-config", "condition": "SUCCESS"}],
        # The official image has curl (its Dockerfile installs it).
        "healthCheck": {"command": ["CMD-SHELL", f"curl -fsS http://localhost:{GRAFANA_PORT}/api/health || exit 1"],
                        "interval": 15, "timeout": 5, "retries": 4, "startPeriod": 60},
        "linuxParameters": {"initProcessEnabled": True},
        "logConfiguration": {"logDriver": "awslogs", "options": log_options},
    }
    return [init, grafana]


VOLUMES = [{"name": VOLUME_PROVISIONING}, {"name": VOLUME_DASHBOARDS}]
