"""The AWS Distro for OpenTelemetry collector (seed task 22): its configuration and its container.

It scrapes every Temporal task, not one: a Service Connect name load-balances, so a scrape through it
would hit one random replica. The `ecs_observer` extension lists the tasks of the four Temporal services
every REFRESH and writes their addresses (task ENI IP and the `metrics` port mapping, 9090) to a file the
Prometheus receiver reads (file_sd_configs); relabelling puts the ECS service and task on every series.
Remote write goes to the workspace through the `sigv4auth` extension, with metric names unchanged
(Temporal's dashboards query `service_requests`, not `service_requests_total`).

Facts from aws-observability/aws-otel-collector v0.49.0 and the contrib components it vendors
(extension/observer/ecsobserver, exporter/prometheusremotewriteexporter, extension/sigv4authextension).
"""
from __future__ import annotations

import json

from provisioner.temporal.roles import METRICS_PORT, TEMPORAL_ROLES

# The image runs as user aoc (uid 4317) since v0.35; its final stage is FROM scratch and only
# /home/aoc belongs to aoc (cmd/awscollector/Dockerfile). The observer's default /etc/ecs_sd_targets.yaml
# is not writable there (aws-otel-collector#2620) and it creates no directory: the file goes in aoc's home.
RESULT_FILE = "/home/aoc/ecs_sd_targets.yaml"
COLLECTOR_USER = "4317"  # aoc, as the image creates it: numeric, so no passwd lookup is needed
REFRESH = "15s"
# The health_check extension's default endpoint; the image's /healthcheck binary GETs it.
HEALTH_PORT = 13133
CONFIG_VARIABLE = "AOT_CONFIG_CONTENT"  # the whole config, overriding --config (pkg/config/config_factory.go)

RELABEL_CONFIGS = [
    # The observer names the job in prometheus_job; the source label is the task's ARN.
    {"source_labels": ["prometheus_job"], "target_label": "job"},
    {"source_labels": ["__meta_ecs_service_name"], "target_label": "ecs_service"},
    {"source_labels": ["__meta_ecs_source"], "regex": ".*/([^/]+)$", "target_label": "ecs_task"},
    {"source_labels": ["__meta_ecs_task_definition_revision"], "target_label": "ecs_task_revision"},
]
# The labels that tell one task of a service from another (Kubernetes' pod): what a dashboard sums away
# to see a service, or groups by to see each task. `instance` (the task's IP:port) is Prometheus' own.
TASK_LABEL = "ecs_task"
PER_TASK_LABELS = ("instance", TASK_LABEL, "ecs_task_revision")
# Every label the scrape and the relabelling put on a series, beside the server's own.
SCRAPE_LABELS = frozenset({"job", "instance", *(r["target_label"] for r in RELABEL_CONFIGS)})


def job_name(role: str) -> str:
    return f"temporal-{role}"


def config(cluster_name: str, region: str, project: str, remote_write_url: str, scrape_interval: int) -> dict:
    return {
        "extensions": {
            "health_check": {"endpoint": f"0.0.0.0:{HEALTH_PORT}"},
            "sigv4auth": {"region": region, "service": "aps"},
            "ecs_observer": {
                "cluster_name": cluster_name,
                "cluster_region": region,
                "refresh_interval": REFRESH,
                "result_file": RESULT_FILE,
                # One selector per Temporal service, on the port its task definition maps as "metrics".
                "services": [
                    {"name_pattern": f"^{project}-{role}$", "metrics_ports": [METRICS_PORT],
                     "metrics_path": "/metrics", "job_name": job_name(role)}
                    for role in TEMPORAL_ROLES
                ],
            },
        },
        "receivers": {"prometheus": {"config": {"scrape_configs": [{
            "job_name": "temporal",
            "scrape_interval": f"{scrape_interval}s",
            "file_sd_configs": [{"files": [RESULT_FILE], "refresh_interval": REFRESH}],
            "relabel_configs": RELABEL_CONFIGS,
        }]}}},
        "processors": {"batch": {}},
        "exporters": {"prometheusremotewrite": {
            "endpoint": remote_write_url,
            "auth": {"authenticator": "sigv4auth"},
            # The default appends _total to counters; Temporal's metrics and dashboards use bare names.
            "translation_strategy": "UnderscoreEscapingWithoutSuffixes",
            "resource_to_telemetry_conversion": {"enabled": False},
        }},
        "service": {
            "extensions": ["health_check", "sigv4auth", "ecs_observer"],
            "pipelines": {"metrics": {
                "receivers": ["prometheus"], "processors": ["batch"], "exporters": ["prometheusremotewrite"],
            }},
        },
    }


def render(cluster_name: str, region: str, project: str, remote_write_url: str, scrape_interval: int) -> str:
    """JSON is YAML: the collector reads this from AOT_CONFIG_CONTENT as it is."""
    return json.dumps(config(cluster_name, region, project, remote_write_url, scrape_interval), sort_keys=True)


def container(image: str, config_parameter_arn: str, cpu: int, memory: int, log_options: dict) -> dict:
    return {
        "name": "collector",
        "image": image,
        "essential": True,
        "cpu": cpu,
        "memory": memory,
        "user": COLLECTOR_USER,  # non-root, as the image is built: RESULT_FILE is in this user's home
        "secrets": [{"name": CONFIG_VARIABLE, "valueFrom": config_parameter_arn}],
        "environment": [{"name": "AWS_REGION", "value": log_options["awslogs-region"]}],
        # The image is FROM scratch (no shell): CMD, not CMD-SHELL.
        "healthCheck": {"command": ["CMD", "/healthcheck"], "interval": 15, "timeout": 5, "retries": 3,
                        "startPeriod": 30},
        "linuxParameters": {"initProcessEnabled": True},
        "logConfiguration": {"logDriver": "awslogs", "options": log_options},
    }
